"""Pure functions of class counts: how many synthetic images each class needs, and loss weights."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from pipeline.errors import PipelineError


# generate.target -> the count each class is filled up to, from (majority count, count, ratio)
TARGETS: dict[str, Callable[[int, int, float], int]] = {
    "majority": lambda majority, count, ratio: majority,
    "count": lambda majority, count, ratio: count,
    "ratio": lambda majority, count, ratio: math.ceil(ratio * majority - 1e-9),
}


def balance_plan(
    counts: Mapping[int, int], *, target: str = "majority", count: int = 0, ratio: float = 1.0
) -> dict[int, int]:
    """Synthetic images to add per class so every class reaches the target; never negative.

    majority: up to max(counts).  count: up to `count`.  ratio: up to ceil(ratio * max(counts)).
    >>> balance_plan({0: 100, 1: 30, 2: 5})
    {0: 0, 1: 70, 2: 95}
    >>> balance_plan({0: 100, 1: 30}, target="ratio", ratio=0.5)
    {0: 0, 1: 20}
    """
    if not counts:
        raise PipelineError("balance_plan: no classes to balance (the training split is empty)")
    if target not in TARGETS:
        raise PipelineError(f"generate.target: {target!r} is not one of {', '.join(TARGETS)}")
    goal = TARGETS[target](max(counts.values()), count, ratio)
    return {c: max(0, goal - n) for c, n in counts.items()}


def inverse_frequency(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's 'balanced' weights: n / (K * n_c); 0 for absent classes."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
