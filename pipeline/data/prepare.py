"""The prepare stage's work: source -> resized uint8 images -> stratified splits -> imbalanced train."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.config import DataConfig, PrepareConfig
from pipeline.data.imbalance import keep_fractions, subsample_indices
from pipeline.data.sources import SOURCES
from pipeline.data.transforms import resize, to_channels
from pipeline.errors import PipelineError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64


@dataclass(frozen=True)
class PreparedDataset:
    splits: dict[str, Split]
    class_names: list[str]
    report: dict[str, Any]  # class counts etc., written to metrics/prepare.json


def class_counts(labels: np.ndarray, n_classes: int) -> dict[int, int]:
    counts = np.bincount(labels, minlength=n_classes)
    return {c: int(counts[c]) for c in range(n_classes)}


def stratified_split(
    labels: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices of train/val/test, each class spread over the splits in proportion."""
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min())
    if smallest < 3:
        rare = int(np.flatnonzero(counts == smallest)[0])
        raise PipelineError(
            f"class {rare} has only {smallest} image(s); each class needs at least 3 to be split "
            "into train/val/test: add images or remove the class"
        )
    idx = np.arange(len(labels))
    rest, test = train_test_split(
        idx, test_size=test_fraction, stratify=labels, random_state=seed
    )
    train, val = train_test_split(
        rest, test_size=val_fraction / (1 - test_fraction), stratify=labels[rest],
        random_state=seed,
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def prepare_dataset(data: DataConfig, cfg: PrepareConfig, *, seed: int) -> PreparedDataset:
    raw = SOURCES[data.source](data)
    if len(raw.labels) == 0:
        raise PipelineError(f"data.source {data.source}: the dataset is empty")
    images = resize(to_channels(raw.images, cfg.channels), cfg.image_size)
    n_classes = len(raw.class_names)

    index = stratified_split(
        raw.labels, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=seed
    )
    train_before = class_counts(raw.labels[index["train"]], n_classes)
    fractions = keep_fractions(n_classes, cfg)
    kept = subsample_indices(raw.labels[index["train"]], fractions, seed=seed)
    index["train"] = index["train"][kept]

    splits = {s: Split(images[index[s]], raw.labels[index[s]]) for s in SPLITS}
    counts = {s: class_counts(splits[s].labels, n_classes) for s in SPLITS}
    train_counts = list(counts["train"].values())
    report = {
        "source": data.source,
        "n_classes": n_classes,
        "class_names": raw.class_names,
        "image_shape": list(images.shape[1:]),
        "n_images": {s: len(splits[s].labels) for s in SPLITS},
        "counts": counts,
        "train_counts_before_imbalance": train_before,
        "train_keep_fraction": {c: round(f, 4) for c, f in fractions.items()},
        "imbalance_ratio": round(max(train_counts) / max(1, min(train_counts)), 3),
    }
    return PreparedDataset(splits, raw.class_names, report)
