"""Bar of the export issue: exporting 100,000 64x64 images (the bench/prepare_folder.py set).

Makes the PNG folder once (bench/prepare_folder.py's generator, kept under --dir), prepares it
into train/val/test (not timed), adds a scored synthetic pool and the metrics the datasheet reads,
then times the export stage's work (build the chosen training set through the variant registry,
write it in each format with its datasheet) and samples the process's RSS for peak memory.

    OMP_NUM_THREADS=1 python bench/export.py --n 100000 --size 64 --dir bench/out/pngs
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from bench.prepare_folder import PeakRSS, make_folder
from pipeline.artifacts import save_split
from pipeline.config import EvaluateConfig, parse_config
from pipeline.data import prepare_dataset
from pipeline.export.datasheet import SheetInputs, datasheet
from pipeline.export.rows import build_export
from pipeline.export.writers import write_export
from pipeline.pool import SyntheticPool
from pipeline.variants import synthetic_counts


def prepared(pngs: Path, work: Path, *, n: int, size: int) -> tuple[list[str], np.ndarray]:
    """data/prepared for the PNG folder (reused when present); returns class names, train labels."""
    names = ["benign", "malignant"]
    if not (work / "prepared" / "test.npz").is_file():
        make_folder(pngs, n, size)
        cfg = parse_config({"data": {"source": "folder", "path": str(pngs)},
                            "prepare": {"imbalance": "none"}})
        ds = prepare_dataset(cfg.data, cfg.prepare, seed=0)
        for s, part in ds.splits.items():
            save_split(work / "prepared" / f"{s}.npz", part.images, part.labels)
    with np.load(work / "prepared" / "train.npz") as z:
        return names, z["labels"]


def pool(work: Path, labels: np.ndarray, size: int) -> None:
    """A scored pool with enough images of each class for the gan@0.5 share."""
    need = max(synthetic_counts(labels, 2, 0.5).values()) + 100
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(2), need)
    x = rng.integers(0, 255, (len(y), size, size, 1), dtype=np.uint8)
    SyntheticPool(x, y, np.arange(len(y)), rng.random(len(y)), np.tile(np.arange(need), 2)
                  ).save(work / "synthetic" / "pool.npz")


def docs(labels: np.ndarray) -> dict:
    counts = {str(c): int(n) for c, n in enumerate(np.bincount(labels))}
    head = {"gan": "gan@0.5", "baseline": "real", "balanced_accuracy_delta": 0.0,
            "balanced_accuracy_delta_ci95": [-0.01, 0.01], "resolves_2_points": True}
    return {"prepare": {"class_names": ["benign", "malignant"], "counts": {"train": counts}},
            "train_gan": {"method": "dcgan"}, "generate": {"checkpoint_sha256": "0" * 64},
            "evaluate": {"selection": {"gan": "gan@0.5", "baseline": "real"}, "headline": head,
                         "variants": {}}}


def run(work: Path, fmt: str, names: list[str], d: dict) -> dict:
    out = work / f"export-{fmt}"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    with PeakRSS() as rss:
        ex = build_export(work / "prepared", work / "synthetic", evaluate=d["evaluate"],
                          cfg=EvaluateConfig(), class_names=names, checkpoint_sha256="0" * 64,
                          seed=0)
        built = time.perf_counter() - t
        sheet = datasheet(SheetInputs(ex, fmt, d["prepare"], d["train_gan"], d["generate"],
                                      d["evaluate"], source={"source": "folder"}))
        write_export(ex, out, fmt=fmt, datasheet=sheet)
    total = time.perf_counter() - t
    n = sum(len(p.labels) for p in ex.parts.values())
    arrays = sum(p.images.nbytes for p in ex.parts.values())
    files = sum(1 for p in out.rglob("*") if p.is_file())
    return {"format": fmt, "images": n, "synthetic": int(ex.parts["train"].synthetic.sum()),
            "build_s": round(built, 2), "total_s": round(total, 2),
            "images_per_s": round(n / total), "files": files,
            "peak_rss_over_base_mb": round((rss.peak - rss.base) / 2**20),
            "image_arrays_mb": round(arrays / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=Path("bench/out/pngs"))
    parser.add_argument("--work", type=Path, default=Path("bench/out/export"))
    parser.add_argument("--formats", nargs="+", default=["folder", "npz", "csv"])
    args = parser.parse_args()
    names, labels = prepared(args.dir, args.work, n=args.n, size=args.size)
    pool(args.work, labels, args.size)
    d = docs(labels)
    for fmt in args.formats:
        print(json.dumps(run(args.work, fmt, names, d)), flush=True)


if __name__ == "__main__":
    main()
