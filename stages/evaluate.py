"""DVC stage `evaluate`: the same classifier trained on each variant's training set (no balancing,
class weights, oversampling, SMOTE, GAN images at several shares, synthetic pretraining) over
several seeds; the GAN configuration and the baseline are chosen on the validation split, and the
test split is scored once, with paired intervals (pipeline/evaluate.py).

Under `torchrun --nproc-per-node N` every classifier fit runs DDP over the N processes; rank 0
alone writes the metrics, plots and MLflow runs."""

from pathlib import Path

from tqdm import tqdm

from pipeline.artifacts import Split, load_split
from pipeline.evaluate import (
    evaluate_variants, expand_variants, log_variant_runs, save_plots, summary_lines,
)
from pipeline.pool import load_pool
from pipeline.stage import Stage, n_classes_of, run


def main(s: Stage) -> None:
    cfg, data, plots = s.cfg, Path(s.args.data), Path(s.args.plots)
    train, val, test = (Split(*load_split(data / f"{split}.npz"))
                        for split in ("train", "val", "test"))
    pool = load_pool(Path(s.args.synthetic) / "pool.npz")
    histories: dict[tuple[str, int], list] = {}  # (variant, seed) -> [(step, metrics)]
    bar = tqdm(total=len(expand_variants(cfg.evaluate)) * cfg.evaluate.seeds, desc="evaluate",
               unit="fit", mininterval=1.0, dynamic_ncols=True,
               disable=None if s.world.is_main else True)
    comparison = evaluate_variants(
        train, val, test, pool, cfg.evaluate, n_classes=n_classes_of(train.labels, test.labels),
        seed=cfg.seed, device=s.device,
        log_for=lambda v, seed: lambda m, step: histories.setdefault((v, seed), []).append(
            (step, m)),
        on_fit=lambda v, seed: (bar.set_postfix_str(f"{v} seed {seed}"), bar.update()),
    )
    bar.close()
    if not s.world.is_main:
        return
    save_plots(plots, comparison)
    s.log_params("evaluate")
    s.run.set_tags({f"selected_{k}": str(v) for k, v in comparison.selection.items()
                    if not isinstance(v, dict)})
    s.finish(comparison.as_json(), tracked={"headline": comparison.headline})
    log_variant_runs(s.run, comparison, histories, cfg=cfg.evaluate, seed=cfg.seed, plots=plots,
                     data_source=str(data / "train.npz"))
    for line in summary_lines(comparison):
        tqdm.write(line)


if __name__ == "__main__":
    run("evaluate", main, {
        "data": "folder with train.npz, val.npz and test.npz",
        "synthetic": "folder with pool.npz (generate's scored candidates)",
        "plots": "folder for confusion, ROC and recall CSVs", "metrics": "JSON metrics file",
    }, device="evaluate", distributed=True)
