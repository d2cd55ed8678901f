"""The evaluate stage's work: train the classifier per variant, score it on the untouched test split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline import LogFn
from pipeline.artifacts import Split
from pipeline.classify import predict_proba, train_classifier
from pipeline.config import EvaluateConfig
from pipeline.metrics import classification_metrics, confusion_table


def _real(real: Split, synthetic: Split) -> Split:
    return real


def _gan(real: Split, synthetic: Split) -> Split:
    return Split(
        np.concatenate([real.images, synthetic.images]),
        np.concatenate([real.labels, synthetic.labels]),
    )


# variant name -> the training set it uses (params `evaluate.variants`)
VARIANTS: dict[str, Callable[[Split, Split], Split]] = {"real": _real, "gan": _gan}


@dataclass(frozen=True)
class VariantResult:
    metrics: dict[str, Any]
    confusion: pd.DataFrame  # actual, predicted per test image
    train_counts: dict[int, int]


def evaluate_variants(
    train: Split, synthetic: Split, test: Split, cfg: EvaluateConfig, *, n_classes: int,
    seed: int, device: torch.device,
    log_for: Callable[[str], LogFn] = lambda variant: (lambda metrics, step: None),
) -> dict[str, VariantResult]:
    """Train one classifier per variant (same seed, same step budget) and score it on `test`."""
    minority = int(np.argmin(np.bincount(train.labels, minlength=n_classes)))
    results = {}
    for name in cfg.variants:
        data = VARIANTS[name](train, synthetic)
        model = train_classifier(
            data.images, data.labels, cfg, n_classes=n_classes, seed=seed, device=device,
            log=log_for(name),
        )
        proba = predict_proba(model, test.images, device=device)
        metrics = classification_metrics(test.labels, proba, minority=minority)
        metrics["n_train"] = len(data.labels)
        counts = np.bincount(data.labels, minlength=n_classes)
        results[name] = VariantResult(
            metrics, confusion_table(test.labels, proba.argmax(axis=1)),
            {c: int(counts[c]) for c in range(n_classes)},
        )
    return results
