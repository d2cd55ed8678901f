"""DVC stage `evaluate`: the same classifier trained on each variant's training set (no balancing,
class weights, oversampling, SMOTE, GAN images at several shares, synthetic pretraining) over
several seeds; the GAN configuration and the baseline are chosen on the validation split, and the
test split is scored once, with paired intervals."""

import argparse
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.artifacts import Split, load_split, save_csv, save_json
from pipeline.cli import run_stage
from pipeline.config import Config, as_flat_dict, load_config
from pipeline.device import resolve_device
from pipeline.distributed import Dist, process_group
from pipeline.evaluate import evaluate_variants, expand_variants
from pipeline.pool import load_pool


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    # Under `torchrun --nproc-per-node N` every classifier fit runs DDP over the N processes;
    # rank 0 alone writes the metrics, plots and MLflow runs.
    with process_group(resolve_device(cfg.evaluate.device)) as world:
        _evaluate(args, cfg, world)


def _evaluate(args: argparse.Namespace, cfg: Config, world: Dist) -> None:
    ecfg, device = cfg.evaluate, world.device
    train, val, test = (Split(*load_split(Path(args.data) / f"{name}.npz"))
                        for name in ("train", "val", "test"))
    pool = load_pool(Path(args.synthetic) / "pool.npz")
    n_classes = int(max(train.labels.max(), test.labels.max())) + 1
    histories: dict[tuple[str, int], list] = {}
    bar = tqdm(total=len(expand_variants(ecfg)) * ecfg.seeds, desc="evaluate", unit="fit",
               mininterval=1.0, dynamic_ncols=True, disable=None if world.is_main else True)
    comparison = evaluate_variants(
        train, val, test, pool, ecfg, n_classes=n_classes, seed=cfg.seed, device=device,
        log_for=lambda v, s: (lambda m, step: histories.setdefault((v, s), []).append((step, m))),
        on_fit=lambda v, s: (bar.set_postfix_str(f"{v} seed {s}"), bar.update()),
    )
    bar.close()
    if not world.is_main:
        return
    results = comparison.variants
    plots = Path(args.plots)
    for name, res in results.items():
        save_csv(plots / f"confusion_{name}.csv", res.confusion)
        save_csv(plots / f"roc_{name}.csv", res.roc)
    # Wide: one row per class, one column per variant (DVC draws one series per column).
    recall = pd.DataFrame({name: res.metrics["recall"] for name, res in results.items()})
    save_csv(plots / "recall.csv", recall.rename_axis("class").reset_index())
    save_json(args.metrics, comparison.as_json())
    _track(cfg, args, comparison, histories)
    for name, res in results.items():
        m = res.metrics
        ci = m.get("balanced_accuracy_ci95", [float("nan")] * 2)
        tqdm.write(f"evaluate: {name:>20}: val {m['val_balanced_accuracy']:.3f} | test "
                   f"balanced_accuracy={m['balanced_accuracy']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
                   f"minority_recall={m['minority_recall']:.3f} roc_auc={m['roc_auc']:.3f}")
    h = comparison.headline
    if h:
        ci = h.get("balanced_accuracy_delta_ci95", [float("nan")] * 2)
        tqdm.write(f"evaluate: chosen on validation: {h['gan']} vs {h['baseline']}: test balanced "
                   f"accuracy {h['balanced_accuracy_delta']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}], "
                   f"ROC AUC {h['roc_auc_delta']:+.3f}")


def _track(cfg, args, comparison, histories) -> None:
    """One MLflow run per variant (tags augmentation=<base variant>, variant=<name>,
    synthetic_ratio=<r> for the share sweep; the same metric names everywhere), with one nested
    run per seed, under the evaluate stage run, which holds the selection and the headline."""
    from pipeline.tracking import stage_run

    ecfg = cfg.evaluate
    with stage_run("evaluate", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed, **as_flat_dict(ecfg, "evaluate.")})
        run.set_tags({f"selected_{k}": str(v) for k, v in comparison.selection.items()})
        run.log_metrics({"headline": comparison.headline})
        run.log_artifact(args.metrics)
        for name, res in comparison.variants.items():
            v = res.variant
            tags = {"stage": "evaluate", "augmentation": v.base, "variant": name,
                    "kind": "variant"}
            if v.ratio is not None:
                tags["synthetic_ratio"] = res.metrics["synthetic_ratio"]
            with run.child(name, tags) as child:
                child.log_params({**as_flat_dict(ecfg, "evaluate."), "variant": name,
                                  "n_train": res.metrics["n_train"]})
                child.log_metrics(res.metrics)
                for path in (f"confusion_{name}.csv", f"roc_{name}.csv"):
                    child.log_artifact(Path(args.plots) / path)
                for i, seed_metrics in enumerate(res.per_seed):
                    seed = cfg.seed + i
                    with child.child(f"{name}-seed{seed}", {
                        "stage": "evaluate", "augmentation": v.base, "variant": name,
                        "kind": "seed",
                        "seed": str(seed)}) as seed_run:
                        seed_run.log_history(histories.get((name, seed), []))
                        seed_run.log_metrics(seed_metrics)


if __name__ == "__main__":
    run_stage("evaluate", main, {
        "data": "folder with train.npz, val.npz and test.npz",
        "synthetic": "folder with pool.npz (generate's scored candidates)",
        "plots": "folder for confusion, ROC and recall CSVs", "metrics": "JSON metrics file",
    })
