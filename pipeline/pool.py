"""The synthetic pool: every audited candidate `generate` drew, with its selection score.

`generate` ships the best-scored images that balance the classes (`synthetic.npz`) and writes the
whole pool (`pool.npz`), from which `evaluate` takes each share of its sweep: best-scored first
(`generate.score`), most real-looking first (the cross-fitted realness of pipeline/shortcut.py), or
unselected (in draw order), so no image is generated twice.

Distinct seeds need not give distinct images: `cyclegan` translates training images, so a class's
pool holds each translation about `candidates_per_image` times, every copy with the same score.
`take` therefore hands out a repeat of an image only after every distinct image of its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts import save_split
from pipeline.errors import PipelineError

FIELDS = ("images", "labels", "seeds", "scores", "draw", "realness")
ORDERS = ("scores", "realness", "draw")  # what `take` ranks by


@dataclass(frozen=True, eq=False)
class SyntheticPool:
    images: np.ndarray  # (P, H, W, C) uint8
    labels: np.ndarray  # (P,) int64
    seeds: np.ndarray  # (P,) int64 latent seed of each image
    scores: np.ndarray  # (P,) float64 selection score, higher is better
    draw: np.ndarray  # (P,) int64 position in draw order within its class (0 = first drawn)
    # (P,) float64 cross-fitted probability that a real-vs-synthetic classifier takes the image
    # for real (pipeline/shortcut.py); ones where it was not measured
    realness: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.realness is None:
            object.__setattr__(self, "realness", np.ones(len(self.labels)))

    def count(self, c: int) -> int:
        return int((self.labels == c).sum())

    def take(self, counts: Mapping[int, int], *, by: str = "scores") -> np.ndarray:
        """Indices of counts[c] images of each class c: the best-scored ones (`by="scores"`), the
        most real-looking ones (`"realness"`) or the first ones drawn (`"draw"`: what generation
        without selection ships); in any order, repeats of an image come after every distinct
        image of the class."""
        out = []
        for c, n in counts.items():
            idx = np.flatnonzero(self.labels == c)
            if n > len(idx):
                raise PipelineError(
                    f"the synthetic pool has {len(idx)} images of class {c}, {n} were asked for; "
                    "raise generate.candidates_per_image and rerun `dvc repro generate`")
            key = self.draw[idx] if by == "draw" else -getattr(self, by)[idx]
            ranked = idx[np.argsort(key, kind="stable")]
            ranked = ranked[np.argsort(copy_number(self.images[ranked]), kind="stable")]
            out.append(ranked[:n])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def subset(self, idx: np.ndarray) -> SyntheticPool:
        return SyntheticPool(*(getattr(self, f)[idx] for f in FIELDS))

    def save(self, path: str | Path) -> None:
        save_split(path, self.images, self.labels, seeds=self.seeds, scores=self.scores,
                   draw=self.draw, realness=self.realness)


def copy_number(images: np.ndarray) -> np.ndarray:
    """(N,) int64 for images (N, ...): 0 at an image's first occurrence, 1 at its first repeat, ...

    >>> copy_number(np.array([[7], [8], [7], [7]])).tolist()
    [0, 0, 1, 2]
    """
    rows = images.reshape(len(images), int(np.prod(images.shape[1:])))
    inverse = np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)  # (N,) image id
    order = np.argsort(inverse, kind="stable")  # the copies of each image, in input order
    grouped = inverse[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(len(order)) - np.repeat(starts, sizes)
    return out


def load_pool(path: str | Path) -> SyntheticPool:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: synthetic pool not found; run `dvc repro generate`")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in FIELDS}
    except (KeyError, ValueError, OSError) as e:
        raise PipelineError(f"{path}: not a synthetic pool of this project ({e}); rerun "
                            "`dvc repro generate`") from None
    return SyntheticPool(**arrays)
