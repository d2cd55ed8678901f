"""generate's image grids, for people to look at (PNG plots): one row per class."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.artifacts import grid_scale, image_grid

if TYPE_CHECKING:
    from pipeline.pool import SyntheticPool
    from pipeline.synthesize import Synthesis

GRID_PER_CLASS = 8  # images per class and side
CLOSEST_PAIRS = 8


def real_vs_synthetic(images: np.ndarray, labels: np.ndarray, synth: np.ndarray,
                      synth_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One row per class: up to 8 real training images, then up to 8 synthetic ones."""
    rows = []
    blank = np.full((1, *images.shape[1:]), 255, dtype=np.uint8)
    for c in range(n_classes):
        real = images[labels == c][:GRID_PER_CLASS]
        fake = synth[synth_labels == c][:GRID_PER_CLASS]
        real = np.concatenate([real, np.repeat(blank, GRID_PER_CLASS - len(real), axis=0)])
        rows.append(np.concatenate([real, blank, fake]))
    return image_grid(rows, scale=grid_scale(images.shape[1]))


def selection_extremes(ship: SyntheticPool, n_classes: int) -> np.ndarray:
    """One row per class: its best-scored shipped images (left), then its worst-scored ones."""
    return _two_ends(ship, -ship.scores, n_classes)


def realness_extremes(synth: SyntheticPool, n_classes: int) -> np.ndarray:
    """One row per class: its most synthetic-looking images by the cross-fitted real-vs-synthetic
    classifier (left), then its most real-looking ones."""
    return _two_ends(synth, synth.realness, n_classes)


def _two_ends(synth: SyntheticPool, key: np.ndarray, n_classes: int) -> np.ndarray:
    """One row per class: the 8 images with the lowest `key`, a blank, the 8 with the highest."""
    rows = []
    blank = np.full((1, *synth.images.shape[1:]), 255, dtype=np.uint8)
    for c in range(n_classes):
        idx = np.flatnonzero(synth.labels == c)
        idx = idx[np.argsort(key[idx], kind="stable")]
        low, high = idx[:GRID_PER_CLASS], idx[::-1][:GRID_PER_CLASS][::-1]
        pad = [blank] * (GRID_PER_CLASS - len(low))
        rows.append(np.concatenate([synth.images[low], *pad, blank, synth.images[high], *pad]))
    return image_grid(rows, scale=grid_scale(synth.images.shape[1]))


def closest_pairs(images: np.ndarray, synth: Synthesis) -> np.ndarray:
    """Top row: the first draw's synthetic images nearest to a training image (nearest first);
    bottom row: that training image. A white tile when nothing was generated."""
    audit = synth.first_audit
    if audit is None:
        return image_grid([np.full((1, *images.shape[1:]), 255, np.uint8)])
    order = np.argsort(audit.distances, kind="stable")[:CLOSEST_PAIRS]
    return image_grid([synth.first_draw[order], images[audit.nearest[order]]],
                      scale=grid_scale(images.shape[1]))
