"""DVC stage `generate`: generator + train class counts -> synthetic.npz that balances the classes,
with a memorization audit (and optional quality gate) on every image (pipeline/synthesize.py)."""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.artifacts import (
    atomic_dir, file_sha256, grid_scale, image_grid, load_split, save_csv, save_json, save_png,
    save_split,
)
from pipeline.balance import balance_plan
from pipeline.cli import run_stage
from pipeline.config import as_flat_dict, load_config
from pipeline.device import resolve_device
from pipeline.features import load_extractor
from pipeline.gan.checkpoint import load_generator
from pipeline.synthesize import synthesize

GRID_PER_CLASS = 8
CLOSEST_PAIRS = 8


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    gcfg, device = cfg.generate, resolve_device(cfg.generate.device)
    data = Path(args.data)
    images, labels = load_split(data / "train.npz")
    test_images, _ = load_split(data / "test.npz")
    G, ckpt = load_generator(args.checkpoint, device=device)
    extractor, _ = load_extractor(args.features, device=device)
    n_classes = ckpt["model_kwargs"]["n_classes"]
    before = {c: int(n) for c, n in enumerate(np.bincount(labels, minlength=n_classes))}
    plan = balance_plan(before, target=gcfg.target, count=gcfg.count, ratio=gcfg.ratio)

    from pipeline.tracking import stage_run

    with stage_run("generate", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed, **as_flat_dict(gcfg, "generate.")})
        synth = synthesize(
            G, plan, latent_dim=ckpt["model_kwargs"]["latent_dim"], seed=cfg.seed,
            device=device, extractor=extractor, train_images=images, test_images=test_images,
            reject_memorized=gcfg.reject_memorized, quality_gate=gcfg.quality_gate,
            batch_size=gcfg.batch_size,
        )
        digest = file_sha256(args.checkpoint)
        manifest = pd.DataFrame({"index": np.arange(len(synth.labels)), "label": synth.labels,
                                 "seed": synth.seeds, "checkpoint_sha256": digest})
        with atomic_dir(args.out) as tmp:
            save_split(tmp / "synthetic.npz", synth.images, synth.labels)
            save_csv(tmp / "manifest.csv", manifest)
        plots = Path(args.plots)
        grid = _real_vs_synthetic(images, labels, synth.images, synth.labels, n_classes)
        save_png(plots / "real_vs_synthetic.png", grid)
        save_png(plots / "closest_pairs.png", _closest_pairs(images, synth))
        after = {c: before[c] + plan[c] for c in range(n_classes)}
        metrics = {"target": gcfg.target, "n_synthetic": len(synth.labels),
                   "counts_before": before, "synthetic_per_class": plan, "counts_after": after,
                   **synth.stats, "checkpoint_sha256": digest}
        save_json(args.metrics, metrics)
        run.log_metrics(metrics)
        for path in (args.metrics, plots / "real_vs_synthetic.png", plots / "closest_pairs.png",
                     Path(args.out) / "manifest.csv"):
            run.log_artifact(path)
    rate = synth.stats.get("memorization_rate")
    audit = "" if rate is None else (
        f"; memorization rate {rate:.3f} (threshold: 1st percentile of test images), "
        f"acceptance rate {synth.stats['acceptance_rate']:.3f}")
    print(f"generate: {len(synth.labels)} synthetic images; counts after balancing {after}{audit}")


def _real_vs_synthetic(images, labels, synth, synth_labels, n_classes) -> np.ndarray:
    """One row per class: up to 8 real training images, then up to 8 synthetic ones."""
    rows = []
    blank = np.full((1, *images.shape[1:]), 255, dtype=np.uint8)
    for c in range(n_classes):
        real = images[labels == c][:GRID_PER_CLASS]
        fake = synth[synth_labels == c][:GRID_PER_CLASS]
        real = np.concatenate([real, np.repeat(blank, GRID_PER_CLASS - len(real), axis=0)])
        rows.append(np.concatenate([real, blank, fake]))
    return image_grid(rows, scale=grid_scale(images.shape[1]))


def _closest_pairs(images, synth) -> np.ndarray:
    """Top row: the first draw's synthetic images nearest to a training image (nearest first);
    bottom row: that training image. A white tile when nothing was generated."""
    audit = synth.first_audit
    if audit is None:
        return image_grid([np.full((1, *images.shape[1:]), 255, np.uint8)])
    order = np.argsort(audit.distances, kind="stable")[:CLOSEST_PAIRS]
    return image_grid([synth.first_draw[order], images[audit.nearest[order]]],
                      scale=grid_scale(images.shape[1]))


if __name__ == "__main__":
    run_stage("generate", main, {
        "data": "folder with train.npz and test.npz", "checkpoint": "generator checkpoint",
        "features": "feature-extractor checkpoint",
        "out": "folder for synthetic.npz and manifest.csv",
        "plots": "folder for real_vs_synthetic.png and closest_pairs.png",
        "metrics": "JSON metrics file",
    })
