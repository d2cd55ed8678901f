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


# --- selection by indistinguishability, through generate's synthesize -----------------------------

class Marking:
    """A stand-in synthesizer: image i is a blob of its class (top rows for class 0, bottom rows
    for class 1), a fixed function of (label, seed); half the seeds also carry the planted
    artifact, a bright corner pixel."""

    def sample(self, labels: np.ndarray, seeds: np.ndarray, *, batch_size: int = 512
               ) -> np.ndarray:
        return np.stack([self.one(int(y), int(s)) for y, s in zip(labels, seeds)])

    @staticmethod
    def one(label: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed % 2**32)
        x = class_blob(label, rng)
        if rng.random() < 0.5:
            x[0, 0] = 255
        return x

    @staticmethod
    def marked(images: np.ndarray) -> np.ndarray:
        return images[:, 0, 0, 0] == 255


def class_blob(label: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.integers(20, 60, size=(8, 8, 1))
    r = rng.integers(0, 2) + (5 if label else 0)
    c = rng.integers(1, 6)
    x[r:r + 2, c:c + 2] += 150
    return x.clip(0, 254).astype(np.uint8)  # 254: a real image never has the marked value


def real_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n)
    return np.stack([class_blob(int(y), rng) for y in labels]), labels


@pytest.fixture(scope="module")
def marked_run():
    import torch

    from pipeline.config import FeaturesConfig
    from pipeline.features import train_extractor
    from pipeline.synthesize import synthesize

    train_x, train_y = real_split(60, 0)
    val_x, _ = real_split(20, 1)
    cpu = torch.device("cpu")
    extractor = train_extractor(train_x, train_y, FeaturesConfig(width=8, steps=40, batch_size=16,
                                                                 lr=1e-2), n_classes=2, seed=0,
                                device=cpu)
    runs = {score: synthesize(Marking(), {0: 120, 1: 120}, seed=0, device=cpu,
                              extractor=extractor, train_images=train_x, train_labels=train_y,
                              val_images=val_x, reject_memorized=False, quality_gate=0.0,
                              score=score)
            for score in ("typical", "real")}
    return runs, extractor


def test_indistinguishability_selection_ships_fewer_marked_images(marked_run):
    shipped = {}
    for score, synth in marked_run[0].items():
        pool = synth.pool
        assert pool.count(0) == pool.count(1) == 120
        assert Marking.marked(pool.images).mean() == pytest.approx(0.5, abs=0.1)  # as drawn
        take = pool.take({0: 40, 1: 40})
        shipped[score] = Marking.marked(pool.images[take]).mean()
    # today's score barely sees the corner pixel; realness ranks marked candidates last
    assert shipped["typical"] > 0.2
    assert shipped["real"] < 0.05 < shipped["typical"] / 4
    # every candidate carries its realness whatever the score, and it is cross-fitted (in [0, 1])
    pool = marked_run[0]["typical"].pool
    assert ((pool.realness >= 0) & (pool.realness <= 1)).all()
    marked = Marking.marked(pool.images)
    assert pool.realness[marked].mean() < pool.realness[~marked].mean() - 0.3


def test_the_shortcut_test_of_generate_finds_the_planted_artifact(marked_run):
    import torch

    from pipeline.synthesize import shortcut_summary

    runs, extractor = marked_run
    train_x, train_y = real_split(60, 0)
    val_x, val_y = real_split(20, 1)
    out = shortcut_summary(runs["typical"], extractor=extractor, device=torch.device("cpu"), train_images=train_x,
                           train_labels=train_y, val_images=val_x, val_labels=val_y, seed=0)
    for c in (0, 1):
        # half the unselected draws are marked: a perfect detector of the mark scores
        # 0.5 x 1 + 0.5 x 0.5 = 0.75
        assert 0.65 < out["unselected"][c]["pixels"]["auc"] <= 0.8
        assert out["unselected"][c]["pixels"]["n_real_held"] == 20
        assert out["most_real"][c]["pixels"]["auc"] < 0.62


def test_quantize_snaps_to_the_real_grey_levels():
    from pipeline.synthesize import grey_levels, quantize

    digits_like = (np.arange(17) * 255 // 16).astype(np.uint8)
    levels = grey_levels(np.tile(digits_like, 3))
    assert levels is not None and len(levels) == 17
    out = quantize(np.arange(256, dtype=np.uint8), levels)
    assert set(np.unique(out).tolist()) == set(levels)
    assert out[0] == 0 and out[255] == 255 and out[8] in (0, 15) and out[9] == 15
    assert grey_levels(np.arange(256, dtype=np.uint8)) is None  # a full range: left alone
    x = np.arange(256, dtype=np.uint8)
    assert quantize(x, None) is x


def test_auc_matches_the_rank_definition_with_ties():
    from sklearn.metrics import roc_auc_score

    from pipeline.shortcut import auc

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 40) / 4, rng.integers(1, 6, 60) / 4
    expected = roc_auc_score(np.r_[np.zeros(40), np.ones(60)], np.r_[a, b])
    assert auc(a, b) == pytest.approx(expected, abs=1e-12)
    assert auc(np.zeros(3), np.ones(3)) == 1.0 and auc(np.ones(3), np.ones(3)) == 0.5
