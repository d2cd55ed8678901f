"""The evaluate stage's work: GAN augmentation against the standard balancing baselines.

Every variant gets the same classifier, step budget and seeds; only its training set (and, for the
class_weight variants, the loss weights) differ. Point estimates are seed means on the untouched
test split; 95% intervals come from one shared two-level bootstrap (test images and training
seeds), paired across variants, so differences against `real` get their own interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import precision_score, roc_curve

from pipeline import LogFn
from pipeline.artifacts import Split
from pipeline.classify import inverse_frequency, predict_proba, train_classifier
from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineError
from pipeline.metrics import classification_metrics, confusion_table


@dataclass(frozen=True)
class TrainingSet:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    class_weights: np.ndarray | None = None  # (K,) loss weights, or None for plain CE


def _real(train: Split, synth: Split, *, n_classes: int, seed: int) -> TrainingSet:
    return TrainingSet(train.images, train.labels)


def _class_weight(train: Split, synth: Split, *, n_classes: int, seed: int) -> TrainingSet:
    return TrainingSet(train.images, train.labels, inverse_frequency(train.labels, n_classes))


def _oversample(train: Split, synth: Split, *, n_classes: int, seed: int) -> TrainingSet:
    from imblearn.over_sampling import RandomOverSampler

    idx, _ = RandomOverSampler(random_state=seed).fit_resample(
        np.arange(len(train.labels)).reshape(-1, 1), train.labels)
    idx = idx.ravel()
    return TrainingSet(train.images[idx], train.labels[idx])


def _smote(train: Split, synth: Split, *, n_classes: int, seed: int) -> TrainingSet:
    from imblearn.over_sampling import SMOTE

    smallest = int(np.bincount(train.labels)[np.bincount(train.labels) > 0].min())
    if smallest < 2:
        raise PipelineError("evaluate.variants: smote needs at least 2 training images in every "
                            "class; drop smote from evaluate.variants or add images")
    flat = train.images.reshape(len(train.labels), -1).astype(np.float32)
    x, y = SMOTE(k_neighbors=min(5, smallest - 1), random_state=seed).fit_resample(
        flat, train.labels)
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, *train.images.shape[1:])
    return TrainingSet(images, np.asarray(y, dtype=np.int64))


def _gan(train: Split, synth: Split, *, n_classes: int, seed: int) -> TrainingSet:
    return TrainingSet(np.concatenate([train.images, synth.images]),
                       np.concatenate([train.labels, synth.labels]))


def _gan_class_weight(train: Split, synth: Split, *, n_classes: int, seed: int) -> TrainingSet:
    both = _gan(train, synth, n_classes=n_classes, seed=seed)
    return TrainingSet(both.images, both.labels, inverse_frequency(both.labels, n_classes))


# variant name (params `evaluate.variants`) -> its training set
VARIANTS: dict[str, Callable[..., TrainingSet]] = {
    "real": _real, "class_weight": _class_weight, "oversample": _oversample, "smote": _smote,
    "gan": _gan, "gan_class_weight": _gan_class_weight,
}


@dataclass
class VariantResult:
    metrics: dict[str, Any]  # seed means + intervals: one object of metrics/evaluate.json
    per_seed: list[dict[str, Any]]  # classification_metrics of each seed
    confusion: pd.DataFrame  # actual, predicted per test image (first seed)
    roc: pd.DataFrame  # fpr, tpr: the minority class against the rest (seed-mean scores)
    train_counts: dict[int, int] = field(default_factory=dict)
    probas: np.ndarray | None = None  # (S, N, K) test probabilities per seed


def evaluate_variants(
    train: Split, synthetic: Split, test: Split, cfg: EvaluateConfig, *, n_classes: int,
    seed: int, device: torch.device,
    log_for: Callable[[str, int], LogFn] = lambda variant, seed: (lambda metrics, step: None),
    on_fit: Callable[[str, int], None] = lambda variant, seed: None,
) -> dict[str, VariantResult]:
    """Train each variant with seeds seed..seed+cfg.seeds-1 and score it on `test`."""
    minority = int(np.argmin(np.bincount(train.labels, minlength=n_classes)))
    results: dict[str, VariantResult] = {}
    fitted: dict[str, np.ndarray] = {}  # training-set fingerprint -> test probabilities (S, N, K)
    for name in cfg.variants:
        data = VARIANTS[name](train, synthetic, n_classes=n_classes, seed=seed)
        key = _fingerprint(data)
        if key not in fitted:  # e.g. gan_class_weight is gan when the synthetic set balances
            probas = []
            for s in range(seed, seed + cfg.seeds):
                model = train_classifier(
                    data.images, data.labels, cfg, n_classes=n_classes, seed=s, device=device,
                    class_weights=data.class_weights, log=log_for(name, s),
                )
                probas.append(predict_proba(model, test.images, device=device))
                on_fit(name, s)
            fitted[key] = np.stack(probas)
        else:
            for s in range(seed, seed + cfg.seeds):
                on_fit(name, s)
        results[name] = _summarize(fitted[key], test.labels, data.labels,
                                   n_classes=n_classes, minority=minority)
    add_intervals(results, test.labels, minority=minority, n_boot=cfg.bootstrap, seed=seed)
    return results


def _fingerprint(data: TrainingSet) -> str:
    """Equal fingerprints = the same training run: same images and labels, and class weights that
    change the loss (uniform weights leave weighted cross-entropy unchanged)."""
    h = hashlib.blake2b(data.images.tobytes(), digest_size=16)
    h.update(data.labels.tobytes())
    w = data.class_weights
    present = np.bincount(data.labels, minlength=len(w)) > 0 if w is not None else None
    if w is not None and not np.allclose(w[present], w[present][0]):
        h.update(np.asarray(w, dtype=np.float64).tobytes())
    return h.hexdigest()


def _summarize(
    probas: np.ndarray, y_true: np.ndarray, train_labels: np.ndarray, *, n_classes: int,
    minority: int,
) -> VariantResult:
    per_seed = [_seed_metrics(p, y_true, minority=minority) for p in probas]
    metrics: dict[str, Any] = {
        k: float(np.mean([m[k] for m in per_seed]))
        for k, v in per_seed[0].items() if not isinstance(v, dict)
    }
    metrics["recall"] = {c: float(np.mean([m["recall"][c] for m in per_seed]))
                         for c in range(n_classes)}
    metrics["balanced_accuracy_seed_std"] = float(np.std([m["balanced_accuracy"]
                                                          for m in per_seed]))
    metrics.update(n_train=len(train_labels), n_seeds=len(probas), minority_class=minority)
    fpr, tpr, _ = roc_curve(y_true == minority, probas[:, :, minority].mean(axis=0))
    counts = np.bincount(train_labels, minlength=n_classes)
    return VariantResult(
        metrics, per_seed, confusion_table(y_true, probas[0].argmax(axis=1)),
        pd.DataFrame({"fpr": fpr, "tpr": tpr}), {c: int(counts[c]) for c in range(n_classes)},
        probas,
    )


def _seed_metrics(proba: np.ndarray, y_true: np.ndarray, *, minority: int) -> dict[str, Any]:
    m = classification_metrics(y_true, proba, minority=minority)
    y_pred = proba.argmax(axis=1)
    m["minority_precision"] = float(precision_score(
        y_true == minority, y_pred == minority, zero_division=0))
    if proba.shape[1] == 2:  # binary: the minority class is the positive one
        m["sensitivity"] = m["recall"][minority]
        m["specificity"] = m["recall"][1 - minority]
    return m


def bootstrap_recalls(
    preds: np.ndarray, y_true: np.ndarray, weights: np.ndarray, n_classes: int
) -> np.ndarray:
    """Per-class recall for every bootstrap resample and seed: (B, S, K).

    preds (S, N) predicted labels; weights (B, N) how often each test image is drawn in each
    resample. A class absent from a resample gets NaN.
    """
    onehot = np.eye(n_classes)[y_true]  # (N, K)
    correct = (preds == y_true[None, :]).astype(np.float64)  # (S, N)
    hits = np.einsum("bn,sn,nk->bsk", weights, correct, onehot)
    totals = weights @ onehot  # (B, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / totals[:, None, :]


def add_intervals(
    results: dict[str, VariantResult], y_true: np.ndarray, *, minority: int, n_boot: int,
    seed: int,
) -> None:
    """95% percentile intervals of the seed-mean balanced accuracy and minority recall, and of
    their paired differences against `real`, from one bootstrap of test images and seeds."""
    if n_boot == 0:
        return
    n_seeds, n, n_classes = next(iter(results.values())).probas.shape
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # (B, N) test resamples
    # Two-level bootstrap: seeds are resampled too, so the intervals cover training-seed noise
    # as well as test-set noise. Same draws for every variant: paired differences.
    picks = rng.integers(0, n_seeds, size=(n_boot, n_seeds))[:, :, None]  # (B, S, 1)
    draws = {}
    for name, res in results.items():
        recalls = bootstrap_recalls(res.probas.argmax(axis=2), y_true, weights, n_classes)
        recalls = np.take_along_axis(recalls, picks, axis=1)  # (B, S, K)
        draws[name] = {"balanced_accuracy": np.nanmean(recalls, axis=2).mean(axis=1),
                       "minority_recall": recalls[:, :, minority].mean(axis=1)}
    for name, res in results.items():
        for key, values in draws[name].items():
            res.metrics[f"{key}_ci95"] = _ci(values)
        if name != "real" and "real" in draws:
            vs = {}
            for key, values in draws[name].items():
                vs[f"{key}_delta"] = res.metrics[key] - results["real"].metrics[key]
                vs[f"{key}_delta_ci95"] = _ci(values - draws["real"][key])
            vs["roc_auc_delta"] = res.metrics["roc_auc"] - results["real"].metrics["roc_auc"]
            res.metrics["vs_real"] = vs


def _ci(values: np.ndarray) -> list[float]:
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]
