"""The synthesizer contract and its checkpoint.

A method module (pipeline/synthesizers/<name>.py, listed in registry.METHODS) provides:

    SECTIONS: tuple[str, ...]   the params sections it reads: train_gan (the shared loop's
                                settings) and its own (its resume key and metadata)
    train(images, labels, cfg, *, n_classes, device, log, quality, checkpoint, resume_key,
          notify) -> Trained
    load(ckpt: dict, *, device) -> Synthesizer   (ckpt as written by Synthesizer.checkpoint())

and its synthesizer answers `sample(labels, seeds) -> uint8 (N, H, W, C)`, image i a function of
(labels[i], seeds[i]) alone, whatever else is in the batch (generate's manifest re-draws any
image from its row). Checkpoints hold tensors and plain values only, so they load with
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
from pipeline.pixels import to_uint8
from pipeline.registries import METHODS
from pipeline.synthesizers.latents import latents
from pipeline.training.state import FitResult

FORMAT = "imbalance-gan/synthesizer/v1"


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
    (pipeline/synthesizers/latents.py). Subclasses change `sampler()` (e.g. truncation)."""

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
    losses: tuple[str, ...] = ()  # the update's loss columns of `history`

    @classmethod
    def of(cls, synthesizer: Synthesizer, result: FitResult, *, images_per_step: int) -> Trained:
        """A finished loop's result (`result.keep_best()` already applied) as a method's answer."""
        steps, seconds = result.state.step, result.seconds
        return cls(synthesizer, steps=steps, seconds=seconds, history=result.history,
                   quality=result.quality, best=result.best, losses=result.losses,
                   images_per_second=steps * images_per_step / max(seconds, 1e-9))


# a synthesizer -> quality metrics including fid_domain (pipeline/quality.py QualityProbe)
SynthQualityFn = Callable[[Synthesizer], dict[str, float]]


def sections(cfg: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Config sections as plain JSON values (checkpoint metadata, resume keys)."""
    return {n: json.loads(json.dumps(dataclasses.asdict(getattr(cfg, n)))) for n in names}


def load_synthesizer(path: str | Path, *, device: torch.device) -> Synthesizer:
    """Any method's checkpoint -> its synthesizer (eval mode, on `device`)."""
    from pipeline.synthesizers.registry import method_module

    ckpt = load_checkpoint(path)
    found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
    if found != FORMAT:
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


@torch.no_grad()
def sample(
    G: nn.Module, labels: np.ndarray, seeds: np.ndarray, *, latent_dim: int,
    device: torch.device, batch_size: int = 512,
) -> np.ndarray:
    """Images for `labels` (N,), image i from z = latents(seeds[i]): uint8 (N, H, W, C). Seeding
    each image on its own makes any single synthetic image reproducible from the manifest."""
    G.eval()
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    # one dummy row so that an empty request still learns the image shape
    z = latents(seeds if len(seeds) else np.zeros(1, np.int64), latent_dim, device=device)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64).reshape(-1))
    y = (y if len(y) else torch.zeros(1, dtype=torch.int64)).to(device)
    # The images land in one uint8 array on the device and cross to the host once.
    first = to_uint8(G(z[:batch_size], y[:batch_size]))
    out = torch.empty((len(z), *first.shape[1:]), dtype=torch.uint8, device=device)
    out[: len(first)] = first
    for i in range(batch_size, len(z), batch_size):
        out[i : i + batch_size] = to_uint8(G(z[i : i + batch_size], y[i : i + batch_size]))
    return out[: len(seeds)].cpu().numpy()
