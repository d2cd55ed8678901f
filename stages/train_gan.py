"""DVC stage `train_gan`: train split -> generator checkpoint, per-class sample grid, loss curves."""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.artifacts import grid_scale, image_grid, load_split, save_csv, save_json, save_png
from pipeline.cli import run_stage
from pipeline.config import as_flat_dict, load_config
from pipeline.device import resolve_device
from pipeline.gan.checkpoint import save_generator
from pipeline.gan.train import fit, sample
SAMPLES_PER_CLASS = 10


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    gcfg, device = cfg.train_gan, resolve_device(cfg.train_gan.device)
    images, labels = load_split(Path(args.data) / "train.npz")
    n_classes = int(labels.max()) + 1
    from pipeline.tracking import stage_run

    with stage_run("train_gan", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed, **as_flat_dict(gcfg, "train_gan."),
                        "device_used": str(device), "n_train": len(labels)})
        history: list[tuple[int, dict]] = []
        # disable=None: a bar on a terminal, nothing in captured logs (CI, files)
        bar = tqdm(total=gcfg.steps, desc="train_gan", unit="step", mininterval=1.0,
                   dynamic_ncols=True, disable=None)

        def log(metrics: dict, step: int) -> None:
            history.append((step, metrics))
            bar.update(step - bar.n)
            bar.set_postfix(d_loss=f"{metrics['d_loss']:.3f}", g_loss=f"{metrics['g_loss']:.3f}")

        try:
            result = fit(images, labels, gcfg, n_classes=n_classes, seed=cfg.seed,
                         device=device, log=log)
        finally:
            bar.close()  # before any error line, so the error starts on a line of its own
        run.log_history(history)
        state = result.state
        save_generator(args.checkpoint, state, gcfg, seed=cfg.seed)
        class_labels = np.repeat(np.arange(n_classes), SAMPLES_PER_CLASS)
        fakes = sample(state.G_ema, class_labels, np.arange(len(class_labels)),
                       latent_dim=gcfg.latent_dim, device=device)
        grid = image_grid([fakes[class_labels == c] for c in range(n_classes)],
                          scale=grid_scale(images.shape[1]))
        save_png(Path(args.plots) / "samples.png", grid)
        save_csv(Path(args.plots) / "losses.csv", pd.DataFrame(result.history))
        last = result.history[-1]
        metrics = {
            "steps": state.step, "seconds": round(result.seconds, 2),
            "images_per_second": round(state.step * gcfg.batch_size / result.seconds, 1),
            "final_d_loss": last["d_loss"], "final_g_loss": last["g_loss"],
            "n_train": len(labels), "n_classes": n_classes, "device": str(device),
        }
        save_json(args.metrics, metrics)
        run.log_metrics({k: v for k, v in metrics.items() if k != "device"})
        for path in (args.metrics, args.checkpoint, Path(args.plots) / "samples.png",
                     Path(args.plots) / "losses.csv"):
            run.log_artifact(path)
    print(f"train_gan: {state.step} steps in {result.seconds:.1f}s on {device}")


if __name__ == "__main__":
    run_stage("train_gan", main, {
        "data": "folder with train.npz", "checkpoint": "generator checkpoint to write",
        "plots": "folder for samples.png and losses.csv", "metrics": "JSON metrics file",
    })
