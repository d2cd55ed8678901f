"""Readers that turn a data source into (images uint8 (N, H, W, C), labels int64 (N,), class names).

Sources are looked up by name in `SOURCES` (params.yaml `data.source`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.config import DataConfig


@dataclass(frozen=True)
class RawDataset:
    images: np.ndarray  # (N, H, W, C) uint8, native size
    labels: np.ndarray  # (N,) int64 in [0, len(class_names))
    class_names: list[str]


def load_digits_source(cfg: DataConfig) -> RawDataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real scans; ships with the package)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16 (counts of set pixels in 4x4 blocks of the original 32x32 bitmaps).
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    return RawDataset(images, bunch.target.astype(np.int64), [str(n) for n in bunch.target_names])


SOURCES: dict[str, Callable[[DataConfig], RawDataset]] = {"digits": load_digits_source}
