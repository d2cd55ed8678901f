"""The synthetic pool: every audited candidate `generate` drew, with its selection score.

`generate` ships the best-scored images that balance the classes (`synthetic.npz`) and writes the
whole pool (`pool.npz`), from which `evaluate` takes each share of its sweep, scored (best first)
or unselected (in draw order), so no image is generated twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts import save_split
from pipeline.errors import PipelineError

FIELDS = ("images", "labels", "seeds", "scores", "draw")


@dataclass(frozen=True, eq=False)
class SyntheticPool:
    images: np.ndarray  # (P, H, W, C) uint8
    labels: np.ndarray  # (P,) int64
    seeds: np.ndarray  # (P,) int64 latent seed of each image
    scores: np.ndarray  # (P,) float64 selection score, higher is better
    draw: np.ndarray  # (P,) int64 position in draw order within its class (0 = first drawn)

    def count(self, c: int) -> int:
        return int((self.labels == c).sum())

    def take(self, counts: Mapping[int, int], *, selected: bool = True) -> np.ndarray:
        """Indices of counts[c] images of each class c: the best-scored ones, or with
        `selected=False` the first ones drawn (what generation without selection ships)."""
        out = []
        for c, n in counts.items():
            idx = np.flatnonzero(self.labels == c)
            if n > len(idx):
                raise PipelineError(
                    f"the synthetic pool has {len(idx)} images of class {c}, {n} were asked for; "
                    "raise generate.candidates_per_image and rerun `dvc repro generate`")
            key = -self.scores[idx] if selected else self.draw[idx]
            out.append(idx[np.argsort(key, kind="stable")[:n]])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def subset(self, idx: np.ndarray) -> SyntheticPool:
        return SyntheticPool(*(getattr(self, f)[idx] for f in FIELDS))

    def save(self, path: str | Path) -> None:
        save_split(path, self.images, self.labels, seeds=self.seeds, scores=self.scores,
                   draw=self.draw)


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
