"""DVC stage `prepare`: source dataset -> data/prepared/{train,val,test}.npz + class counts."""

from pathlib import Path

from pipeline.artifacts import atomic_dir, file_sha256, save_split
from pipeline.data.prepare import SPLITS, prepare_dataset
from pipeline.stage import Stage, run


def main(s: Stage) -> None:
    cfg, out = s.cfg, Path(s.args.out)
    # Decode first (in worker processes), then open the MLflow run: no tracking threads get forked.
    dataset = prepare_dataset(cfg.data, cfg.prepare, seed=cfg.seed)
    with atomic_dir(out) as tmp:
        for split in SPLITS:
            part = dataset.splits[split]
            extra = {} if part.patient_ids is None else {"patient_ids": part.patient_ids}
            save_split(tmp / f"{split}.npz", part.images, part.labels, **extra)
    report = dataset.report
    s.log_params("data", "prepare")
    if report["data_changes"]:  # what prepare did to the data, beside its numbers
        s.run.set_tags({"data_changes": " ".join(report["data_changes"])[:5000]})
    for split in SPLITS:
        s.run.log_dataset(name=f"{cfg.data.source}-{split}", source=dataset.source,
                          digest=file_sha256(out / f"{split}.npz"), context=split)
    s.finish(report)
    names = dataset.class_names
    counts = ", ".join(f"{names[c]}: {n}" for c, n in report["counts"]["train"].items())
    size = "x".join(map(str, report["image_shape"][1::-1]))
    print(f"prepare: {report['n_images']} images at {size}; train class counts: {counts}")
    for change in report["data_changes"]:  # never silent: resizing, simulated imbalance, ...
        print(f"prepare: NOTE: {change}")


if __name__ == "__main__":
    run("prepare", main, {"out": "folder for {train,val,test}.npz",
                          "metrics": "JSON file for class counts"})
