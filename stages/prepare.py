"""DVC stage `prepare`: source dataset -> data/prepared/{train,val,test}.npz + class counts."""

import argparse
from pathlib import Path

from pipeline.artifacts import atomic_dir, file_sha256, save_json, save_split
from pipeline.cli import run_stage
from pipeline.config import as_flat_dict, load_config
from pipeline.data.prepare import SPLITS, prepare_dataset


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    # Decode first (in worker processes), then open the MLflow run: no tracking threads get forked.
    dataset = prepare_dataset(cfg.data, cfg.prepare, seed=cfg.seed)
    with atomic_dir(args.out) as tmp:
        for split in SPLITS:
            s = dataset.splits[split]
            extra = {} if s.patient_ids is None else {"patient_ids": s.patient_ids}
            save_split(tmp / f"{split}.npz", s.images, s.labels, **extra)
    save_json(args.metrics, dataset.report)
    from pipeline.tracking import stage_run

    with stage_run("prepare", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed, **as_flat_dict(cfg.data, "data."),
                        **as_flat_dict(cfg.prepare, "prepare.")})
        run.log_metrics(dataset.report)
        if dataset.report["data_changes"]:  # what prepare did to the data, beside its numbers
            run.set_tags({"data_changes": " ".join(dataset.report["data_changes"])[:5000]})
        for split in SPLITS:
            path = Path(args.out) / f"{split}.npz"
            run.log_dataset(name=f"{cfg.data.source}-{split}", digest=file_sha256(path),
                            source=dataset.source, context=split)
        run.log_artifact(args.metrics)
    report = dataset.report
    names = dataset.class_names
    counts = ", ".join(f"{names[c]}: {n}" for c, n in report["counts"]["train"].items())
    size = "x".join(map(str, report["image_shape"][1::-1]))
    print(f"prepare: {report['n_images']} images at {size}; train class counts: {counts}")
    for change in report["data_changes"]:  # never silent: resizing, simulated imbalance, ...
        print(f"prepare: NOTE: {change}")


if __name__ == "__main__":
    run_stage("prepare", main, {"out": "folder for {train,val,test}.npz",
                                "metrics": "JSON file for class counts"})
