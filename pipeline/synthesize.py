"""The generate stage's work: draw a pool of candidates, audit them, score them, select the best.

Every image is the synthesizer's `sample(label_i, seed_i)` with its own seed (`seed * 2**32 + i`),
so any one image can be re-drawn from the manifest, whatever the method (pipeline/synthesizers). Each candidate is embedded with the in-project feature
extractor (pipeline/features.py), which was trained on the real training split only, and

1. audited for memorization: its distance to the nearest real training image is compared with the
   1st percentile of real *validation* images' nearest-training distances (`memorization_audit`);
   `reject_memorized` replaces the flagged ones (the test split is never looked at);
2. optionally gated: with `quality_gate > 0`, a candidate that the real-data classifier (the
   extractor's head) assigns to another class with at least that confidence is replaced;
3. scored by `generate.score`: `typical = p(intended class) x min(1, realism)`, where p is the
   real-data classifier's probability and realism is the k-NN realism of Kynkäänniemi et al. 2019
   against the real training images of the intended class (>= 1 inside their k-NN manifold): 1
   means the classifier is certain and the image lies within the real class's manifold. Typical is
   not the same as real-looking: `real` is the cross-fitted probability that a real-vs-synthetic
   classifier takes the candidate for real (pipeline/shortcut.py), selection by
   indistinguishability; `typical_real` is their product. Every candidate carries its realness,
   so evaluate can compare the selections (gan_real).

Where the real images use few grey levels (the digits demo: 17) and the generator emits 256,
every candidate is first quantised to the nearest level the real training images use, so the grey
levels alone do not mark an image as synthetic (the re-draw contract is then
quantise(sample(label, seed)) with the same training split).

Replacements are drawn with the next unused seeds, round after round, until every class has its
planned number of candidates. The shipped set is the best-scored `plan[c]` candidates of each class;
the whole pool goes to evaluate's synthetic-share sweep (pipeline/pool.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.classify import predict_proba
from pipeline.errors import PipelineError
from pipeline.features import embed
from pipeline.metrics import MemorizationAudit, memorization_audit, nearest_distances, realism_score
from pipeline.pool import SyntheticPool
from pipeline.shortcut import realness, shortcut_test
from pipeline.synthesizers.base import Synthesizer

MAX_ROUNDS = 20  # the last round draws at most MAX_ROUNDS x the plan in total
REALISM_K = 5  # neighbours of the realism score's k-NN balls
QUANTIZE_LEVELS = 64  # real images with at most this many grey levels: candidates snap to them
# The shortcut test's synthetic sets, each the class's real count of candidates taken by
# SyntheticPool.take's order: generate.score's choice, the most real-looking, unselected.
SHORTCUT_SETS = {"selected": "scores", "most_real": "realness", "unselected": "draw"}


@dataclass
class Synthesis:
    pool: SyntheticPool  # every kept candidate, with its score
    memorized: np.ndarray  # (P,) bool per pool image: flagged by the audit (kept only if allowed)
    first_audit: MemorizationAudit | None  # the audit of the first draw (the generator's rate)
    first_draw: np.ndarray | None  # the first draw's images (for the closest-pairs grid)
    stats: dict[str, float | int] = field(default_factory=dict)
    features: np.ndarray | None = None  # (P, D) extractor features of the pool images

    @property
    def images(self) -> np.ndarray:
        return self.pool.images

    @property
    def labels(self) -> np.ndarray:
        return self.pool.labels

    @property
    def seeds(self) -> np.ndarray:
        return self.pool.seeds


def pool_plan(plan: dict[int, int], counts: dict[int, int], *, candidates_per_image: int
              ) -> dict[int, int]:
    """Candidates to draw per class: `candidates_per_image` x the largest of the balance plan and
    the majority count, for every class alike, so the pool holds a class-balanced synthetic set
    (gan_pretrain) as well as the best-scored top-up of each class.
    >>> pool_plan({0: 0, 1: 70}, {0: 100, 1: 30}, candidates_per_image=4)
    {0: 400, 1: 400}
    """
    size = candidates_per_image * max(max(plan.values(), default=0), max(counts.values()))
    return {c: size for c in plan}


def synthesize(
    synthesizer: Synthesizer, plan: dict[int, int], *, seed: int, device: torch.device,
    extractor: nn.Module, train_images: np.ndarray, train_labels: np.ndarray,
    val_images: np.ndarray, reject_memorized: bool, quality_gate: float, batch_size: int = 512,
    score: str = "typical",
) -> Synthesis:
    """Draw `plan[c]` audited candidates of each class c and score them (see the module doc)."""
    n_classes = len(plan)
    levels = grey_levels(train_images)
    need = np.array([plan[c] for c in range(n_classes)], dtype=np.int64)
    train_f = embed(extractor, train_images, device=device)
    val_f = embed(extractor, val_images, device=device)
    kept: list[tuple[np.ndarray, ...]] = []
    first_audit, first_draw, threshold = None, None, 0.0
    next_seed, rounds = seed * 2**32, 0
    drawn = memorized_n = gated_n = 0
    while need.sum() > 0:
        if rounds == MAX_ROUNDS:
            raise PipelineError(
                f"generate: after {MAX_ROUNDS} rounds still {int(need.sum())} synthetic images "
                f"short (per class {need.tolist()}): the filters reject almost everything; lower "
                f"generate.quality_gate, set generate.reject_memorized: false, or train the GAN "
                f"longer (train_gan.steps)"
            )
        labels = np.repeat(np.arange(n_classes), need)
        seeds = next_seed + np.arange(len(labels), dtype=np.int64)
        next_seed += len(labels)
        images = quantize(synthesizer.sample(labels, seeds, batch_size=batch_size), levels)
        feats = embed(extractor, images, device=device)
        if first_audit is None:
            first_audit = memorization_audit(feats, train_f, val_f)
            first_draw, threshold = images, first_audit.threshold
            memorized = first_audit.memorized
        else:
            memorized = first_audit.flag(nearest_distances(feats, train_f)[0])
        keep = ~memorized if reject_memorized else np.ones(len(labels), dtype=bool)
        proba = predict_proba(extractor, images, device=device)
        if quality_gate > 0:
            wrong = (proba.argmax(axis=1) != labels) & (proba.max(axis=1) >= quality_gate)
            gated_n += int((wrong & keep).sum())
            keep &= ~wrong
        drawn += len(labels)
        memorized_n += int(memorized.sum())
        kept.append((images[keep], labels[keep], seeds[keep],
                     proba[keep, labels[keep]], feats[keep], memorized[keep]))
        need -= np.bincount(labels[keep], minlength=n_classes)
        rounds += 1
    if not kept:  # nothing planned
        empty = np.zeros(0, np.int64)
        pool = SyntheticPool(np.zeros((0, *train_images.shape[1:]), np.uint8), empty, empty,
                             np.zeros(0), empty)
        return Synthesis(pool, np.zeros(0, bool), None, None, {"candidates": 0, "rounds": 0},
                         features=np.zeros((0, train_f.shape[1]), np.float32))
    images, labels, seeds, p_class, feats, memorized_kept = (np.concatenate(a) for a in zip(*kept))
    typical = p_class * np.minimum(1.0, _realism(feats, labels, train_f, train_labels))
    real = realness(images, labels, train_images, train_labels, seed=seed)
    scores = {"typical": typical, "real": real, "typical_real": typical * real}[score]
    order = np.argsort(labels, kind="stable")  # grouped by class, draw order within each
    labels = labels[order]
    draw = np.concatenate([np.arange(n) for n in np.bincount(labels, minlength=n_classes)])
    pool = SyntheticPool(images[order], labels, seeds[order], scores[order].astype(np.float64),
                         draw.astype(np.int64), real[order].astype(np.float64))
    accepted = len(labels)
    return Synthesis(pool, memorized_kept[order], first_audit, first_draw, features=feats[order],
                     stats={
        "candidates": drawn, "accepted": accepted, "acceptance_rate": accepted / drawn,
        "rounds": rounds, "memorization_rate": first_audit.memorization_rate,
        "memorization_threshold": threshold, "memorized_candidates": memorized_n,
        "rejected_memorized": memorized_n if reject_memorized else 0,
        "rejected_quality_gate": gated_n,
        "median_nearest_train_distance_synthetic": float(np.median(first_audit.distances)),
        "median_nearest_train_distance_val": float(np.median(first_audit.test_distances)),
        "score": score, "grey_levels": levels, **first_audit.report(),
    })


def grey_levels(train_images: np.ndarray) -> list[int] | None:
    """The grey levels the real images use, when there are at most QUANTIZE_LEVELS of them (the
    digits: 17); None otherwise (quantising would change nothing visible)."""
    levels = np.unique(train_images)
    return [int(v) for v in levels] if len(levels) <= QUANTIZE_LEVELS else None


def quantize(images: np.ndarray, levels: list[int] | None) -> np.ndarray:
    """Every pixel to the nearest of `levels` (unchanged when None). A manifest row re-draws as
    quantize(sample(label, seed), generate.json's grey_levels).
    >>> quantize(np.array([0, 7, 9, 200], np.uint8), [0, 16, 255]).tolist()
    [0, 0, 16, 255]
    """
    if levels is None:
        return images
    lv = np.asarray(levels, dtype=np.int64)
    lut = lv[np.abs(np.arange(256)[:, None] - lv[None, :]).argmin(axis=1)].astype(np.uint8)
    return lut[images]


def shortcut_counts(pool: SyntheticPool, train_labels: np.ndarray, n_classes: int
                    ) -> dict[int, int]:
    """Synthetic images per class under the shortcut test: the class's real training count (what
    gan@1 or gan_mix@1 would add), or the whole pool of the class if smaller."""
    return {c: min(pool.count(c), int((train_labels == c).sum())) for c in range(n_classes)}


def shortcut_summary(synth: Synthesis, *, extractor: nn.Module, device: torch.device,
                     train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray,
                     val_labels: np.ndarray, seed: int) -> dict[str, Any]:
    """metrics/generate.json's `shortcut`: for each of SHORTCUT_SETS, the per-class two-sample
    test (pipeline/shortcut.py) of the class's real count of candidates against its real
    training images (fit) and validation images (held out)."""
    pool, n_classes = synth.pool, int(max(train_labels.max(), val_labels.max())) + 1
    counts = shortcut_counts(pool, train_labels, n_classes)
    train_f = embed(extractor, train_images, device=device)
    val_f = embed(extractor, val_images, device=device)
    out: dict[str, Any] = {"sets": {k: f"each class's real count of candidates by {v}"
                                    for k, v in SHORTCUT_SETS.items()}}
    for name, by in SHORTCUT_SETS.items():
        idx = pool.take(counts, by=by)
        out[name] = shortcut_test(
            real_images=train_images, real_labels=train_labels, real_feats=train_f,
            held_images=val_images, held_labels=val_labels, held_feats=val_f,
            synth_images=pool.images[idx], synth_labels=pool.labels[idx],
            synth_feats=synth.features[idx], n_classes=n_classes, seed=seed)
    return out


def _realism(feats: np.ndarray, labels: np.ndarray, train_f: np.ndarray,
             train_labels: np.ndarray) -> np.ndarray:
    """Realism of each candidate against the real training features of its own class; a class
    with fewer than 2 real images cannot define a manifold and scores 1 (no penalty)."""
    out = np.ones(len(labels))
    for c in np.unique(labels):
        real = train_f[train_labels == c]
        if len(real) >= 2:
            out[labels == c] = realism_score(feats[labels == c], real, k=REALISM_K)
    return out


def manifest(ship: SyntheticPool, *, sources: np.ndarray | None, checkpoint_sha256: str
             ) -> pd.DataFrame:
    """One row per shipped image: what regenerates it (label, seed, checkpoint), its score, and
    for a translation the training image it was made from."""
    table = pd.DataFrame({"index": np.arange(len(ship.labels)), "label": ship.labels,
                          "seed": ship.seeds, "score": ship.scores.round(6),
                          "checkpoint_sha256": checkpoint_sha256})
    if sources is not None:
        table.insert(4, "source_index", sources)
    return table


def summary(synth: Synthesis, shipped: np.ndarray, *, plan: dict[int, int],
            before: dict[int, int], target: str, checkpoint_sha256: str) -> dict[str, Any]:
    """metrics/generate.json: class counts before and after, the pool, the audit's numbers and the
    scores of what was shipped (`shipped`: indices into the pool)."""
    pool = synth.pool
    ship = pool.subset(shipped)
    return {"target": target, "n_synthetic": len(ship.labels),
            "counts_before": before, "synthetic_per_class": plan,
            "counts_after": {c: before[c] + plan[c] for c in before},
            "pool_per_class": {c: pool.count(c) for c in before},
            **synth.stats,
            "memorization_rate_shipped": float(synth.memorized[shipped].mean())
            if len(shipped) else 0.0,
            "score_mean_shipped": float(ship.scores.mean()) if len(shipped) else None,
            "score_mean_pool": float(pool.scores.mean()) if len(pool.labels) else None,
            "checkpoint_sha256": checkpoint_sha256}


def done_line(synth: Synthesis, metrics: dict[str, Any]) -> str:
    """The stage's last line on stdout: what was shipped from how large a pool, the class counts
    after balancing and the audit's rates."""
    rate = synth.stats.get("memorization_rate")
    source = ("1st percentile of validation images" if synth.stats.get(
        "memorization_threshold_source", "validation") == "validation" else "near-copy fallback")
    audit = "" if rate is None else (
        f"; memorization rate {rate:.3f} (threshold: {source}), "
        f"acceptance rate {synth.stats['acceptance_rate']:.3f}")
    warning = synth.stats.get("memorization_warning")
    audit += f"\ngenerate: WARNING: {warning}" if warning else ""
    return (f"generate: {metrics['n_synthetic']} synthetic images shipped (best-scored of a pool "
            f"of {len(synth.pool.labels)}); counts after balancing {metrics['counts_after']}"
            f"{audit}")
