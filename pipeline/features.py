"""The in-project feature extractor behind every generative-quality number.

FID and its relatives normally use ImageNet Inception weights, which cannot be downloaded in a
hospital's offline network and know nothing about ultrasound. Instead a small CNN is trained on the
real training split (class-weighted, so minority classes shape the features too); its penultimate
layer is the feature space for `fid_domain`, `kid_domain`, precision/recall/density/coverage and the
memorization audit, and its softmax head is the real-data classifier of the quality gate. Numbers
are comparable between GAN runs that share the same extractor file (one DVC stage trains it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline import LogFn
from pipeline.artifacts import load_checkpoint, save_checkpoint
from pipeline.classify import apply_batched, inverse_frequency, train_classifier
from pipeline.config import FeaturesConfig
from pipeline.errors import PipelineError
from pipeline.models.classifier import CLASSIFIERS

FORMAT = "imbalance-gan/features/v1"


def train_extractor(
    images: np.ndarray, labels: np.ndarray, cfg: FeaturesConfig, *, n_classes: int, seed: int,
    device: torch.device, log: LogFn = lambda metrics, step: None,
) -> nn.Module:
    """A class-weighted classifier on the real training split; `embed` reads its features."""
    return train_classifier(images, labels, cfg, n_classes=n_classes, seed=seed, device=device,
                            class_weights=inverse_frequency(labels, n_classes), log=log)


def embed(
    model: nn.Module, images: np.ndarray, *, device: torch.device, batch_size: int = 1024
) -> np.ndarray:
    """Penultimate-layer features (N, D) float32 of uint8 images (N, H, W, C)."""
    model.eval()
    return apply_batched(model.features, images, device=device, batch_size=batch_size,
                         width=model.feature_dim)


def save_extractor(
    path: str | Path, model: nn.Module, cfg: FeaturesConfig, *, model_kwargs: dict[str, int],
    seed: int, metrics: dict[str, float],
) -> None:
    save_checkpoint(path, {
        "format": FORMAT, "classifier": cfg.classifier, "model_kwargs": model_kwargs,
        "state_dict": model.state_dict(), "features": dataclasses.asdict(cfg), "seed": seed,
        "metrics": metrics,
    })


def load_extractor(path: str | Path, *, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """(extractor in eval mode on `device`, checkpoint metadata); weights_only loading."""
    ckpt = load_checkpoint(path, stage="features")
    found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
    if found != FORMAT:
        raise PipelineError(
            f"{path}: not a feature-extractor checkpoint of this project (format {found!r}, "
            f"expected {FORMAT!r}); rerun `dvc repro features`"
        )
    model = CLASSIFIERS[ckpt["classifier"]](**ckpt["model_kwargs"])
    model.load_state_dict(ckpt.pop("state_dict"))
    return model.to(device).eval(), ckpt
