"""What the export holds, row by row: the chosen training set and the val/test splits.

The training set is never rebuilt here: it is what `VARIANTS[variant.base]` builds for the variant
that metrics/evaluate.json's `selection.gan` names (the same call evaluate makes), so the export
follows every variant the registry knows. `TrainingSet.pool_index` says which pool images it
took, which gives each synthetic row its seed and score. Without a chosen synthetic configuration
(evaluate chose none, or is not in the pipeline) the synthetic rows are generate's shipped set
(synthetic.npz + manifest.csv: the balance target of `generate.target`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import Split, load_split
from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineError
from pipeline.pool import SyntheticPool, load_pool
from pipeline.variants import VARIANTS, TrainingSet, Variant

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Part:
    """One split of the export: images and labels, and each row's provenance."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    synthetic: np.ndarray  # (N,) bool
    seeds: np.ndarray  # (N,) int64 latent seed of a synthetic row; -1 on real rows
    scores: np.ndarray  # (N,) float64 selection score of a synthetic row; NaN on real rows
    patient_ids: np.ndarray | None = None  # (N,) str; "" on synthetic rows; None: input had none
    sample_weights: np.ndarray | None = None  # (N,) loss weight per row (gan_downweight); None: 1

    def counts(self, n_classes: int, *, synthetic: bool | None = None) -> dict[int, int]:
        """Rows per class: all of them, or only the synthetic (True) or real (False) ones."""
        keep = np.ones(len(self.labels), bool) if synthetic is None else self.synthetic == synthetic
        n = np.bincount(self.labels[keep], minlength=n_classes)
        return {c: int(n[c]) for c in range(n_classes)}


@dataclass(frozen=True)
class ExportSet:
    parts: dict[str, Part]  # train, val, test
    class_names: list[str]
    chosen: str | None  # the evaluate variant whose training set `train` is; None: generate's set
    checkpoint_sha256: str  # the generator every synthetic row came from
    class_weights: np.ndarray | None = None  # (K,) loss weights the chosen variant trains with
    pretrain: bool = False  # the chosen variant pretrains on the synthetic rows, then fine-tunes


def real_part(split: Split) -> Part:
    n = len(split.labels)
    return Part(split.images, split.labels, np.zeros(n, bool), np.full(n, -1, np.int64),
                np.full(n, np.nan), split.patient_ids)


def load_prepared(path: Path) -> Split:
    """A prepared split with its patient ids, where prepare kept them (never unpickles)."""
    images, labels = load_split(path)
    with np.load(path, allow_pickle=False) as z:
        patients = z["patient_ids"].astype(str) if "patient_ids" in z.files else None
    return Split(images, labels, patients)


def chosen_variant(evaluate: Mapping[str, Any] | None, cfg: EvaluateConfig) -> Variant | None:
    """The synthetic configuration evaluate chose on validation (None: it chose none or did not
    run), as a Variant of the current evaluate params."""
    from pipeline.evaluate import expand_variants

    name = ((evaluate or {}).get("selection") or {}).get("gan")
    if name is None:
        return None
    known = {v.name: v for v in expand_variants(cfg)}
    if name not in known:
        raise PipelineError(
            f"metrics/evaluate.json chose {name!r}, which the evaluate params no longer list "
            f"({', '.join(known)}); rerun `dvc repro evaluate` before exporting")
    return known[name]


def with_chosen(train: Split, pool: SyntheticPool, variant: Variant, *, n_classes: int,
                seed: int, synthetic_weight: float = 1.0) -> tuple[Part, TrainingSet]:
    """The training part of `variant`: what the registry builds (the real rows first), each
    synthetic row carrying the seed and score of the pool image it is."""
    data = VARIANTS[variant.base](train, pool, variant, n_classes=n_classes, seed=seed,
                                  synthetic_weight=synthetic_weight)
    idx = data.pool_index
    if idx is None:
        raise PipelineError(f"evaluate variant {variant.name!r} does not say which synthetic "
                            "images it holds (TrainingSet.pool_index); it cannot be exported")
    if data.pretrain is not None:  # pretraining set first, then the real rows it fine-tunes on
        images = np.concatenate([data.images, data.pretrain[0]])
        labels = np.concatenate([data.labels, data.pretrain[1]])
    else:
        images, labels = data.images, data.labels
    n_real = len(labels) - len(idx)
    if not np.array_equal(labels[n_real:], pool.labels[idx]):
        raise PipelineError(f"evaluate variant {variant.name!r}: its synthetic rows are not the "
                            "pool images its pool_index names; fix the variant builder")
    # patient ids belong to the real rows only when they are the training split as it is
    same = (n_real == len(train.labels) and np.array_equal(labels[:n_real], train.labels)
            and np.array_equal(images[:n_real], train.images))
    part = _joined(images, labels, n_real, pool.seeds[idx], pool.scores[idx],
                   train.patient_ids if same else None)
    if data.sample_weights is not None and data.pretrain is None:
        part = dataclasses.replace(part, sample_weights=np.asarray(data.sample_weights, float))
    return part, data


def with_shipped(train: Split, synthetic_dir: Path) -> Part:
    """The real split + generate's shipped balance set, with the manifest's seeds and scores."""
    import pandas as pd

    images, labels = load_split(synthetic_dir / "synthetic.npz")
    table = pd.read_csv(synthetic_dir / "manifest.csv")
    if len(table) != len(labels) or not np.array_equal(table["label"].to_numpy(), labels):
        raise PipelineError(f"{synthetic_dir}: manifest.csv does not describe synthetic.npz row "
                            "for row; rerun `dvc repro generate`")
    return _joined(np.concatenate([train.images, images]), np.concatenate([train.labels, labels]),
                   len(train.labels), table["seed"].to_numpy(np.int64),
                   table["score"].to_numpy(np.float64), train.patient_ids)


def _joined(images: np.ndarray, labels: np.ndarray, n_real: int, seeds: np.ndarray,
            scores: np.ndarray, patients: np.ndarray | None) -> Part:
    n_synth = len(labels) - n_real
    synthetic = np.r_[np.zeros(n_real, bool), np.ones(n_synth, bool)]
    if patients is not None:  # synthetic images belong to no patient
        patients = np.concatenate([patients.astype(str), np.full(n_synth, "")])
    return Part(images, labels, synthetic, np.r_[np.full(n_real, -1, np.int64), seeds],
                np.r_[np.full(n_real, np.nan), scores], patients)


def build_export(data_dir: Path, synthetic_dir: Path, *, evaluate: Mapping[str, Any] | None,
                 cfg: EvaluateConfig, class_names: list[str], checkpoint_sha256: str,
                 seed: int) -> ExportSet:
    """Read the prepared splits and the synthetic images and assemble the export (module doc)."""
    splits = {s: load_prepared(data_dir / f"{s}.npz") for s in SPLITS}
    n_classes = len(class_names)
    variant = chosen_variant(evaluate, cfg)
    weights, pretrain = None, False
    if variant is None:
        train = with_shipped(splits["train"], synthetic_dir)
    else:
        train, data = with_chosen(splits["train"], load_pool(synthetic_dir / "pool.npz"), variant,
                                  n_classes=n_classes, seed=seed,
                                  synthetic_weight=cfg.synthetic_weight)
        weights, pretrain = data.class_weights, data.pretrain is not None
    parts = {"train": train, **{s: real_part(splits[s]) for s in ("val", "test")}}
    return ExportSet(parts, list(class_names), None if variant is None else variant.name,
                     checkpoint_sha256, weights, pretrain)
