"""What a test split can resolve: a tiny one never claims to resolve 2 points, whatever the
bootstrap says."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluate import VariantResult, balanced_accuracy_step, headline


def result(ba: float) -> VariantResult:
    metrics = {"balanced_accuracy": ba, "minority_recall": ba, "roc_auc": 1.0, "n_seeds": 3}
    return VariantResult(metrics, [], pd.DataFrame(), pd.DataFrame())


def perfect_draws() -> dict:
    ones = np.ones(200)
    return {name: {"balanced_accuracy": ones, "minority_recall": ones,
                   "balanced_accuracy_test_only": ones} for name in ("gan@0.5", "real")}


def test_every_fit_perfect_on_seven_test_images_does_not_resolve_two_points() -> None:
    y_test = np.array([0, 0, 1, 1, 1, 1, 1])
    step = balanced_accuracy_step(y_test, 2)
    assert step == 0.25  # one of the two class-0 images moves balanced accuracy by 1/4
    h = headline({"gan@0.5": result(1.0), "real": result(1.0)},
                 {"gan": "gan@0.5", "baseline": "real"}, perfect_draws(), n_test=7, step=step)
    assert h["balanced_accuracy_delta_ci95_width"] == 0.0  # the bootstrap alone would say "yes"
    assert h["resolves_2_points"] is False
    assert h["balanced_accuracy_mdd80"] == 0.25  # no smaller than one image


def test_a_large_test_split_with_a_narrow_interval_resolves_two_points() -> None:
    y_test = np.repeat([0, 1], [300, 700])
    h = headline({"gan@0.5": result(0.9), "real": result(0.9)},
                 {"gan": "gan@0.5", "baseline": "real"}, perfect_draws(), n_test=1000,
                 step=balanced_accuracy_step(y_test, 2))
    assert h["resolves_2_points"] is True
    assert h["balanced_accuracy_mdd80"] == balanced_accuracy_step(y_test, 2)
