"""pipeline/classify.py and pipeline/evaluate.py: the downstream classifier, and the comparison
of training variants (real vs real + synthetic)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import pipeline.classify as classify_mod
from conftest import make_images
from pipeline.classify import predict_proba, train_classifier
from pipeline.config import EvaluateConfig
from pipeline.data.prepare import Split
from pipeline.evaluate import VARIANTS, evaluate_variants

CPU = torch.device("cpu")


def quick(**overrides) -> EvaluateConfig:
    base = dict(steps=60, batch_size=16, lr=0.01, width=8)
    return EvaluateConfig(**{**base, **overrides})


def test_classifier_learns_an_easily_separable_dataset() -> None:
    train_x, train_y = make_images([15, 15, 15, 15], seed=0)
    test_x, test_y = make_images([10, 10, 10, 10], seed=1)
    model = train_classifier(train_x, train_y, quick(), n_classes=4, seed=0, device=CPU)
    assert not model.training
    proba = predict_proba(model, test_x, device=CPU)
    assert proba.shape == (40, 4) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba.argmax(axis=1) == test_y).mean() >= 0.95


def test_predict_proba_batches_give_the_same_answer() -> None:
    x, y = make_images([6, 6])
    model = train_classifier(x, y, quick(steps=3), n_classes=2, seed=0, device=CPU)
    np.testing.assert_allclose(predict_proba(model, x, device=CPU, batch_size=5),
                               predict_proba(model, x, device=CPU), rtol=1e-5, atol=1e-6)


def test_training_logs_the_mean_loss_per_interval() -> None:
    x, y = make_images([6, 6])
    rows: list[tuple[int, dict[str, float]]] = []
    train_classifier(x, y, quick(steps=130), n_classes=2, seed=0, device=CPU,
                     log=lambda m, step: rows.append((step, m)))
    assert [step for step, _ in rows] == [100, 130]
    assert all(set(m) == {"train_loss"} and math.isfinite(m["train_loss"]) for _, m in rows)
    assert rows[1][1]["train_loss"] < rows[0][1]["train_loss"]  # it keeps learning


def test_same_seed_gives_the_same_initial_weights_whatever_the_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    initial: list[dict[str, torch.Tensor]] = []
    real_cnn = classify_mod.SmallCNN

    def recording_cnn(**kwargs):
        model = real_cnn(**kwargs)
        initial.append(copy.deepcopy(model.state_dict()))
        return model

    monkeypatch.setattr(classify_mod, "SmallCNN", recording_cnn)
    a_x, a_y = make_images([6, 6], seed=0)
    b_x, b_y = make_images([20, 3], seed=1)
    train_classifier(a_x, a_y, quick(steps=2), n_classes=2, seed=7, device=CPU)
    train_classifier(b_x, b_y, quick(steps=2), n_classes=2, seed=7, device=CPU)
    train_classifier(a_x, a_y, quick(steps=2), n_classes=2, seed=8, device=CPU)
    same, other = initial[0], initial[2]
    assert all(torch.equal(same[k], initial[1][k]) for k in same)
    assert any(not torch.equal(same[k], other[k]) for k in same if same[k].is_floating_point())


def test_training_is_deterministic_for_a_seed() -> None:
    x, y = make_images([6, 6, 6])
    a = train_classifier(x, y, quick(steps=5), n_classes=3, seed=1, device=CPU)
    b = train_classifier(x, y, quick(steps=5), n_classes=3, seed=1, device=CPU)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_a_batch_larger_than_the_dataset_uses_the_whole_dataset() -> None:
    x, y = make_images([2, 2])
    model = train_classifier(x, y, quick(steps=3, batch_size=64), n_classes=2, seed=0, device=CPU)
    assert predict_proba(model, x, device=CPU).shape == (4, 2)


# --- evaluate_variants ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def comparison():
    train = Split(*make_images([12, 6, 2], seed=0))
    synthetic = Split(*make_images([0, 6, 10], seed=1))
    test = Split(*make_images([5, 5, 5], seed=2))
    logs: dict[str, list] = {}
    results = evaluate_variants(
        train, synthetic, test, quick(steps=30), n_classes=3, seed=0, device=CPU,
        log_for=lambda v: (lambda m, step: logs.setdefault(v, []).append((step, m))),
    )
    return results, logs, test


def test_evaluate_variants_trains_real_and_real_plus_synthetic(comparison) -> None:
    results, logs, test = comparison
    assert list(results) == ["real", "gan"]
    real, gan = results["real"], results["gan"]
    assert real.metrics["n_train"] == 20 and gan.metrics["n_train"] == 36
    assert real.train_counts == {0: 12, 1: 6, 2: 2}
    assert gan.train_counts == {0: 12, 1: 12, 2: 12}
    assert sorted(logs) == ["gan", "real"]
    assert [step for step, _ in logs["real"]] == [30]


def test_every_variant_is_scored_on_the_same_test_split(comparison) -> None:
    results, _, test = comparison
    for res in results.values():
        m = res.metrics
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "minority_recall"):
            assert 0.0 <= m[key] <= 1.0, key
        assert sorted(m["recall"]) == [0, 1, 2]
        assert m["minority_recall"] == m["recall"][2]  # class 2 is the rarest in training
        assert len(res.confusion) == len(test.labels)
        np.testing.assert_array_equal(res.confusion["actual"].to_numpy(), test.labels)
        acc = (res.confusion["actual"] == res.confusion["predicted"]).mean()
        assert m["accuracy"] == pytest.approx(acc)


def test_only_the_listed_variants_run() -> None:
    train = Split(*make_images([6, 6]))
    results = evaluate_variants(train, Split(*make_images([0, 0])), train,
                                quick(steps=2, variants=["gan"]), n_classes=2, seed=0, device=CPU)
    assert list(results) == ["gan"]
    assert results["gan"].metrics["n_train"] == 12  # no synthetic images: the real ones only


def test_variant_registry() -> None:
    real = Split(np.zeros((2, 8, 8, 1), np.uint8), np.array([0, 1]))
    synth = Split(np.ones((3, 8, 8, 1), np.uint8), np.array([1, 1, 1]))
    assert sorted(VARIANTS) == ["gan", "real"]
    assert VARIANTS["real"](real, synth) is real
    both = VARIANTS["gan"](real, synth)
    assert both.labels.tolist() == [0, 1, 1, 1, 1]
    assert both.images.shape == (5, 8, 8, 1) and both.images[2:].min() == 1
