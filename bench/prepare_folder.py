"""Bar of the data issue: `prepare` on a folder of 100,000 64x64 PNGs (two classes).

Writes the PNGs once into --dir (kept for reruns), then times `prepare_dataset` (decode in parallel,
split, checks, imbalance) and `save_split` for the three splits, and samples the process's RSS to
report peak memory over the baseline against the size of the prepared uint8 arrays.

    python bench/prepare_folder.py --n 100000 --size 64 --dir /tmp/bench_pngs
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from pipeline.artifacts import save_split
from pipeline.config import parse_config
from pipeline.data import prepare_dataset


def _write(args: tuple[Path, int, int, int]) -> None:
    root, start, stop, size = args
    rng = np.random.default_rng(start)
    yy, xx = np.mgrid[:size, :size]
    for i in range(start, stop):
        label = "benign" if i % 10 else "malignant"  # 90 / 10: imbalanced like the real thing
        cy, cx, r = rng.uniform(size * 0.3, size * 0.7, 2).tolist() + [rng.uniform(4, size / 3)]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) * 180
        img = np.clip(blob + rng.normal(40, 12, (size, size)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / label / f"{i:06d}.png")


def make_folder(root: Path, n: int, size: int) -> None:
    done = root / ".complete"
    if done.exists() and done.read_text() == f"{n} {size}":
        return
    for label in ("benign", "malignant"):
        (root / label).mkdir(parents=True, exist_ok=True)
    step = 2000
    with mp.get_context("fork").Pool() as pool:
        pool.map(_write, [(root, s, min(s + step, n), size) for s in range(0, n, step)])
    done.write_text(f"{n} {size}")


class PeakRSS:
    """Samples this process's resident memory every 10 ms in a background thread."""

    def __init__(self) -> None:
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()

    def __enter__(self) -> PeakRSS:
        self.base = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "bench_pngs")
    args = parser.parse_args()
    t = time.perf_counter()
    make_folder(args.dir, args.n, args.size)
    print(f"fixture: {args.n} PNGs {args.size}x{args.size} in {args.dir} "
          f"({time.perf_counter() - t:.0f} s to write or find)")
    cfg = parse_config({"data": {"source": "folder", "path": str(args.dir)},
                        "prepare": {"image_size": args.size, "imbalance": "none"}})
    out = Path(tempfile.mkdtemp())
    with PeakRSS() as mem:
        t = time.perf_counter()
        data = prepare_dataset(cfg.data, cfg.prepare, seed=0)
        t_prepare = time.perf_counter() - t
        for name, split in data.splits.items():
            save_split(out / f"{name}.npz", split.images, split.labels)
        t_total = time.perf_counter() - t
    prepared = sum(s.images.nbytes for s in data.splits.values())
    print(f"machine: {os.cpu_count()} cores")
    print("| measurement | value |\n|---|---|")
    print(f"| images | {sum(len(s.labels) for s in data.splits.values())} |")
    print(f"| prepare_dataset (decode, split, checks) | {t_prepare:.1f} s |")
    print(f"| + writing the three .npz | {t_total:.1f} s |")
    print(f"| prepared arrays | {prepared / 2**20:.0f} MiB |")
    print(f"| peak RSS over baseline | {(mem.peak - mem.base) / 2**20:.0f} MiB "
          f"({(mem.peak - mem.base) / prepared:.2f}x the prepared arrays) |")
    print(f"| output files | {len(list(out.iterdir()))} |")


if __name__ == "__main__":
    main()
