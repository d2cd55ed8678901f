"""pipeline/metrics: classification metrics on hand-worked answers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from pipeline.metrics import classification_metrics, confusion_table


def one_hot_proba(pred: list[int], n_classes: int, *, confidence: float = 0.8) -> np.ndarray:
    """Probabilities whose argmax is `pred`; rows sum to 1."""
    p = np.full((len(pred), n_classes), (1 - confidence) / (n_classes - 1))
    p[np.arange(len(pred)), pred] = confidence
    return p


def test_perfect_predictions_score_one_everywhere() -> None:
    y = np.array([0, 1, 2, 2, 1, 0, 2])
    m = classification_metrics(y, one_hot_proba(y.tolist(), 3), minority=1)
    assert m["accuracy"] == m["balanced_accuracy"] == m["macro_f1"] == m["roc_auc"] == 1.0
    assert m["recall"] == {0: 1.0, 1: 1.0, 2: 1.0}
    assert m["minority_recall"] == 1.0


def test_hand_worked_imbalanced_case() -> None:
    y_true = np.array([0] * 6 + [1] * 2 + [2] * 2)
    y_pred = [0] * 6 + [1, 0] + [0, 0]
    m = classification_metrics(y_true, one_hot_proba(y_pred, 3), minority=2)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["recall"] == {0: 1.0, 1: 0.5, 2: 0.0}
    assert m["balanced_accuracy"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    # F1: class 0 precision 6/9, recall 1 -> 0.8; class 1 precision 1, recall 0.5 -> 2/3; class 2: 0
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0.0) / 3)
    assert m["minority_recall"] == 0.0
    assert 0.0 <= m["roc_auc"] <= 1.0
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"):
        assert isinstance(m[key], float)


def test_binary_auc_is_the_plain_auc_of_the_positive_class() -> None:
    y_true = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])  # 3 of the 4 (positive, negative) pairs ranked right
    m = classification_metrics(y_true, np.stack([1 - p1, p1], axis=1))
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.75)  # argmax: 0, 0, 0, 1
    assert m["recall"] == {0: 1.0, 1: 0.5}
    assert "minority_recall" not in m


def test_multiclass_auc_is_macro_one_vs_rest() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([
        [0.6, 0.3, 0.1], [0.3, 0.4, 0.3],  # class 0
        [0.2, 0.7, 0.1], [0.5, 0.4, 0.1],  # class 1
        [0.1, 0.1, 0.8], [0.2, 0.2, 0.6],  # class 2
    ])
    # one-vs-rest AUC = share of (positive, negative) pairs ranked right, ties count 1/2:
    #   class 0: (0.6, 0.3) vs (0.2, 0.5, 0.1, 0.2) -> 7 / 8
    #   class 1: (0.7, 0.4) vs (0.3, 0.4, 0.1, 0.2) -> 7.5 / 8
    #   class 2: (0.8, 0.6) vs (0.1, 0.3, 0.1, 0.1) -> 8 / 8
    m = classification_metrics(y_true, proba)
    assert m["roc_auc"] == pytest.approx((7 / 8 + 7.5 / 8 + 1.0) / 3)


def test_auc_is_nan_when_a_class_is_missing_from_y_true() -> None:
    y_true = np.array([0, 1, 0, 1])
    m = classification_metrics(y_true, one_hot_proba([0, 1, 0, 1], 3))
    assert math.isnan(m["roc_auc"])
    assert m["recall"] == {0: 1.0, 1: 1.0, 2: 0.0}  # absent class: zero_division=0
    assert m["accuracy"] == 1.0
    with warnings.catch_warnings():  # sklearn warns about a single label in y_true
        warnings.simplefilter("ignore", UserWarning)
        binary = classification_metrics(np.array([1, 1]), one_hot_proba([1, 1], 2))
    assert math.isnan(binary["roc_auc"])


def test_confusion_table_has_one_row_per_image() -> None:
    y_true = np.array([0, 1, 2, 2], dtype=np.int64)
    y_pred = np.array([0, 2, 2, 1], dtype=np.int32)
    t = confusion_table(y_true, y_pred)
    assert isinstance(t, pd.DataFrame)
    assert list(t.columns) == ["actual", "predicted"]
    assert t.to_dict("list") == {"actual": [0, 1, 2, 2], "predicted": [0, 2, 2, 1]}
    assert pd.crosstab(t.actual, t.predicted).loc[2, 2] == 1
