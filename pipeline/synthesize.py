"""The generate stage's work: draw the planned synthetic images, audit them, replace rejects.

Every image is G(z_i, label_i) with z_i drawn from its own seed (`seed * 2**32 + i`), so any one
image can be re-drawn from the manifest. Each candidate is embedded with the in-project feature
extractor (pipeline/features.py) and

* audited for memorization: its distance to the nearest real training image is compared with the
  1st percentile of real test images' nearest-training distances (`memorization_audit`);
  `reject_memorized` replaces the flagged ones;
* optionally gated: with `quality_gate > 0`, a candidate that the real-data classifier (the
  extractor's head) assigns to another class with at least that confidence is replaced.

Replacements are drawn with the next unused seeds, round after round, until every class has its
planned count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pipeline.classify import predict_proba
from pipeline.errors import PipelineError
from pipeline.features import embed
from pipeline.gan.train import sample
from pipeline.metrics import MemorizationAudit, memorization_audit, nearest_distances

MAX_ROUNDS = 20  # the last round draws at most MAX_ROUNDS x the plan in total


@dataclass
class Synthesis:
    images: np.ndarray  # (S, H, W, C) uint8, grouped by class
    labels: np.ndarray  # (S,)
    seeds: np.ndarray  # (S,) the latent seed of each image
    first_audit: MemorizationAudit | None  # the audit of the first draw (the generator's rate)
    first_draw: np.ndarray | None  # the first draw's images (for the closest-pairs grid)
    stats: dict[str, float | int] = field(default_factory=dict)


def synthesize(
    G: nn.Module, plan: dict[int, int], *, latent_dim: int, seed: int, device: torch.device,
    extractor: nn.Module, train_images: np.ndarray, test_images: np.ndarray,
    reject_memorized: bool, quality_gate: float, batch_size: int = 512,
) -> Synthesis:
    n_classes = len(plan)
    need = np.array([plan[c] for c in range(n_classes)], dtype=np.int64)
    train_f = embed(extractor, train_images, device=device)
    test_f = embed(extractor, test_images, device=device)
    kept_images, kept_labels, kept_seeds = [], [], []
    first_audit, first_draw, threshold = None, None, 0.0
    next_seed, rounds = seed * 2**32, 0
    drawn = memorized_n = gated_n = shipped_memorized = 0
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
        images = sample(G, labels, seeds, latent_dim=latent_dim, device=device,
                        batch_size=batch_size)
        feats = embed(extractor, images, device=device)
        if first_audit is None:
            first_audit = memorization_audit(feats, train_f, test_f)
            first_draw, threshold = images, first_audit.threshold
            memorized = first_audit.memorized
        else:
            memorized = nearest_distances(feats, train_f)[0] < threshold
        keep = ~memorized if reject_memorized else np.ones(len(labels), dtype=bool)
        if quality_gate > 0:
            proba = predict_proba(extractor, images, device=device)
            wrong = (proba.argmax(axis=1) != labels) & (proba.max(axis=1) >= quality_gate)
            gated_n += int((wrong & keep).sum())
            keep &= ~wrong
        drawn += len(labels)
        memorized_n += int(memorized.sum())
        shipped_memorized += int((memorized & keep).sum())
        kept_images.append(images[keep])
        kept_labels.append(labels[keep])
        kept_seeds.append(seeds[keep])
        need -= np.bincount(labels[keep], minlength=n_classes)
        rounds += 1
    if not kept_labels:  # nothing planned: the classes are balanced already
        return Synthesis(np.zeros((0, *train_images.shape[1:]), np.uint8),
                         np.zeros(0, np.int64), np.zeros(0, np.int64), None, None,
                         {"candidates": 0, "rounds": 0})
    labels = np.concatenate(kept_labels)
    order = np.argsort(labels, kind="stable")
    accepted = len(labels)
    return Synthesis(
        images=np.concatenate(kept_images)[order], labels=labels[order],
        seeds=np.concatenate(kept_seeds)[order], first_audit=first_audit, first_draw=first_draw,
        stats={
            "candidates": drawn, "accepted": accepted, "acceptance_rate": accepted / drawn,
            "rounds": rounds, "memorization_rate": first_audit.memorization_rate,
            "memorization_rate_shipped": shipped_memorized / accepted,
            "memorization_threshold": threshold, "memorized_candidates": memorized_n,
            "rejected_memorized": memorized_n if reject_memorized else 0,
            "rejected_quality_gate": gated_n,
            "median_nearest_train_distance_synthetic": float(np.median(first_audit.distances)),
            "median_nearest_train_distance_test": float(np.median(first_audit.test_distances)),
        },
    )
