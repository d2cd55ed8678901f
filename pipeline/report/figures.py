"""The report's figures: matplotlib `Figure` objects (no pyplot state, no display needed), and
`save_figures`, which draws every figure the inputs allow."""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import auc, confusion_matrix

from pipeline.errors import PipelineError
from pipeline.report.fmt import class_label, f3, is_interval, minority_class, num, split_counts
from pipeline.report.inputs import ReportInputs

DPI = 110
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
# titles of the stages' image grids (inputs.GRIDS keys), redrawn with class names on the rows
GRID_TITLES = {
    "samples": "Generator samples (EMA), one row per class",
    "real_vs_synthetic": "Real training images (left) | synthetic (right)",
    "closest_pairs": "Synthetic images nearest to a training image, nearest first",
    "selection": "Shipped synthetic images: best-scored (left) | worst-scored (right)",
    "shortcut": "Most synthetic-looking (left) | most real-looking (right)",
}
GRID_ROWS = {"closest_pairs": ["synthetic", "nearest real"]}  # grids whose rows are not classes


def save_figures(inputs: ReportInputs, folder: Path, names: Sequence[str]) -> dict[str, str]:
    """Draw every figure the inputs allow into `folder` (the stages' grids are copied along as
    <key>_original.png); returns key -> path relative to the page (figures/<key>.png)."""
    minority = minority_class(inputs.evaluate)
    builders = {
        "class_counts": lambda: plot_class_counts(
            inputs.generate.get("counts_before") or split_counts(inputs.prepare, "train"),
            inputs.generate.get("synthetic_per_class") or {}, names),
        "balanced_accuracy": lambda: plot_balanced_accuracy(inputs.evaluate),
        "recall": lambda: plot_recall(inputs.evaluate, names),
    }
    if inputs.losses is not None and len(inputs.losses):
        builders["gan_losses"] = lambda: plot_losses(inputs.losses)
    if inputs.roc:
        builders["roc"] = lambda: plot_roc(inputs.roc,
                                           minority_name=class_label(minority, names))
    if inputs.confusion:
        builders["confusion"] = lambda: plot_confusions(inputs.confusion, names)
    for key, path in inputs.grids.items():
        shutil.copyfile(path, folder / f"{key}_original.png")
        builders[key] = lambda path=path, key=key: plot_grid(
            path, GRID_ROWS.get(key, names), title=GRID_TITLES[key])
    made = {}
    for key, build in builders.items():
        build().savefig(folder / f"{key}.png", dpi=DPI)
        made[key] = f"figures/{key}.png"
    return made


def plot_class_counts(before: Mapping[str, int], added: Mapping[str, int],
                      class_names: Sequence[str]) -> Figure:
    """Per class: real training images and synthetic images added (grouped bars)."""
    n = len(class_names)
    x = np.arange(n)
    real = [int(before.get(str(c), 0)) for c in range(n)]
    synth = [int(added.get(str(c), 0)) for c in range(n)]
    fig = Figure(figsize=(min(14.0, max(6.0, 0.6 * n + 3)), 3.8), dpi=DPI)
    ax = fig.add_subplot()
    ax.bar(x - 0.2, real, 0.4, label="real training images", color=COLORS[0])
    ax.bar(x + 0.2, synth, 0.4, label="synthetic added", color=COLORS[1])
    _class_ticks(ax, class_names, axis="x")
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.set_title("Training images per class: real and synthetic")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_losses(losses: pd.DataFrame) -> Figure:
    """Training losses by step (the method's loss columns: every column named `loss` or
    `*_loss`, e.g. a GAN's d_loss and g_loss, cyclegan's cycle and identity losses);
    discriminator outputs on real and fake in a second panel if logged; ADA's augmentation
    probability p and its overfitting signal r_t in a third (method stylegan)."""
    loss = [c for c in losses.columns if c == "loss" or c.endswith("_loss")]
    extra = [c for c in ("d_real", "d_fake") if c in losses.columns]
    ada = [c for c in ("ada_p", "ada_rt") if c in losses.columns]
    n = 1 + bool(extra) + bool(ada)
    fig = Figure(figsize=(6 + 3 * (n - 1), 3.6), dpi=DPI)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for i, col in enumerate(loss):
        axes[0].plot(losses["step"], losses[col], label=col, color=COLORS[i % len(COLORS)])
    axes[0].set_title("Training losses")
    axes[0].set_ylabel("loss")
    if extra:
        for i, col in enumerate(extra):
            axes[1].plot(losses["step"], losses[col], label=col, color=COLORS[2 + i])
        axes[1].set_title("Discriminator output on real and fake")
        axes[1].set_ylabel("mean D output")
    if ada:
        for i, col in enumerate(ada):
            axes[-1].plot(losses["step"], losses[col], label=col, color=COLORS[i])
        axes[-1].set_title("ADA: augmentation probability p, r_t")
        axes[-1].set_ylabel("p / E[sign D(real)]")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(frameon=False)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_recall(evaluate: Mapping[str, Mapping[str, Any]], class_names: Sequence[str]) -> Figure:
    """Per-class test recall, one bar per variant."""
    n, variants = len(class_names), list(evaluate)
    width = 0.8 / len(variants)
    fig = Figure(figsize=(min(12.0, max(6.5, n * (0.15 * len(variants) + 0.3) + 2.5)), 3.8),
                 dpi=DPI)
    ax = fig.add_subplot()
    for i, v in enumerate(variants):
        recall = evaluate[v].get("recall") or {}
        values = [num(recall.get(str(c))) for c in range(n)]
        ax.bar(np.arange(n) - 0.4 + width * (i + 0.5), values, width, label=v,
               color=COLORS[i % len(COLORS)])
    _class_ticks(ax, class_names, axis="x")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("test recall")
    ax.set_title("Per-class recall on the test split")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              title="variant", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_roc(roc: Mapping[str, pd.DataFrame], *, minority_name: str) -> Figure:
    """Minority class against the rest: one ROC curve per variant, with the chance diagonal."""
    fig = Figure(figsize=(5.2, 4.6), dpi=DPI)
    ax = fig.add_subplot()
    for i, (v, frame) in enumerate(roc.items()):
        area = roc_area(frame)
        ax.plot(frame["fpr"], frame["tpr"], label=f"{v} (AUC {f3(area)})",
                color=COLORS[i % len(COLORS)], linewidth=1.6)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC: minority class {minority_name} vs rest")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_balanced_accuracy(evaluate: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Balanced accuracy per variant with its 95% interval (horizontal), real's value marked."""
    variants = list(evaluate)[::-1]  # first variant on top
    values = np.array([num(evaluate[v].get("balanced_accuracy")) for v in variants])
    cis = [evaluate[v].get("balanced_accuracy_ci95") for v in variants]
    lo = np.array([values[i] - ci[0] if is_interval(ci) else 0.0 for i, ci in enumerate(cis)])
    hi = np.array([ci[1] - values[i] if is_interval(ci) else 0.0 for i, ci in enumerate(cis)])
    fig = Figure(figsize=(6.4, 0.45 * len(variants) + 1.6), dpi=DPI)
    ax = fig.add_subplot()
    y = np.arange(len(variants))
    ax.errorbar(values, y, xerr=[lo, hi], fmt="o", color=COLORS[0], ecolor="#555555",
                capsize=4)
    if "real" in evaluate:
        ax.axvline(num(evaluate["real"].get("balanced_accuracy")), color=COLORS[3],
                   linestyle="--", linewidth=1, label="real (no balancing)")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_yticks(y, variants)
    ax.set_ylim(-0.6, len(variants) - 0.4)
    ax.set_xlabel("balanced accuracy (test, seed mean) with 95% CI")
    ax.set_title("Balanced accuracy by variant")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_confusions(confusion: Mapping[str, pd.DataFrame], class_names: Sequence[str]) -> Figure:
    """One confusion matrix per variant (rows: actual, normalized to recall; cells: counts)."""
    n, k = len(class_names), len(confusion)
    cols = min(k, 3)
    rows = math.ceil(k / cols)
    side = max(2.8, 0.32 * n + 1.4)
    fig = Figure(figsize=(side * cols + 0.9, side * rows + 0.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    image = None
    for ax, (v, frame) in zip(axes, confusion.items()):
        counts = confusion_counts(frame, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = counts / counts.sum(axis=1, keepdims=True)
        image = ax.imshow(np.nan_to_num(share), cmap="Blues", vmin=0, vmax=1)
        if n <= 12:
            for (i, j), c in np.ndenumerate(counts):
                ax.text(j, i, str(c), ha="center", va="center", fontsize=7 if n > 5 else 9,
                        color="white" if share[i, j] > 0.6 else "black")
        _class_ticks(ax, class_names, axis="both")
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title(v)
    for ax in axes[k:]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[:k]), shrink=0.8, label="share of the actual class")
    fig.suptitle("Confusion matrices (test split)")
    return fig


def plot_grid(path: Path, class_names: Sequence[str], *, title: str) -> Figure:
    """A PNG with one row per class (the stages' sample grids), with class names on the rows."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise PipelineError(f"{path}: not a readable image ({e}); rerun `dvc repro`") from None
    h, w = pixels.shape[:2]
    width = min(9.0, w / 90, 11.0 * w / h)  # inches of image: about 1:1 pixels, at most 9 x 11
    width = max(width, min(9.0, 0.085 * len(title)))  # room for the whole title
    fig = Figure(figsize=(width + 0.9, width * h / w + 0.6), dpi=DPI)
    ax = fig.add_subplot()
    ax.imshow(pixels, interpolation="nearest")
    n = len(class_names)
    ax.set_yticks([(i + 0.5) * h / n for i in range(n)], list(class_names))
    ax.set_xticks([])
    ax.set_ylabel("class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def confusion_counts(frame: pd.DataFrame, n_classes: int) -> np.ndarray:
    """(K, K) test images by [actual, predicted] from evaluate's CSV; labels outside 0..K-1 are
    left out. All zeros when no row has a known actual class (sklearn refuses that case)."""
    labels = np.arange(n_classes)
    if not np.isin(frame["actual"].to_numpy(), labels).any():
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return confusion_matrix(frame["actual"], frame["predicted"], labels=labels)


def roc_area(frame: pd.DataFrame) -> float:
    """Area under one ROC curve as evaluate wrote it (fpr, tpr); NaN for fewer than two points."""
    if len(frame) < 2:
        return float("nan")
    return float(auc(frame["fpr"].to_numpy(float), frame["tpr"].to_numpy(float)))


def _class_ticks(ax: Any, class_names: Sequence[str], *, axis: str) -> None:
    ticks = np.arange(len(class_names))
    # rotate only when the names would run into each other
    long = len(class_names) * max((len(c) for c in class_names), default=0) > 40
    if axis in ("x", "both"):
        ax.set_xticks(ticks, list(class_names), rotation=45 if long else 0,
                      ha="right" if long else "center")
    if axis in ("y", "both"):
        ax.set_yticks(ticks, list(class_names))
