"""DVC stage `evaluate`: the same classifier trained per variant (real, real + synthetic), scored
on the untouched test split."""

import argparse
from pathlib import Path

import pandas as pd

from pipeline.artifacts import Split, load_split, save_csv, save_json
from pipeline.cli import run_stage
from pipeline.config import as_flat_dict, load_config
from pipeline.device import resolve_device
from pipeline.evaluate import evaluate_variants


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    ecfg, device = cfg.evaluate, resolve_device(cfg.evaluate.device)
    train = Split(*load_split(Path(args.data) / "train.npz"))
    test = Split(*load_split(Path(args.data) / "test.npz"))
    synthetic = Split(*load_split(Path(args.synthetic) / "synthetic.npz"))
    n_classes = int(max(train.labels.max(), test.labels.max())) + 1
    from pipeline.tracking import stage_run

    with stage_run("evaluate", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed, **as_flat_dict(ecfg, "evaluate.")})
        histories: dict[str, list] = {v: [] for v in ecfg.variants}
        results = evaluate_variants(
            train, synthetic, test, ecfg, n_classes=n_classes, seed=cfg.seed, device=device,
            log_for=lambda v: (lambda m, step: histories[v].append((step, m))),
        )
        plots = Path(args.plots)
        for name, res in results.items():
            save_csv(plots / f"confusion_{name}.csv", res.confusion)
        # Wide: one row per class, one column per variant (DVC draws one series per column).
        recall = pd.DataFrame({name: res.metrics["recall"] for name, res in results.items()})
        save_csv(plots / "recall.csv", recall.rename_axis("class").reset_index())
        save_json(args.metrics, {name: res.metrics for name, res in results.items()})
        run.log_artifact(args.metrics)
        for name, res in results.items():
            with run.child(name, {"stage": "evaluate", "augmentation": name}) as child:
                child.log_params({**as_flat_dict(ecfg, "evaluate."), "variant": name,
                                  "n_train": res.metrics["n_train"]})
                child.log_history(histories[name])
                child.log_metrics(res.metrics)
                child.log_artifact(plots / f"confusion_{name}.csv")
    for name, res in results.items():
        m = res.metrics
        print(f"evaluate: {name:>5}: balanced_accuracy={m['balanced_accuracy']:.3f} "
              f"macro_f1={m['macro_f1']:.3f} minority_recall={m['minority_recall']:.3f}")


if __name__ == "__main__":
    run_stage("evaluate", main, {
        "data": "folder with train.npz and test.npz", "synthetic": "folder with synthetic.npz",
        "plots": "folder for confusion and recall CSVs", "metrics": "JSON metrics file",
    })
