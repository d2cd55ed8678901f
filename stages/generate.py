"""DVC stage `generate`: synthesizer (any method) + train class counts -> a scored pool of audited candidates
(pool.npz, for evaluate's share sweep) and the best-scored images that balance the classes
(synthetic.npz + manifest.csv); pipeline/synthesize.py does the work."""

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
from pipeline.synthesize import pool_plan, synthesize
from pipeline.synthesizers.base import load_synthesizer

GRID_PER_CLASS = 8
CLOSEST_PAIRS = 8


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    gcfg, device = cfg.generate, resolve_device(cfg.generate.device)
    data = Path(args.data)
    images, labels = load_split(data / "train.npz")
    val_images, _ = load_split(data / "val.npz")
    synthesizer = load_synthesizer(args.checkpoint, device=device)
    extractor, _ = load_extractor(args.features, device=device)
    n_classes = synthesizer.n_classes
    before = {c: int(n) for c, n in enumerate(np.bincount(labels, minlength=n_classes))}
    plan = balance_plan(before, target=gcfg.target, count=gcfg.count, ratio=gcfg.ratio)
    candidates = pool_plan(plan, before, candidates_per_image=gcfg.candidates_per_image)

    from pipeline.tracking import stage_run

    with stage_run("generate", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed, **as_flat_dict(gcfg, "generate.")})
        synth = synthesize(
            synthesizer, candidates, seed=cfg.seed, device=device, extractor=extractor,
            train_images=images, train_labels=labels, val_images=val_images,
            reject_memorized=gcfg.reject_memorized, quality_gate=gcfg.quality_gate,
            batch_size=gcfg.batch_size,
        )
        pool = synth.pool
        shipped = pool.take({c: n for c, n in plan.items() if n > 0})
        ship = pool.subset(shipped)
        digest = file_sha256(args.checkpoint)
        manifest = pd.DataFrame({"index": np.arange(len(ship.labels)), "label": ship.labels,
                                 "seed": ship.seeds, "score": ship.scores.round(6),
                                 "checkpoint_sha256": digest})
        sources = synthesizer.sources(ship.labels, ship.seeds)
        if sources is not None:  # a translation: the training image it was made from
            manifest.insert(4, "source_index", sources)
        with atomic_dir(args.out) as tmp:
            save_split(tmp / "synthetic.npz", ship.images, ship.labels)
            save_csv(tmp / "manifest.csv", manifest)
            pool.save(tmp / "pool.npz")
        plots = Path(args.plots)
        grid = _real_vs_synthetic(images, labels, ship.images, ship.labels, n_classes)
        save_png(plots / "real_vs_synthetic.png", grid)
        save_png(plots / "closest_pairs.png", _closest_pairs(images, synth))
        save_png(plots / "selection.png", _selection_extremes(ship, n_classes))
        after = {c: before[c] + plan[c] for c in range(n_classes)}
        metrics = {"target": gcfg.target, "n_synthetic": len(ship.labels),
                   "counts_before": before, "synthetic_per_class": plan, "counts_after": after,
                   "pool_per_class": {c: pool.count(c) for c in range(n_classes)},
                   **synth.stats,
                   "memorization_rate_shipped": float(synth.memorized[shipped].mean())
                   if len(shipped) else 0.0,
                   "score_mean_shipped": float(ship.scores.mean()) if len(shipped) else None,
                   "score_mean_pool": float(pool.scores.mean()) if len(pool.labels) else None,
                   "checkpoint_sha256": digest}
        save_json(args.metrics, metrics)
        run.log_metrics(metrics)
        for path in (args.metrics, plots / "real_vs_synthetic.png", plots / "closest_pairs.png",
                     plots / "selection.png", Path(args.out) / "manifest.csv"):
            run.log_artifact(path)
    rate = synth.stats.get("memorization_rate")
    audit = "" if rate is None else (
        f"; memorization rate {rate:.3f} (threshold: 1st percentile of validation images), "
        f"acceptance rate {synth.stats['acceptance_rate']:.3f}")
    print(f"generate: {len(ship.labels)} synthetic images shipped (best-scored of a pool of "
          f"{len(pool.labels)}); counts after balancing {after}{audit}")


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


def _selection_extremes(ship, n_classes: int) -> np.ndarray:
    """One row per class: its best-scored shipped images (left), then its worst-scored ones."""
    rows = []
    blank = np.full((1, *ship.images.shape[1:]), 255, dtype=np.uint8)
    for c in range(n_classes):
        idx = np.flatnonzero(ship.labels == c)
        idx = idx[np.argsort(-ship.scores[idx], kind="stable")]
        best, worst = idx[:GRID_PER_CLASS], idx[::-1][:GRID_PER_CLASS][::-1]
        pad = [blank] * (GRID_PER_CLASS - len(best))
        rows.append(np.concatenate([ship.images[best], *pad, blank, ship.images[worst], *pad]))
    return image_grid(rows, scale=grid_scale(ship.images.shape[1]))


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
        "data": "folder with train.npz and val.npz", "checkpoint": "generator checkpoint",
        "features": "feature-extractor checkpoint",
        "out": "folder for synthetic.npz, manifest.csv and pool.npz",
        "plots": "folder for real_vs_synthetic.png, closest_pairs.png and selection.png",
        "metrics": "JSON metrics file",
    })
