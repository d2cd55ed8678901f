"""Synthesizer quality during training, with no downloads: `QualityProbe(synthesizer) -> metrics`.

Synthetic images are drawn with fixed seeds (the same latents at every evaluation, so the history
measures the generator, not sampling noise), as many per class as the real training split has, and
compared in the in-project feature space (pipeline/features.py): fid_domain, kid_domain,
precision/recall/density/coverage overall and per class. `tstr_balanced_accuracy` trains the
feature extractor's architecture, with its budget, on the synthetic images only and scores it on the
real *validation* split (train-synthetic-test-real; the test split is kept for evaluate's one final
scoring); compare it with the extractor's own validation score (`trtr_balanced_accuracy`, trained
on real).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from pipeline.classify import inverse_frequency, predict_proba, train_classifier
from pipeline.config import FeaturesConfig
from pipeline.features import embed
from pipeline.metrics import generative_metrics
from pipeline.synthesizers.base import Synthesizer


@dataclass
class QualityProbe:
    extractor: nn.Module
    train_images: np.ndarray  # real training split, uint8 (N, H, W, C)
    train_labels: np.ndarray
    val_images: np.ndarray  # real validation split: TSTR is scored here
    val_labels: np.ndarray
    cfg: FeaturesConfig  # the TSTR classifier's architecture and budget
    n_classes: int
    device: torch.device
    seed: int = 0
    tstr: bool = True
    real_features: np.ndarray = field(init=False, repr=False)
    fake_labels: np.ndarray = field(init=False, repr=False)
    fake_seeds: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.real_features = embed(self.extractor, self.train_images, device=self.device)
        self.fake_labels = np.sort(self.train_labels)
        # Negative: disjoint from the generate stage's seeds (seed * 2**32 + i), so the probe's
        # samples are never the ones that ship.
        self.fake_seeds = -(1 + self.seed * 2**32 + np.arange(len(self.fake_labels),
                                                              dtype=np.int64))

    def samples(self, synthesizer: Synthesizer) -> np.ndarray:
        return synthesizer.sample(self.fake_labels, self.fake_seeds)

    def __call__(self, synthesizer: Synthesizer) -> dict[str, float]:
        fakes = self.samples(synthesizer)
        fake_features = embed(self.extractor, fakes, device=self.device)
        metrics = generative_metrics(self.real_features, fake_features, self.train_labels,
                                     self.fake_labels, n_classes=self.n_classes, seed=self.seed)
        if self.tstr:
            metrics["tstr_balanced_accuracy"] = tstr_balanced_accuracy(
                fakes, self.fake_labels, self.val_images, self.val_labels, self.cfg,
                n_classes=self.n_classes, seed=self.seed, device=self.device)
        return metrics


def tstr_balanced_accuracy(
    images: np.ndarray, labels: np.ndarray, real_images: np.ndarray, real_labels: np.ndarray,
    cfg: FeaturesConfig, *, n_classes: int, seed: int, device: torch.device,
) -> float:
    """Train on `images` (synthetic), score on real held-out images: balanced accuracy."""
    model = train_classifier(images, labels, cfg, n_classes=n_classes, seed=seed, device=device,
                             class_weights=inverse_frequency(labels, n_classes))
    pred = predict_proba(model, real_images, device=device).argmax(axis=1)
    return float(balanced_accuracy_score(real_labels, pred))
