"""Generative quality: the in-project feature extractor, the QualityProbe and the generate stage's
synthesize (memorization audit, quality gate, replacement rounds).

The generators here are stand-ins with a known answer: `Lookup` returns stored real images (exact
training copies, fresh images, or images of the wrong class) as a fixed function of (z, y), so the
audit, the gate and the metrics can be checked against what was planted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import pipeline.synthesize as synthesize_mod
from conftest import make_images, write_extractor
from pipeline.artifacts import save_checkpoint
from pipeline.classify import predict_proba
from pipeline.config import FeaturesConfig
from pipeline.errors import PipelineError
from pipeline.features import FORMAT, embed, load_extractor, train_extractor
from pipeline.synthesizers.latents import latents
from pipeline.quality import QualityProbe
from pipeline.synthesizers.base import sample
from pipeline.pixels import to_unit
from pipeline.pool import SyntheticPool, load_pool
from pipeline.synthesize import pool_plan, synthesize
from pipeline.synthesizers.base import GeneratorSynthesizer

CPU = torch.device("cpu")
LATENT = 4
TRAIN_X, TRAIN_Y = make_images([12, 10, 8])
TEST_X, TEST_Y = make_images([6, 6, 6], seed=1)
FRESH_X, FRESH_Y = make_images([10, 10, 10], seed=2)  # same classes, never seen in training
# lr and width above the defaults so 120 steps give a confident head (softmax >= 0.98 on FRESH_X):
# the quality gate only rejects what the extractor is sure about.
CFG = FeaturesConfig(width=8, steps=120, batch_size=8, lr=1e-2)
TSTR_CFG = FeaturesConfig(width=8, steps=60, batch_size=8, lr=1e-2)


class Lookup(nn.Module):
    """A stand-in generator G(z, y) -> (B, C, H, W) in [-1, 1] that returns stored images.

    Where z[:, 0] <= cut it returns an image of class y from `images`; elsewhere an image of class
    (y + shift) % K from `alt` (default: `images`). Which image is read off |z[:, 1]|, so the output
    is a fixed function of (z, y), and therefore of the seed, as with a real generator.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *,
                 alt: tuple[np.ndarray, np.ndarray] | None = None, shift: int = 0,
                 cut: float = 0.0) -> None:
        super().__init__()
        self.k = int(labels.max()) + 1
        self.main = self._banks(images, labels)
        self.alt = self.main if alt is None else self._banks(*alt)
        self.shift, self.cut = shift, cut

    def _banks(self, images: np.ndarray, labels: np.ndarray) -> list[torch.Tensor]:
        return [to_unit(torch.from_numpy(images[labels == c])) for c in range(self.k)]

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = []
        for zi, c in zip(z, y.tolist()):
            bank = self.alt[(c + self.shift) % self.k] if zi[0] > self.cut else self.main[c]
            out.append(bank[int(abs(float(zi[1])) * 1e4) % len(bank)])
        return torch.stack(out)  # (B, C, H, W)


class Constant(nn.Module):
    """Mode collapse in its purest form: one mid-grey image whatever (z, y)."""

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(z), 1, 8, 8)


class MustNotSample(nn.Module):
    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the generator was called for an empty plan")


def as_synthesizer(G: nn.Module) -> GeneratorSynthesizer:
    """A stand-in generator behind the synthesizer contract, as generate and the probe see it."""
    return GeneratorSynthesizer(G, meta={"method": "test", "n_classes": 3,
                                         "sampling": {"latent_dim": LATENT}}, device=CPU)


def copier() -> Lookup:
    return Lookup(TRAIN_X, TRAIN_Y)  # every image an exact training image of its class


def first_latents(seeds: np.ndarray) -> np.ndarray:
    """z[:, 0] of each seed, drawn the way `sample` draws it."""
    return latents(seeds, LATENT, device=CPU)[:, 0].numpy()


def is_training_image(image: np.ndarray) -> bool:
    return bool((TRAIN_X == image).all(axis=(1, 2, 3)).any())


def counts(labels: np.ndarray) -> dict[int, int]:
    return {c: int(n) for c, n in enumerate(np.bincount(labels, minlength=3))}


@pytest.fixture(scope="module")
def extractor() -> nn.Module:
    return train_extractor(TRAIN_X, TRAIN_Y, CFG, n_classes=3, seed=0, device=CPU)


def run_synthesize(G: nn.Module, plan: dict[int, int], extractor: nn.Module, *,
                   reject_memorized: bool, quality_gate: float = 0.0, seed: int = 0):
    return synthesize(as_synthesizer(G), plan, seed=seed, device=CPU, extractor=extractor,
                      train_images=TRAIN_X, train_labels=TRAIN_Y, val_images=TEST_X,
                      reject_memorized=reject_memorized, quality_gate=quality_gate, batch_size=7)


# --- feature extractor ----------------------------------------------------------------------------

def test_embed_gives_finite_float32_features_per_image(extractor) -> None:
    feats = embed(extractor, TRAIN_X, device=CPU)
    assert feats.shape == (len(TRAIN_X), extractor.feature_dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and feats.std() > 0
    np.testing.assert_allclose(embed(extractor, TRAIN_X, device=CPU, batch_size=7), feats,
                               rtol=1e-5, atol=1e-6)  # eval mode: no batch statistics leak in
    empty = embed(extractor, TRAIN_X[:0], device=CPU)
    assert empty.shape == (0, extractor.feature_dim) and empty.dtype == np.float32


def test_extractor_checkpoint_roundtrip(tmp_path: Path) -> None:
    path = write_extractor(tmp_path / "features.pt", TRAIN_X, TRAIN_Y, steps=10)
    model, meta = load_extractor(path, device=CPU)
    assert not model.training
    assert meta["format"] == FORMAT and meta["classifier"] == "cnn"
    assert meta["model_kwargs"] == dict(channels=1, n_classes=3, image_size=8, width=4)
    assert meta["features"]["steps"] == 10 and "state_dict" not in meta
    again = train_extractor(TRAIN_X, TRAIN_Y, FeaturesConfig(width=4, steps=10, batch_size=8),
                            n_classes=3, seed=0, device=CPU)  # what write_extractor saved
    np.testing.assert_array_equal(embed(model, TEST_X, device=CPU),
                                  embed(again, TEST_X, device=CPU))
    raw = torch.load(path, weights_only=True)  # no code from the file runs
    assert raw["state_dict"].keys() == again.state_dict().keys()


def _other_format(path: Path) -> None:
    save_checkpoint(path, {"format": "imbalance-gan/generator/v1", "state_dict": {}})


def _not_a_dict(path: Path) -> None:
    torch.save(torch.zeros(3), path)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x01 definitely not a torch file\n" * 8)


@pytest.mark.parametrize("write", [_other_format, _not_a_dict, _garbage, None],
                         ids=["other-format", "not-a-dict", "garbage", "missing"])
def test_loading_anything_but_an_extractor_is_a_one_line_pipeline_error(write, tmp_path: Path
                                                                        ) -> None:
    path = tmp_path / "features.pt"
    if write is not None:
        write(path)
    with pytest.raises(PipelineError) as info:
        load_extractor(path, device=CPU)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    if write in (_other_format, _not_a_dict):
        assert "not a feature-extractor checkpoint" in message
        assert "`dvc repro features`" in message


@pytest.mark.parametrize("write", [_garbage, None], ids=["garbage", "missing"])
def test_an_unreadable_extractor_file_names_the_stage_that_rewrites_it(write, tmp_path: Path
                                                                       ) -> None:
    path = tmp_path / "features.pt"
    if write is not None:
        write(path)
    with pytest.raises(PipelineError, match="dvc repro features"):
        load_extractor(path, device=CPU)


def test_training_makes_the_features_separate_the_classes(tmp_path: Path) -> None:
    def separation(model: nn.Module, images: np.ndarray, labels: np.ndarray
                   ) -> tuple[float, float]:
        """(between-class / within-class distance, nearest-class-mean accuracy) in feature space."""
        feats = embed(model, images, device=CPU)
        means = np.stack([feats[labels == c].mean(axis=0) for c in range(3)])  # (K, D)
        within = np.mean([np.linalg.norm(feats[labels == c] - means[c], axis=1).mean()
                          for c in range(3)])
        between = np.mean([np.linalg.norm(means[a] - means[b])
                           for a, b in [(0, 1), (0, 2), (1, 2)]])
        nearest = np.linalg.norm(feats[:, None] - means[None], axis=2).argmin(axis=1)
        return float(between / within), float((nearest == labels).mean())

    untrained, _ = load_extractor(write_extractor(tmp_path / "a.pt", TRAIN_X, TRAIN_Y, steps=1),
                                  device=CPU)
    trained, _ = load_extractor(write_extractor(tmp_path / "b.pt", TRAIN_X, TRAIN_Y, steps=60),
                                device=CPU)
    ratio_before, _ = separation(untrained, TRAIN_X, TRAIN_Y)
    ratio_train, acc_train = separation(trained, TRAIN_X, TRAIN_Y)
    _, acc_test = separation(trained, TEST_X, TEST_Y)
    assert acc_train >= 0.9 and acc_test >= 0.8
    assert ratio_train > ratio_before


# --- QualityProbe ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def probe(extractor) -> QualityProbe:
    return QualityProbe(extractor, TRAIN_X, TRAIN_Y, TEST_X, TEST_Y, TSTR_CFG, n_classes=3,
                        device=CPU)


def test_probe_samples_as_many_per_class_as_the_real_split_with_seeds_generate_never_uses(
        probe) -> None:
    assert counts(probe.fake_labels) == counts(TRAIN_Y)
    assert len(set(probe.fake_seeds.tolist())) == len(TRAIN_Y)
    assert probe.fake_seeds.max() < 0  # generate draws seed * 2**32 + i >= 0
    fakes = probe.samples(as_synthesizer(copier()))
    assert fakes.shape == TRAIN_X.shape and fakes.dtype == np.uint8
    assert all(is_training_image(img) for img in fakes)  # the uint8 round trip is exact
    assert [int(TRAIN_Y[(TRAIN_X == img).all(axis=(1, 2, 3))][0]) for img in fakes] == \
        probe.fake_labels.tolist()


def test_probe_scores_a_copying_generator_far_above_a_collapsed_one(probe) -> None:
    good, collapsed = probe(as_synthesizer(copier())), probe(as_synthesizer(Constant()))
    for metrics in (good, collapsed):
        for name in ("fid_domain", "kid_domain", "precision", "recall", "density", "coverage"):
            assert all(math.isfinite(metrics[f"{name}/class_{c}"]) for c in range(3))
            assert math.isfinite(metrics[name])
    assert good["fid_domain"] < 0.1 * collapsed["fid_domain"]
    assert all(good[f"fid_domain/class_{c}"] < 0.1 * collapsed[f"fid_domain/class_{c}"]
               for c in range(3))
    assert good["precision"] == 1.0  # every copy sits on a real point, inside its ball
    assert collapsed["recall"] == 0.0  # identical fakes: every fake ball has radius 0
    assert good["recall"] > 0.5 and good["coverage"] > collapsed["coverage"]
    assert good["tstr_balanced_accuracy"] > 0.8
    assert collapsed["tstr_balanced_accuracy"] <= 0.6


def test_tstr_of_a_generator_that_swaps_the_classes_is_near_zero(probe) -> None:
    # Realistic images, every one labelled as the next class: trained on these, a classifier is
    # confidently wrong on the real test split. TSTR sees what fid_domain (pooled) cannot.
    swapped = probe(as_synthesizer(Lookup(TRAIN_X, TRAIN_Y, shift=1, cut=-math.inf)))
    assert swapped["tstr_balanced_accuracy"] < 0.2
    copied = probe(as_synthesizer(copier()))
    assert swapped["fid_domain/class_0"] > 10 * copied["fid_domain/class_0"]


def test_probe_is_deterministic_for_the_same_generator(probe) -> None:
    G = as_synthesizer(copier())
    first, second = probe(G), probe(G)
    assert first == second
    no_tstr = QualityProbe(probe.extractor, TRAIN_X, TRAIN_Y, TEST_X, TEST_Y, TSTR_CFG,
                           n_classes=3, device=CPU, tstr=False)(G)
    assert no_tstr == {k: v for k, v in first.items() if k != "tstr_balanced_accuracy"}


# --- synthesize: memorization audit ---------------------------------------------------------------

PLAN = {0: 6, 1: 4, 2: 5}


def test_the_audit_catches_every_planted_copy(extractor) -> None:
    synth = run_synthesize(copier(), PLAN, extractor, reject_memorized=False)
    assert counts(synth.labels) == PLAN
    assert synth.stats["memorization_rate"] == 1.0
    assert synth.memorized.all()  # not rejected: they stay in the pool, flagged
    assert synth.stats["rounds"] == 1 and synth.stats["candidates"] == sum(PLAN.values())
    assert synth.stats["rejected_memorized"] == 0
    assert synth.stats["memorized_candidates"] == sum(PLAN.values())
    audit = synth.first_audit
    assert audit.memorized.all() and audit.threshold > 0
    np.testing.assert_array_equal(TRAIN_X[audit.nearest], synth.first_draw)  # the copied image
    assert synth.stats["median_nearest_train_distance_synthetic"] < 1e-3


def test_rejecting_memorized_images_replaces_the_copies_with_reproducible_fresh_ones(
        extractor) -> None:
    # Copies the training image where z[:, 0] > 0 (about half the seeds), else a fresh image.
    G = Lookup(FRESH_X, FRESH_Y, alt=(TRAIN_X, TRAIN_Y))
    synth = run_synthesize(G, PLAN, extractor, reject_memorized=True, seed=3)
    assert counts(synth.labels) == PLAN
    assert np.array_equal(synth.labels, np.sort(synth.labels))  # grouped by class
    assert not any(is_training_image(img) for img in synth.images)
    stats = synth.stats
    assert stats["rejected_memorized"] > 0 and not synth.memorized.any()
    assert stats["rounds"] > 1
    assert stats["accepted"] == sum(PLAN.values())
    assert stats["candidates"] == stats["accepted"] + stats["rejected_memorized"]
    candidates = 3 * 2**32 + np.arange(stats["candidates"])
    assert stats["rejected_memorized"] >= (first_latents(candidates) > 0).sum()  # every copy
    assert 0 < stats["memorization_rate"] < 1  # the first draw's rate: roughly half
    assert len(set(synth.seeds.tolist())) == len(synth.seeds)
    assert set(synth.seeds.tolist()) <= set(candidates.tolist())
    assert (first_latents(synth.seeds) <= 0).all()  # only the fresh branch shipped
    redrawn = np.concatenate([sample(G, synth.labels[i : i + 1], synth.seeds[i : i + 1],
                                     latent_dim=LATENT, device=CPU)
                              for i in range(len(synth.seeds))])
    np.testing.assert_array_equal(redrawn, synth.images)


def test_a_generator_that_only_copies_exhausts_the_rounds_with_a_pipeline_error(
        extractor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthesize_mod, "MAX_ROUNDS", 3)
    short = "after 3 rounds still 15 synthetic images short"  # 15 = the whole plan
    with pytest.raises(PipelineError, match=short) as info:
        run_synthesize(copier(), PLAN, extractor, reject_memorized=True)
    message = str(info.value)
    assert "generate.reject_memorized" in message and "\n" not in message


def test_validation_copies_of_training_images_cannot_switch_the_audit_off(extractor) -> None:
    """A tenth of the validation split are exact copies of training images (the chest X-ray case:
    duplicates across the splits). Planted fault: the old audit, calibrated on every validation
    image, put the threshold at 0 and flagged none of the generator's copies (rate 0.000)."""
    val = TEST_X.copy()
    val[[0, 7, 13]] = TRAIN_X[[0, 12, 22]]  # one of each class: 3 of 18
    synth = synthesize(as_synthesizer(copier()), PLAN, seed=0, device=CPU, extractor=extractor,
                       train_images=TRAIN_X, train_labels=TRAIN_Y, val_images=val,
                       reject_memorized=False, quality_gate=0.0, batch_size=7)
    assert synth.memorized.all() and synth.stats["memorization_rate"] == 1.0
    assert synth.stats["memorization_threshold"] > 0
    assert synth.stats["memorization_calibration_excluded"] == 3
    assert synth.stats["memorization_threshold_source"] == "validation"
    assert "memorization_warning" not in synth.stats


def test_an_uncalibratable_audit_falls_back_flags_copies_and_warns(extractor) -> None:
    """Every validation image is a training image: nothing can calibrate the threshold. The
    fallback flags exact and near copies (one pixel changed), keeps fresh images, and the warning
    reaches metrics/generate.json (stats) and the stage's printed lines. Planted fault: no
    fallback (threshold 0, nothing flagged) or no warning."""
    near = TRAIN_X.copy()
    near[:, 0, 0, 0] ^= 1  # a near copy of every training image: one pixel one level off
    G = Lookup(FRESH_X, FRESH_Y, alt=(near, TRAIN_Y))  # near copy where z[:, 0] > 0, else fresh
    synth = synthesize(as_synthesizer(G), PLAN, seed=0, device=CPU, extractor=extractor,
                       train_images=TRAIN_X, train_labels=TRAIN_Y, val_images=TRAIN_X[::3],
                       reject_memorized=False, quality_gate=0.0, batch_size=7)
    copied = first_latents(synth.seeds) > 0
    assert copied.any() and (~copied).any()
    np.testing.assert_array_equal(synth.memorized, copied)
    assert synth.stats["memorization_threshold_source"] == "near-copy fallback"
    assert "10 of 10 validation images are copies" in synth.stats["memorization_warning"]
    line = synthesize_mod.done_line(synth, {"n_synthetic": 15, "counts_after": {}})
    assert "(threshold: near-copy fallback)" in line
    assert line.splitlines()[1].startswith("generate: WARNING: memorization audit: 10 of 10")


def test_the_selection_score_caps_realism_at_one(extractor, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    """score = p(intended class) x min(1, realism), with p and realism set by hand: realism 0.25
    costs three quarters of the score, realism 1 and 4 cost nothing and gain nothing. Planted
    faults: the cap dropped (4 x p: realism would outweigh the classifier), realism ignored
    (p alone), or the two added."""
    n = sum(PLAN.values())
    realism = np.resize([0.25, 1.0, 4.0], n)  # per candidate, in draw order
    p_class = np.resize([0.9, 0.5, 0.8, 0.6, 1.0], n)

    def fake_proba(model, images, *, device):  # p of the intended class: p_class, in draw order
        proba = np.zeros((len(images), 3))
        proba[np.arange(len(images)), np.repeat(np.arange(3), [PLAN[c] for c in range(3)])] = \
            p_class[:len(images)]
        return proba

    monkeypatch.setattr(synthesize_mod, "predict_proba", fake_proba)
    monkeypatch.setattr(synthesize_mod, "_realism", lambda feats, labels, *a: realism)
    synth = run_synthesize(Lookup(FRESH_X, FRESH_Y), PLAN, extractor, reject_memorized=False)
    expected = p_class * np.minimum(1.0, realism)
    assert synth.stats["rounds"] == 1  # one draw: the pool is the draw, grouped by class
    np.testing.assert_allclose(synth.pool.scores, expected)  # already in class order
    assert synth.pool.scores.max() <= 1.0
    assert synth.pool.scores[0] == pytest.approx(0.9 * 0.25)  # off the manifold: 1/4 of p
    assert synth.pool.scores[2] == pytest.approx(0.8)  # realism 4: p, not 4 x p


# --- synthesize: quality gate ---------------------------------------------------------------------

def test_the_quality_gate_rejects_images_of_the_wrong_class(extractor) -> None:
    # Fresh real images; where z[:, 0] > 0 they show class (y + 1) % 3 instead of y.
    G = Lookup(FRESH_X, FRESH_Y, shift=1)
    ungated = run_synthesize(G, PLAN, extractor, reject_memorized=False)
    assert (predict_proba(extractor, ungated.images, device=CPU).argmax(axis=1)
            != ungated.labels).any()  # without the gate, wrong-class images ship
    synth = run_synthesize(G, PLAN, extractor, reject_memorized=False, quality_gate=0.9)
    assert counts(synth.labels) == PLAN
    np.testing.assert_array_equal(
        predict_proba(extractor, synth.images, device=CPU).argmax(axis=1), synth.labels)
    stats = synth.stats
    candidates = np.arange(stats["candidates"])  # seed 0: seeds 0, 1, 2, ...
    assert stats["rejected_quality_gate"] == (first_latents(candidates) > 0).sum() > 0
    assert stats["rounds"] > 1 and stats["rejected_memorized"] == 0
    assert stats["acceptance_rate"] == pytest.approx(sum(PLAN.values()) / stats["candidates"])


# --- synthesize: nothing to do --------------------------------------------------------------------

def test_an_empty_plan_draws_nothing_and_returns_empty_arrays(extractor) -> None:
    synth = run_synthesize(MustNotSample(), {0: 0, 1: 0, 2: 0}, extractor, reject_memorized=True,
                           quality_gate=0.9)
    assert synth.images.shape == (0, 8, 8, 1) and synth.images.dtype == np.uint8
    assert synth.labels.shape == (0,) and synth.seeds.shape == (0,)
    assert synth.first_audit is None and synth.first_draw is None
    assert synth.stats["candidates"] == 0 and synth.stats["rounds"] == 0


# --- synthesize: selection scores and the pool ----------------------------------------------------

def test_scores_rank_right_class_images_above_wrong_class_ones(extractor) -> None:
    # Fresh real images; where z[:, 0] > 0 they show class (y + 1) % 3 instead of y.
    G = Lookup(FRESH_X, FRESH_Y, shift=1)
    synth = run_synthesize(G, PLAN, extractor, reject_memorized=False)
    pool = synth.pool
    assert ((0 <= pool.scores) & (pool.scores <= 1)).all()
    wrong = first_latents(pool.seeds) > 0
    assert wrong.any() and (~wrong).any()
    # every right-class image outscores every wrong-class image of its class
    for c in range(3):
        right_c, wrong_c = pool.scores[(pool.labels == c) & ~wrong], pool.scores[
            (pool.labels == c) & wrong]
        if len(right_c) and len(wrong_c):
            assert right_c.min() > wrong_c.max(), c
    # the best-scored n of each class are right-class images; the first drawn are not all (n
    # counts distinct images: Lookup repeats its 10 per class, and take hands out repeats last)
    right = {c: pool.images[(pool.labels == c) & ~wrong] for c in range(3)}
    n = {c: len(np.unique(x.reshape(len(x), -1), axis=0)) for c, x in right.items()}
    assert not wrong[pool.take(n)].any()
    assert wrong[pool.take(PLAN, by="draw")].sum() == wrong.sum()  # the whole pool
    np.testing.assert_array_equal(pool.draw[pool.take(n, by="draw")],
                                  np.concatenate([np.arange(n[c]) for c in range(3)]))


def test_the_pool_roundtrips_and_refuses_to_hand_out_more_than_it_has(tmp_path: Path) -> None:
    x, y = make_images([3, 2])
    pool = SyntheticPool(x, y, np.arange(5, dtype=np.int64) + 10, np.array([.1, .9, .5, .2, .3]),
                         np.array([0, 1, 2, 0, 1]))
    pool.save(tmp_path / "pool.npz")
    back = load_pool(tmp_path / "pool.npz")
    for name in ("images", "labels", "seeds", "scores", "draw"):
        np.testing.assert_array_equal(getattr(back, name), getattr(pool, name))
    assert back.take({0: 2, 1: 1}).tolist() == [1, 2, 4]  # best first, per class
    assert back.take({0: 2, 1: 1}, by="draw").tolist() == [0, 1, 3]  # draw order
    with pytest.raises(PipelineError, match="has 2 images of class 1, 3 were asked for"):
        back.take({1: 3})
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PipelineError, match="not a synthetic pool"):
        load_pool(tmp_path / "bad.npz")


def test_the_pool_hands_out_a_repeated_image_only_after_every_distinct_one() -> None:
    # cyclegan translates training images: many seeds give one image, every copy one score, and
    # the best-scored 4 of this class were three copies of image a
    a, b, c, d = make_images([4])[0]
    images = np.stack([a, a, a, b, c, b, d])
    pool = SyntheticPool(images, np.zeros(7, np.int64), np.arange(7, dtype=np.int64) + 10,
                         np.array([.9, .9, .9, .5, .4, .5, .1]), np.arange(7, dtype=np.int64))
    assert pool.take({0: 4}).tolist() == [0, 3, 4, 6]  # a, b, c, d: best first
    assert pool.take({0: 6}).tolist() == [0, 3, 4, 6, 1, 5]  # then the first repeats, best first
    assert pool.take({0: 4}, by="draw").tolist() == [0, 3, 4, 6]  # draw order, same rule
    assert pool.take({0: 7}, by="draw").tolist() == [0, 3, 4, 6, 1, 5, 2]


def test_pool_plan_draws_a_class_balanced_pool() -> None:
    assert pool_plan({0: 0, 1: 70, 2: 95}, {0: 100, 1: 30, 2: 5}, candidates_per_image=4) == {
        0: 400, 1: 400, 2: 400}
    assert pool_plan({0: 0, 1: 0}, {0: 5, 1: 5}, candidates_per_image=2) == {0: 10, 1: 10}
    assert pool_plan({0: 50, 1: 150}, {0: 150, 1: 50}, candidates_per_image=1) == {0: 150, 1: 150}
