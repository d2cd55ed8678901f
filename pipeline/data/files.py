"""Decode many image files in parallel, streaming into one preallocated uint8 array."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from pipeline.data.decode import BadImage, fit_image, read_pixels

CHUNK = 256  # files per task: big enough to amortise inter-process overhead


def _decode_chunk(
    paths: Sequence[str], *, size: int, channels: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    out = np.zeros((len(paths), size, size, channels), dtype=np.uint8)
    # (H, W, has colour) before resizing and conversion; zeros if unreadable
    native = np.zeros((len(paths), 3), dtype=np.int64)
    bad: list[tuple[int, str]] = []
    for i, p in enumerate(paths):
        try:
            pixels = read_pixels(p)
            native[i] = (*pixels.shape[:2], has_colour(pixels))
            out[i] = fit_image(pixels, size=size, channels=channels)
        except BadImage as e:
            bad.append((i, str(e)))
    return out, native, bad


def has_colour(pixels: np.ndarray) -> bool:
    """(H, W[, C]) -> whether its R, G, B differ anywhere (grey saved as RGB has no colour)."""
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        return False
    rgb = pixels[:, :, :3]
    return bool(np.any(rgb[:, :, 0] != rgb[:, :, 1]) or np.any(rgb[:, :, 1] != rgb[:, :, 2]))


@dataclass(frozen=True)
class Decoded:
    images: np.ndarray  # (N, size, size, channels) uint8; zeros where a file failed
    native: np.ndarray  # (N, 3) int64: each file's own (H, W, has colour); zeros where it failed
    bad: list[tuple[int, str]]  # (index, reason) of the files that failed


def native_size(paths: Sequence[str]) -> int:
    """The side of the first readable image (0 if none is readable): the size every image is
    decoded to when prepare.image_size is null. The caller checks afterwards that all matched."""
    for p in paths:
        try:
            h, w = read_pixels(p).shape[:2]
        except BadImage:
            continue
        return max(h, w)
    return 0


def decode_many(
    paths: Sequence[str], *, size: int, channels: int, workers: int = 0
) -> Decoded:
    """Decode every file to (size, size, channels) uint8, recording each one's native size.

    Failed files leave a zero image at their index; the caller drops or reports them. Only one
    uint8 copy of the dataset is ever held (plus the chunks in flight).
    """
    n = len(paths)
    images = np.zeros((n, size, size, channels), dtype=np.uint8)
    native = np.zeros((n, 3), dtype=np.int64)
    bad: list[tuple[int, str]] = []
    workers = workers or os.cpu_count() or 1
    starts = range(0, n, CHUNK)
    work = partial(_decode_chunk, size=size, channels=channels)
    chunks = (list(paths[s : s + CHUNK]) for s in starts)
    if workers == 1 or n <= CHUNK:
        results: Iterable = map(work, chunks)
        pool = None
    else:
        # fork: workers start in milliseconds and need no importable __main__. Callers decode
        # before they start threads (the prepare stage opens its MLflow run only afterwards).
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = ctx.Pool(workers)
        results = pool.imap(work, chunks)
    try:
        for start, (block, sizes, errs) in zip(starts, results):
            images[start : start + len(block)] = block
            native[start : start + len(block)] = sizes
            bad += [(start + i, why) for i, why in errs]
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return Decoded(images, native, bad)
