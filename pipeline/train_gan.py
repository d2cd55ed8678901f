"""The train_gan stage's work around a method's `train`: the resume key of its training state,
a progress bar, the sample grid and the metrics summary of the kept model."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import pipeline
from pipeline.artifacts import file_sha256, grid_scale, image_grid
from pipeline.config import Config, TrainGanConfig
from pipeline.synthesizers.base import Synthesizer, Trained
from pipeline.synthesizers.registry import method_module

SAMPLES_PER_CLASS = 10


def resume_key(cfg: Config, device: torch.device, train: Path, features: str | Path) -> str:
    """What a saved training state must match to be continued: every train_gan setting except
    `steps` (so a finished run can be extended), every section the method reads, the seed, the
    device type, the exact data and feature extractor, and the training code (a state from other
    code is not continued)."""
    settings = {k: v for k, v in dataclasses.asdict(cfg.train_gan).items() if k != "steps"}
    method = method_module(cfg.train_gan.method)
    others = {n: dataclasses.asdict(getattr(cfg, n)) for n in method.SECTIONS if n != "train_gan"}
    code = Path(pipeline.__file__).parent
    sources = sorted([*(code / "gan").glob("*.py"), *(code / "models").glob("*.py"),
                      *(code / "synthesizers").glob("*.py")])
    payload = json.dumps({"train_gan": settings, **others, "seed": cfg.seed, "device": device.type,
                          "train": file_sha256(train), "features": file_sha256(features),
                          "features_cfg": dataclasses.asdict(cfg.features),
                          "code": [file_sha256(f) for f in sources]},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def unread(cfg: Config) -> str | None:
    """A line naming each train_gan setting changed from its default that the method does not
    read (e.g. train_gan.width under method stylegan, whose width is stylegan.width); None if
    there is none."""
    m = cfg.train_gan.method
    reads, default = method_module(m).READS, TrainGanConfig()
    changed = [f"{f.name}={getattr(cfg.train_gan, f.name)}"
               for f in dataclasses.fields(TrainGanConfig) if f.name not in reads
               and getattr(cfg.train_gan, f.name) != getattr(default, f.name)]
    if not changed:
        return None
    return (f"train_gan: method {m} does not read train_gan {', '.join(changed)} (settings of "
            f"method dcgan); {m}'s own are in the `{m}:` section of params.yaml")


@contextlib.contextmanager
def progress(steps: int) -> Iterator[tuple[Callable[[dict, int], None], Callable[[str], None]]]:
    """(log, notify) for a method's `train`: a step bar with the latest losses, and messages
    printed above it. The bar closes before any error line, so that starts on a line of its own."""
    # disable=None: a bar on a terminal, nothing in captured logs (CI, files)
    bar = tqdm(total=steps, desc="train_gan", unit="step", mininterval=1.0, dynamic_ncols=True,
               disable=None)

    def log(metrics: dict, step: int) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(d_loss=f"{metrics['d_loss']:.3f}", g_loss=f"{metrics['g_loss']:.3f}")

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
    fid_domain), the real-data reference, speed and the last losses."""
    best, last = result.best, result.history[-1]
    assert best is not None  # quality runs at the last step
    return {
        "method": method, "steps": result.steps, "best_step": int(best["step"]),
        **{k: v for k, v in best.items() if k != "step"},
        "trtr_balanced_accuracy": trtr,
        "seconds": round(result.seconds, 2),
        "images_per_second": round(result.images_per_second, 1),
        "final_d_loss": last["d_loss"], "final_g_loss": last["g_loss"],
        # method-specific curves' last values (stylegan: ada_p, ada_rt)
        **{f"final_{k}": v for k, v in last.items()
           if k not in ("step", "d_loss", "g_loss", "d_real", "d_fake")},
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
