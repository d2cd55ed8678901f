"""The synthesizer contract and its checkpoint.

A method module (pipeline/synthesizers/<name>.py, listed in registry.METHODS) provides:

    SECTIONS: tuple[str, ...]   the params sections it reads (its resume key and metadata)
    READS: tuple[str, ...]      the `train_gan` keys it reads (LOOP_SETTINGS and its own); the
                                stage names any other changed train_gan key as unread
    train(images, labels, cfg, *, n_classes, device, log, quality, checkpoint, resume_key,
          notify) -> Trained
    load(ckpt: dict, *, device) -> Synthesizer   (ckpt as written by Synthesizer.checkpoint())

and its synthesizer answers `sample(labels, seeds) -> uint8 (N, H, W, C)`, image i a function of
(labels[i], seeds[i]) alone. Checkpoints hold tensors and plain values only, so they load with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.artifacts import load_checkpoint, save_checkpoint
from pipeline.errors import PipelineError
from pipeline.gan.sampling import sample
from pipeline.gan.state import FitResult

FORMAT = "imbalance-gan/synthesizer/v1"
# the train_gan keys every method reads: the shared loop's schedule and the stage's device
LOOP_SETTINGS = ("method", "steps", "ema_decay", "eval_every", "checkpoint_every", "log_every",
                 "device")
LEGACY_GENERATOR = "imbalance-gan/generator/v1"  # a generator-only checkpoint: the dcgan method


class Synthesizer:
    """Trained once, then `sample(labels, seeds)`; `meta` is everything but the weights:
    {"format", "method", "config": {section: settings}, "sampling": {...}, "n_classes",
    "step", "best_step", "seed", ...}."""

    method: str
    meta: dict[str, Any]

    @property
    def n_classes(self) -> int:
        return int(self.meta["n_classes"])

    def sample(self, labels: np.ndarray, seeds: np.ndarray, *, batch_size: int = 512
               ) -> np.ndarray:  # uint8 (N, H, W, C)
        raise NotImplementedError

    def checkpoint(self) -> dict[str, Any]:
        raise NotImplementedError

    def sources(self, labels: np.ndarray, seeds: np.ndarray) -> np.ndarray | None:
        """Training-split index of the image each sample was made from (translation methods);
        None for methods that sample from noise."""
        return None

    def save(self, path: str | Path) -> None:
        save_checkpoint(path, self.checkpoint())


class GeneratorSynthesizer(Synthesizer):
    """A generator G(z (B, latent_dim), y (B,)) -> (B, C, H, W) in [-1, 1], z from each seed
    (pipeline/gan/latents.py). Subclasses change `sampler()` (e.g. truncation)."""

    def __init__(self, G: nn.Module, *, meta: dict[str, Any], device: torch.device) -> None:
        self.G, self.meta, self.device = G.to(device).eval(), meta, device
        self.method = meta["method"]

    def sampler(self) -> nn.Module:
        return self.G

    def sample(self, labels: np.ndarray, seeds: np.ndarray, *, batch_size: int = 512
               ) -> np.ndarray:
        return sample(self.sampler(), labels, seeds, latent_dim=self.meta["sampling"]["latent_dim"],
                      device=self.device, batch_size=batch_size)

    def checkpoint(self) -> dict[str, Any]:
        return {**self.meta, "format": FORMAT, "state_dict": self.G.state_dict()}


@dataclass
class Trained:
    """What a method's `train` returns to the train_gan stage."""

    synthesizer: Synthesizer  # the kept model (lowest fid_domain when quality was measured)
    steps: int
    seconds: float
    images_per_second: float
    history: list[dict[str, float]] = field(default_factory=list)  # one row per log interval
    quality: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation
    best: dict[str, float] | None = None  # the kept quality row

    @classmethod
    def of(cls, synthesizer: Synthesizer, result: FitResult, *, images_per_step: int) -> Trained:
        """A finished loop's result (`result.keep_best()` already applied) as a method's answer."""
        steps, seconds = result.state.step, result.seconds
        return cls(synthesizer, steps=steps, seconds=seconds, history=result.history,
                   quality=result.quality, best=result.best,
                   images_per_second=steps * images_per_step / max(seconds, 1e-9))


# a synthesizer -> quality metrics including fid_domain (pipeline/gan/quality.py QualityProbe)
SynthQualityFn = Callable[[Synthesizer], dict[str, float]]


def sections(cfg: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Config sections as plain JSON values (checkpoint metadata, resume keys)."""
    return {n: json.loads(json.dumps(dataclasses.asdict(getattr(cfg, n)))) for n in names}


def load_synthesizer(path: str | Path, *, device: torch.device) -> Synthesizer:
    """Any method's checkpoint -> its synthesizer (eval mode, on `device`)."""
    from pipeline.synthesizers.registry import METHODS, method_module

    ckpt = load_checkpoint(path)
    found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
    if found == LEGACY_GENERATOR:
        ckpt = {**ckpt, "method": "dcgan"}
    elif found != FORMAT:
        raise PipelineError(
            f"{path}: not a synthesizer checkpoint of this project (format {found!r}, expected "
            f"{FORMAT!r}); rerun `dvc repro train_gan`"
        )
    if ckpt["method"] not in METHODS:
        raise PipelineError(
            f"{path}: made by method {ckpt['method']!r}, which this code does not know (known: "
            f"{', '.join(METHODS)}); rerun `dvc repro train_gan`"
        )
    return method_module(ckpt["method"]).load(ckpt, device=device)
