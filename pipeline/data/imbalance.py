"""How many training images each class keeps: pure functions of counts and params."""

from __future__ import annotations

import numpy as np

from pipeline.config import PrepareConfig
from pipeline.errors import PipelineError

# `prepare.imbalance: auto` per data.source: only the digits demo, balanced by nature, simulates a
# rare class; a user's own data (every other source) is kept as it is.
AUTO_IMBALANCE = {"digits": "long_tail"}


def resolve_imbalance(imbalance: str, *, source: str) -> str:
    """The method `prepare.imbalance` stands for on `source` (`auto` resolved)."""
    return AUTO_IMBALANCE.get(source, "none") if imbalance == "auto" else imbalance


def keep_fractions(
    n_classes: int, cfg: PrepareConfig, *, source: str = "", class_names: list[str] | None = None
) -> dict[int, float]:
    """Fraction of its training images each class keeps.

    `source` resolves `imbalance: auto` (see AUTO_IMBALANCE); `class_names` only make errors
    readable.

    long_tail: class k keeps min_fraction ** (k / (K - 1)), a geometric tail from 1.0 (class 0)
    down to min_fraction (the last class). E.g. K=10, min_fraction=0.08 keeps
    1.00, 0.76, 0.57, 0.43, 0.33, 0.25, 0.19, 0.14, 0.11, 0.08.
    """
    method = resolve_imbalance(cfg.imbalance, source=source)
    if method == "none":
        return {k: 1.0 for k in range(n_classes)}
    if method == "long_tail":
        if n_classes == 1:
            return {0: 1.0}
        return {k: cfg.min_fraction ** (k / (n_classes - 1)) for k in range(n_classes)}
    if method == "counts":  # counts are per class, not fractions: see keep_counts
        return {k: 1.0 for k in range(n_classes)}
    chosen = resolve_classes(cfg.keep_fractions, "prepare.keep_fractions", n_classes=n_classes,
                             class_names=class_names)
    return {k: chosen.get(k, 1.0) for k in range(n_classes)}


def resolve_classes(
    by_class: dict, key: str, *, n_classes: int, class_names: list[str] | None = None
) -> dict[int, float]:
    """`{class: value}` with each class given by its name or its label index -> `{label: value}`.
    A class that does not exist, or one named twice, is an error naming the classes there are."""
    names = list(class_names or [])
    out: dict[int, float] = {}
    for c, value in by_class.items():
        if isinstance(c, str) and c in names:
            label = names.index(c)
        elif isinstance(c, int) and 0 <= c < n_classes:
            label = c
        elif isinstance(c, str) and c.isdigit() and int(c) < n_classes:  # "1" from a -S override
            label = int(c)
        else:
            listed = "" if not names else " (" + ", ".join(
                f"{i} = {n}" for i, n in enumerate(names)) + ")"
            raise PipelineError(f"{key}: class {c!r} does not exist; classes are "
                                f"0..{n_classes - 1}{listed}")
        if label in out:
            raise PipelineError(f"{key}: class {label} is given twice (by name and by label)")
        out[label] = value
    return out


def keep_counts(
    train_labels: np.ndarray, cfg: PrepareConfig, *, n_classes: int,
    class_names: list[str] | None = None,
) -> dict[int, int]:
    """How many training images each class keeps under `prepare.imbalance: counts`: its
    keep_counts entry, or all it has. A count above what the class has is an error naming it."""
    have = np.bincount(train_labels, minlength=n_classes)
    chosen = resolve_classes(cfg.keep_counts, "prepare.keep_counts", n_classes=n_classes,
                             class_names=class_names)
    for label, n in chosen.items():
        if n > have[label]:
            name = class_names[label] if class_names and label < len(class_names) else label
            raise PipelineError(
                f"prepare.keep_counts: class {name!r} (label {label}) has only {have[label]} "
                f"training images, fewer than the {n} asked for; ask for at most {have[label]}")
    return {k: int(chosen.get(k, have[k])) for k in range(n_classes)}


def nested_indices(labels: np.ndarray, counts: dict[int, int], *, seed: int) -> np.ndarray:
    """Sorted indices of the images kept: the first counts[c] of one seeded permutation of class
    c's images. The permutation depends on (seed, c) alone, so the subsets are nested: the 10
    kept are among the 25 kept, and changing one class's count never changes another's."""
    keep = [np.random.default_rng([seed, c]).permutation(np.flatnonzero(labels == c))[:n]
            for c, n in counts.items()]
    return np.sort(np.concatenate(keep)) if keep else np.empty(0, dtype=np.int64)


def subsample_indices(
    labels: np.ndarray, fractions: dict[int, float], *, seed: int
) -> np.ndarray:
    """Sorted indices of the images kept: round(n_c * f_c) per class, at least 1, chosen at random."""
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for c, f in fractions.items():
        idx = np.flatnonzero(labels == c)
        n_keep = min(len(idx), max(1, round(len(idx) * f)))
        keep.append(rng.choice(idx, size=n_keep, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.empty(0, dtype=np.int64)
