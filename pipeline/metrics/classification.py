"""Classification metrics for imbalanced test sets: arrays in, plain floats out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
)


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, *, minority: int | None = None
) -> dict[str, Any]:
    """Metrics from true labels (N,) and predicted class probabilities (N, K).

    roc_auc is macro one-vs-rest (plain binary AUC for K=2); it is NaN when a class is missing from
    y_true. `recall` maps each class to its recall; with `minority` given (callers pass the rarest
    *training* class), `minority_recall` is that class's recall.
    """
    n_classes = proba.shape[1]
    y_pred = proba.argmax(axis=1)
    classes = np.arange(n_classes)
    recalls = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    present = np.unique(y_true)
    if len(present) == n_classes and n_classes > 2:
        auc = roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
    elif len(present) == 2 and n_classes == 2:
        auc = roc_auc_score(y_true, proba[:, 1])
    else:
        auc = float("nan")
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro",
                                   zero_division=0)),
        "roc_auc": float(auc),
        "recall": {int(c): float(r) for c, r in zip(classes, recalls)},
    }
    if minority is not None:
        out["minority_recall"] = float(recalls[minority])
    return out


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """One row per test image (actual, predicted): the layout DVC's confusion template reads."""
    return pd.DataFrame({"actual": y_true.astype(int), "predicted": y_pred.astype(int)})
