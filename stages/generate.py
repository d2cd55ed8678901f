"""DVC stage `generate`: synthesizer (any method) + train class counts -> a scored pool of audited
candidates (pool.npz, for evaluate's share sweep) and the best-scored images that balance the
classes (synthetic.npz + manifest.csv); pipeline/synthesize.py does the work."""

from pathlib import Path

import numpy as np

from pipeline.artifacts import atomic_dir, file_sha256, load_split, save_csv, save_png, save_split
from pipeline.balance import balance_plan
from pipeline.features import load_extractor
from pipeline.grids import closest_pairs, real_vs_synthetic, realness_extremes, selection_extremes
from pipeline.stage import Stage, n_classes_of, run
from pipeline.synthesize import (
    done_line, manifest, pool_plan, shortcut_counts, shortcut_summary, summary, synthesize,
)
from pipeline.synthesizers.base import load_synthesizer


def main(s: Stage) -> None:
    cfg, data, device, out = s.cfg, Path(s.args.data), s.device, Path(s.args.out)
    gcfg = cfg.generate
    images, labels = load_split(data / "train.npz")
    val_images, val_labels = load_split(data / "val.npz")
    synthesizer = load_synthesizer(s.args.checkpoint, device=device)
    extractor, _ = load_extractor(s.args.features, device=device)
    n_classes = n_classes_of(labels)
    before = {c: int(n) for c, n in enumerate(np.bincount(labels, minlength=n_classes))}
    plan = balance_plan(before, target=gcfg.target, count=gcfg.count, ratio=gcfg.ratio)
    candidates = pool_plan(plan, before, candidates_per_image=gcfg.candidates_per_image)
    s.log_params("generate")
    synth = synthesize(
        synthesizer, candidates, seed=cfg.seed, device=device, extractor=extractor,
        train_images=images, train_labels=labels, val_images=val_images,
        reject_memorized=gcfg.reject_memorized, quality_gate=gcfg.quality_gate,
        batch_size=gcfg.batch_size, score=gcfg.score,
    )
    pool = synth.pool
    shipped = pool.take({c: n for c, n in plan.items() if n > 0})
    ship = pool.subset(shipped)
    digest = file_sha256(s.args.checkpoint)
    table = manifest(ship, sources=synthesizer.sources(ship.labels, ship.seeds),
                     checkpoint_sha256=digest)
    with atomic_dir(out) as tmp:
        save_split(tmp / "synthetic.npz", ship.images, ship.labels)
        save_csv(tmp / "manifest.csv", table)
        pool.save(tmp / "pool.npz")
    plots = Path(s.args.plots)
    grids = {"real_vs_synthetic.png": real_vs_synthetic(images, labels, ship.images, ship.labels,
                                                        n_classes),
             "closest_pairs.png": closest_pairs(images, synth),
             "selection.png": selection_extremes(ship, n_classes),
             "shortcut.png": realness_extremes(
                 pool.subset(pool.take(shortcut_counts(pool, labels, n_classes))), n_classes)}
    for name, grid in grids.items():
        save_png(plots / name, grid)
    metrics = summary(synth, shipped, plan=plan, before=before, target=gcfg.target,
                      checkpoint_sha256=digest)
    metrics["shortcut"] = shortcut_summary(
        synth, extractor=extractor, device=device, train_images=images, train_labels=labels,
        val_images=val_images, val_labels=val_labels, seed=cfg.seed)
    s.finish(metrics, [*(plots / name for name in grids), out / "manifest.csv"])
    print(done_line(synth, metrics))


if __name__ == "__main__":
    run("generate", main, {
        "data": "folder with train.npz and val.npz", "checkpoint": "generator checkpoint",
        "features": "feature-extractor checkpoint",
        "out": "folder for synthetic.npz, manifest.csv and pool.npz",
        "plots": "folder for real_vs_synthetic.png, closest_pairs.png and selection.png",
        "metrics": "JSON metrics file",
    }, device="generate")
