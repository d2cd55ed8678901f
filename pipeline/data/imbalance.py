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
    unknown = sorted(set(cfg.keep_fractions) - set(range(n_classes)))
    if unknown:
        names = "" if not class_names else " (" + ", ".join(
            f"{i} = {n}" for i, n in enumerate(class_names)) + ")"
        raise PipelineError(
            f"prepare.keep_fractions: class {unknown[0]} does not exist; "
            f"classes are 0..{n_classes - 1}{names}"
        )
    return {k: cfg.keep_fractions.get(k, 1.0) for k in range(n_classes)}


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
