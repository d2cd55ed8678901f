"""The shortcut test (classifier two-sample test) and selection by indistinguishability."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.shortcut import SHORTCUT_AUC, max_auc, realness, shortcut_test, two_sample_auc, flat


def blobs(n: int, rng: np.random.Generator, *, size: int = 8) -> np.ndarray:
    """(n, size, size, 1) uint8 'anatomy': a bright square at a random place on a noisy field."""
    x = rng.integers(20, 60, size=(n, size, size, 1))
    for i in range(n):
        r, c = rng.integers(0, size - 3, size=2)
        x[i, r:r + 3, c:c + 3] += 120
    return x.clip(0, 255).astype(np.uint8)


def mark(images: np.ndarray) -> np.ndarray:
    """The planted artifact: a bright corner pixel."""
    out = images.copy()
    out[:, 0, 0] = 255
    return out


def features(images: np.ndarray) -> np.ndarray:
    """A stand-in for the extractor: row and column means (blind to a single corner pixel only
    partly)."""
    x = images[..., 0].astype(np.float32)
    return np.concatenate([x.mean(axis=1), x.mean(axis=2)], axis=1)


def run_test(synth: np.ndarray, seed: int = 0) -> dict:
    rng = np.random.default_rng(100)
    real, held = blobs(120, rng), blobs(40, rng)
    zeros = lambda n: np.zeros(n, dtype=np.int64)  # noqa: E731
    return shortcut_test(real_images=real, real_labels=zeros(120), real_feats=features(real),
                         held_images=held, held_labels=zeros(40), held_feats=features(held),
                         synth_images=synth, synth_labels=zeros(len(synth)),
                         synth_feats=features(synth), n_classes=1, seed=seed, n_boot=200)[0]


def test_a_planted_corner_pixel_is_found():
    synth = mark(blobs(200, np.random.default_rng(7)))
    res = run_test(synth)
    assert res["pixels"]["measured"]
    assert res["pixels"]["auc"] > 0.95
    lo, hi = res["pixels"]["auc_ci95"]
    assert lo > 0.9 and hi <= 1.0
    assert max_auc(res) >= res["pixels"]["auc"]


def test_images_from_the_same_distribution_cannot_be_told_apart():
    res = run_test(blobs(200, np.random.default_rng(8)))
    assert 0.3 < res["pixels"]["auc"] < 0.7
    assert 0.3 < res["features"]["auc"] < 0.7
    assert res["pixels"]["auc_ci95"][0] < 0.5 < res["pixels"]["auc_ci95"][1] + 0.05
    assert max_auc(res) < SHORTCUT_AUC


def test_too_few_held_out_images_is_not_measured_and_says_why():
    rng = np.random.default_rng(0)
    real, synth = flat(blobs(30, rng)), flat(blobs(30, rng))
    res = two_sample_auc(real, synth, real[:3], classifier=lambda s: None, seed=0)
    assert res["measured"] is False
    assert "real_held 3" in res["reason"]
    assert "auc" not in res


def test_realness_ranks_marked_candidates_below_clean_ones_cross_fitted():
    rng = np.random.default_rng(3)
    real = blobs(150, rng)
    clean, marked = blobs(150, rng), mark(blobs(150, rng))
    candidates = np.concatenate([clean, marked])
    labels = np.zeros(len(candidates), dtype=np.int64)
    score = realness(candidates, labels, real, np.zeros(len(real), dtype=np.int64), seed=0)
    assert score.shape == (300,)
    assert ((0 <= score) & (score <= 1)).all()
    # the top half by realness is mostly unmarked
    top = np.argsort(-score, kind="stable")[:150]
    assert (top >= 150).mean() < 0.2
    assert score[:150].mean() > score[150:].mean() + 0.3


def test_realness_is_one_for_a_class_too_small_to_measure():
    rng = np.random.default_rng(3)
    real = blobs(3, rng)
    candidates = np.concatenate([blobs(30, rng), mark(blobs(30, rng))])
    score = realness(candidates, np.zeros(60, dtype=np.int64), real, np.zeros(3, np.int64), seed=0)
    assert (score == 1).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_the_test_is_deterministic(seed):
    synth = mark(blobs(100, np.random.default_rng(7)))
    assert run_test(synth, seed) == run_test(synth, seed)
