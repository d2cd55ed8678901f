"""The train_gan stage's work around a method's `train`: a progress bar with the method's losses,
the sample grid and the metrics summary of the kept model."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.artifacts import grid_scale, image_grid
from pipeline.synthesizers.base import Synthesizer, Trained
from pipeline.training.loop import is_loss

SAMPLES_PER_CLASS = 10


@contextlib.contextmanager
def progress(steps: int) -> Iterator[tuple[Callable[[dict, int], None], Callable[[str], None]]]:
    """(log, notify) for a method's `train`: a step bar with the latest losses, and messages
    printed above it. The bar closes before any error line, so that starts on a line of its own."""
    # disable=None: a bar on a terminal, nothing in captured logs (CI, files)
    bar = tqdm(total=steps, desc="train_gan", unit="step", mininterval=1.0, dynamic_ncols=True,
               disable=None)

    def log(metrics: dict, step: int) -> None:
        bar.update(step - bar.n)
        bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items() if is_loss(k)})

    def notify(message: str) -> None:
        tqdm.write(f"train_gan: {message}")

    try:
        yield log, notify
    finally:
        bar.close()


def class_samples(synthesizer: Synthesizer, n_classes: int, image_size: int) -> np.ndarray:
    """One row per class: SAMPLES_PER_CLASS images drawn with seeds 0, 1, ... in class order."""
    class_labels = np.repeat(np.arange(n_classes), SAMPLES_PER_CLASS)
    fakes = synthesizer.sample(class_labels, np.arange(len(class_labels)))
    return image_grid([fakes[class_labels == c] for c in range(n_classes)],
                      scale=grid_scale(image_size))


def summary(result: Trained, *, method: str, trtr: float, n_train: int, n_classes: int,
            device: torch.device, n_processes: int) -> dict[str, Any]:
    """metrics/train_gan.json: the kept model's quality row (the step with the lowest
    fid_domain), the real-data reference, speed and the last value of every logged column."""
    best, last = result.best, result.history[-1]
    assert best is not None  # quality runs at the last step
    return {
        "method": method, "steps": result.steps, "best_step": int(best["step"]),
        **{k: v for k, v in best.items() if k != "step"},
        "trtr_balanced_accuracy": trtr,
        "seconds": round(result.seconds, 2),
        "images_per_second": round(result.images_per_second, 1),
        # the method's losses, then its other curves (stylegan: ada_p, ada_rt)
        **{f"final_{k}": last[k] for k in result.losses},
        **{f"final_{k}": v for k, v in last.items()
           if k not in ("step", "d_real", "d_fake", *result.losses)},
        "n_train": n_train, "n_classes": n_classes, "device": str(device),
        "n_processes": n_processes,
    }


def done_line(result: Trained, *, method: str, device: torch.device, n_processes: int) -> str:
    """The stage's last line on stdout: method, steps, time, and the kept step's quality."""
    best = result.best
    on = f"{device}" if n_processes == 1 else f"{n_processes} processes ({device.type})"
    return (f"train_gan: {method}, {result.steps} steps in {result.seconds:.1f}s on {on}; kept "
            f"step {best['step']} (fid_domain {best['fid_domain']:.3f}, tstr balanced accuracy "
            f"{best['tstr_balanced_accuracy']:.3f})")
