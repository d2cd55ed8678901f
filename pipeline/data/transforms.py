"""Resize and channel conversion to the configured image size and channel count."""

from __future__ import annotations

import numpy as np
from PIL import Image


def luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) uint8 grey, ITU-R 601 weights."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def resample_method(size: int, h: int, w: int) -> Image.Resampling:
    """Area-averaging when shrinking (no aliasing), bicubic when enlarging."""
    return Image.Resampling.BOX if size < min(h, w) else Image.Resampling.BICUBIC


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, H, W, channels): grey -> RGB by repetition, RGB -> grey by luma."""
    c = images.shape[-1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if c == 3 and channels == 1:
        return luma(images)[..., None]
    raise ValueError(f"cannot convert {c} channels to {channels}")


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, size, size, C) uint8 (area-averaging down, bicubic up)."""
    n, h, w, c = images.shape
    if h == size and w == size:
        return images
    method = resample_method(size, h, w)
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for i in range(n):
        img = images[i, :, :, 0] if c == 1 else images[i]
        resized = np.asarray(Image.fromarray(img).resize((size, size), method))
        out[i] = resized.reshape(size, size, c)
    return out
