"""DVC stage `generate`: generator + train class counts -> synthetic.npz that balances the classes."""

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
from pipeline.gan.checkpoint import load_generator
from pipeline.gan.train import sample

GRID_PER_CLASS = 8


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    gcfg, device = cfg.generate, resolve_device(cfg.generate.device)
    images, labels = load_split(Path(args.data) / "train.npz")
    G, ckpt = load_generator(args.checkpoint, device=device)
    n_classes = ckpt["model_kwargs"]["n_classes"]
    before = {c: int(n) for c, n in enumerate(np.bincount(labels, minlength=n_classes))}
    plan = balance_plan(before, target=gcfg.target, count=gcfg.count, ratio=gcfg.ratio)

    from pipeline.tracking import stage_run

    with stage_run("generate", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed, **as_flat_dict(gcfg, "generate.")})
        synth_labels = np.repeat(np.arange(n_classes), [plan[c] for c in range(n_classes)])
        # Image i is G(z_i, label_i) with z_i drawn from its own seed: reproducible one by one.
        seeds = cfg.seed * 2**32 + np.arange(len(synth_labels), dtype=np.int64)
        synth = sample(G, synth_labels, seeds, latent_dim=ckpt["model_kwargs"]["latent_dim"],
                       device=device, batch_size=gcfg.batch_size)
        digest = file_sha256(args.checkpoint)
        manifest = pd.DataFrame({"index": np.arange(len(synth_labels)), "label": synth_labels,
                                 "seed": seeds, "checkpoint_sha256": digest})
        with atomic_dir(args.out) as tmp:
            save_split(tmp / "synthetic.npz", synth, synth_labels)
            save_csv(tmp / "manifest.csv", manifest)
        grid = _real_vs_synthetic(images, labels, synth, synth_labels, n_classes)
        save_png(Path(args.plots) / "real_vs_synthetic.png", grid)
        after = {c: before[c] + plan[c] for c in range(n_classes)}
        metrics = {"target": gcfg.target, "n_synthetic": len(synth_labels),
                   "counts_before": before, "synthetic_per_class": plan, "counts_after": after,
                   "checkpoint_sha256": digest}
        save_json(args.metrics, metrics)
        run.log_metrics(metrics)
        for path in (args.metrics, Path(args.plots) / "real_vs_synthetic.png",
                     Path(args.out) / "manifest.csv"):
            run.log_artifact(path)
    print(f"generate: {len(synth_labels)} synthetic images; counts after balancing {after}")


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


if __name__ == "__main__":
    run_stage("generate", main, {
        "data": "folder with train.npz", "checkpoint": "generator checkpoint",
        "out": "folder for synthetic.npz and manifest.csv",
        "plots": "folder for real_vs_synthetic.png", "metrics": "JSON metrics file",
    })
