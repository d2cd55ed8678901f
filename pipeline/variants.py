"""The training sets evaluate compares: the one registry of variant names (`evaluate.variants`).

`VARIANTS` maps each name to the function that builds its training set from the real training
split and generate's scored pool; params validation (pipeline/config.py), evaluate and the tests
read the names from it. Pure numpy: importable by the config without the torch stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.balance import inverse_frequency
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.artifacts import Split
    from pipeline.pool import SyntheticPool


@dataclass(frozen=True)
class TrainingSet:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    class_weights: np.ndarray | None = None  # (K,) loss weights, or None for plain CE
    augment: bool = True  # classifier-side augmentation (evaluate.augment)
    pretrain: tuple[np.ndarray, np.ndarray] | None = None  # trained on first, then on images
    sample_weights: np.ndarray | None = None  # (N,) loss weight of each image, or None for all 1
    # which pool images it holds (the export's provenance): indices into the pool of the rows
    # appended after the real ones, or of `pretrain`'s rows; None: no synthetic images
    pool_index: np.ndarray | None = None


@dataclass(frozen=True)
class Variant:
    """One evaluated training set: `base` from evaluate.variants, with its synthetic share."""

    base: str
    ratio: float | str | None = None  # gan, gan_random, gan_class_weight: the synthetic share

    @property
    def name(self) -> str:
        return self.base if self.ratio is None else f"{self.base}@{ratio_text(self.ratio)}"

    @property
    def synthetic(self) -> bool:
        return self.base in SYNTHETIC


def ratio_text(ratio: float | str) -> str:
    return ratio if isinstance(ratio, str) else f"{ratio:g}"


def synthetic_counts(labels: np.ndarray, n_classes: int, ratio: float | str) -> dict[int, int]:
    """Synthetic images per class for a share `ratio`: every class below the majority gets
    round(ratio x its real count), capped at what brings it to the majority; `balance` fills up.
    >>> synthetic_counts(np.array([0] * 10 + [1] * 4), 2, 0.5)
    {0: 0, 1: 2}
    >>> synthetic_counts(np.array([0] * 10 + [1] * 4), 2, "balance")
    {0: 0, 1: 6}
    """
    counts = np.bincount(labels, minlength=n_classes)
    top = int(counts.max())
    gap = {c: top - int(n) for c, n in enumerate(counts)}
    if ratio == "balance":
        return gap
    return {c: min(gap[c], int(round(float(ratio) * int(counts[c])))) for c in gap}


def mixed_counts(labels: np.ndarray, n_classes: int, ratio: float) -> dict[int, int]:
    """Label-free mixing: every class, the majority too, gets round(ratio x its real count), so
    the share of synthetic images is the same in every class and says nothing about the label.
    >>> mixed_counts(np.array([0] * 10 + [1] * 4), 2, 0.5)
    {0: 5, 1: 2}
    """
    counts = np.bincount(labels, minlength=n_classes)
    return {c: int(round(float(ratio) * int(n))) for c, n in enumerate(counts)}


def _with_synthetic(train: Split, pool: SyntheticPool, counts: dict[int, int], *, by: str
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real split + `counts[c]` pool images of each class, ranked `by` (SyntheticPool.take);
    also the pool indices of the synthetic rows (appended after the real ones)."""
    idx = pool.take(counts, by=by)
    return (np.concatenate([train.images, pool.images[idx]]),
            np.concatenate([train.labels, pool.labels[idx]]), idx)


def _real(train: Split, pool: SyntheticPool, v: Variant, *, n_classes: int, seed: int,
          synthetic_weight: float = 1.0) -> TrainingSet:
    return TrainingSet(train.images, train.labels, augment=v.base != "real_noaug")


def _class_weight(train: Split, pool: SyntheticPool, v: Variant, *, n_classes: int, seed: int,
                  synthetic_weight: float = 1.0) -> TrainingSet:
    return TrainingSet(train.images, train.labels, inverse_frequency(train.labels, n_classes))


def _oversample(train: Split, pool: SyntheticPool, v: Variant, *, n_classes: int, seed: int,
                synthetic_weight: float = 1.0) -> TrainingSet:
    from imblearn.over_sampling import RandomOverSampler

    idx, _ = RandomOverSampler(random_state=seed).fit_resample(
        np.arange(len(train.labels)).reshape(-1, 1), train.labels)
    idx = idx.ravel()
    return TrainingSet(train.images[idx], train.labels[idx])


def _smote(train: Split, pool: SyntheticPool, v: Variant, *, n_classes: int, seed: int,
           synthetic_weight: float = 1.0) -> TrainingSet:
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


def _gan(train: Split, pool: SyntheticPool, v: Variant, *, n_classes: int, seed: int,
         synthetic_weight: float = 1.0) -> TrainingSet:
    """gan, gan_random, gan_real, gan_class_weight, gan_downweight: real + a synthetic top-up of
    the classes below the majority; gan_mix: real + the same share of synthetic images in every
    class, with class weights for the real imbalance."""
    if v.base == "gan_mix":
        counts = mixed_counts(train.labels, n_classes, v.ratio)
    else:
        counts = synthetic_counts(train.labels, n_classes, v.ratio)
    by = {"gan_random": "draw", "gan_real": "realness"}.get(v.base, "scores")
    images, labels, idx = _with_synthetic(train, pool, counts, by=by)
    n_synth = len(idx)
    weights = (inverse_frequency(labels, n_classes)
               if v.base in ("gan_class_weight", "gan_mix") else None)
    sample_weights = None
    if v.base == "gan_downweight":
        sample_weights = np.r_[np.ones(len(train.labels)), np.full(n_synth, synthetic_weight)]
    return TrainingSet(images, labels, weights, sample_weights=sample_weights, pool_index=idx)


def _gan_pretrain(train: Split, pool: SyntheticPool, v: Variant, *, n_classes: int, seed: int,
                  synthetic_weight: float = 1.0) -> TrainingSet:
    """A class-balanced synthetic set (the majority's count per class, best-scored first), then
    the real split as it is."""
    top = int(np.bincount(train.labels, minlength=n_classes).max())
    idx = pool.take({c: top for c in range(n_classes)})
    return TrainingSet(train.images, train.labels, pretrain=(pool.images[idx], pool.labels[idx]),
                       pool_index=idx)


# base variant name (params `evaluate.variants`) -> its training set
VARIANTS: dict[str, Callable[..., TrainingSet]] = {
    "real": _real, "real_noaug": _real, "class_weight": _class_weight,
    "oversample": _oversample, "smote": _smote, "gan": _gan, "gan_random": _gan,
    "gan_class_weight": _gan, "gan_pretrain": _gan_pretrain, "gan_real": _gan, "gan_mix": _gan,
    "gan_downweight": _gan,
}
# evaluated once per synthetic_ratios entry (gan_mix once per numeric entry: `balance` has no
# meaning when every class gets synthetic images)
SHARED = ("gan", "gan_random", "gan_class_weight", "gan_real", "gan_mix", "gan_downweight")
NUMERIC_ONLY = ("gan_mix",)
SYNTHETIC = (*SHARED, "gan_pretrain")  # variants that train on synthetic images
