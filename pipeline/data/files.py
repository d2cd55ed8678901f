"""Decode many image files in parallel, streaming into one preallocated uint8 array."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Sequence
from functools import partial

import numpy as np

from pipeline.data.decode import BadImage, decode_file

CHUNK = 256  # files per task: big enough to amortise inter-process overhead


def _decode_chunk(
    paths: Sequence[str], *, size: int, channels: int
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    out = np.zeros((len(paths), size, size, channels), dtype=np.uint8)
    bad: list[tuple[int, str]] = []
    for i, p in enumerate(paths):
        try:
            out[i] = decode_file(p, size=size, channels=channels)
        except BadImage as e:
            bad.append((i, str(e)))
    return out, bad


def decode_many(
    paths: Sequence[str], *, size: int, channels: int, workers: int = 0
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(images (N, size, size, channels) uint8, [(index, reason) of files that failed]).

    Failed files leave a zero image at their index; the caller drops or reports them. Only one
    uint8 copy of the dataset is ever held (plus the chunks in flight).
    """
    n = len(paths)
    images = np.zeros((n, size, size, channels), dtype=np.uint8)
    bad: list[tuple[int, str]] = []
    workers = workers or os.cpu_count() or 1
    starts = range(0, n, CHUNK)
    work = partial(_decode_chunk, size=size, channels=channels)
    chunks = (list(paths[s : s + CHUNK]) for s in starts)
    if workers == 1 or n <= CHUNK:
        results = map(work, chunks)
        for start, (block, errs) in zip(starts, results):
            images[start : start + len(block)] = block
            bad += [(start + i, why) for i, why in errs]
        return images, bad
    # fork: workers start in milliseconds and need no importable __main__. Callers decode before
    # they start threads (the prepare stage opens its MLflow run only afterwards).
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        for start, (block, errs) in zip(starts, pool.imap(work, chunks)):
            images[start : start + len(block)] = block
            bad += [(start + i, why) for i, why in errs]
    return images, bad
