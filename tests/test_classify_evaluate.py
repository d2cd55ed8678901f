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
from pipeline.artifacts import Split
from pipeline.errors import PipelineError
from pipeline.evaluate import VARIANTS, bootstrap_recalls, evaluate_variants

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
    real_cnn = classify_mod.CLASSIFIERS["cnn"]

    def recording_cnn(**kwargs):
        model = real_cnn(**kwargs)
        initial.append(copy.deepcopy(model.state_dict()))
        return model

    monkeypatch.setitem(classify_mod.CLASSIFIERS, "cnn", recording_cnn)
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

ALL = ("real", "class_weight", "oversample", "smote", "gan", "gan_class_weight")


@pytest.fixture(scope="module")
def comparison():
    train = Split(*make_images([12, 6, 3], seed=0))
    synthetic = Split(*make_images([0, 6, 9], seed=1))
    test = Split(*make_images([5, 5, 5], seed=2))
    logs: dict[tuple, list] = {}
    fits: list[tuple] = []
    results = evaluate_variants(
        train, synthetic, test, quick(steps=30, seeds=2, bootstrap=200), n_classes=3, seed=0,
        device=CPU,
        log_for=lambda v, s: (lambda m, step: logs.setdefault((v, s), []).append((step, m))),
        on_fit=lambda v, s: fits.append((v, s)),
    )
    return results, logs, fits, test


def test_every_variant_runs_with_its_training_set(comparison) -> None:
    results, logs, fits, _ = comparison
    assert list(results) == list(ALL)
    counts = {name: res.train_counts for name, res in results.items()}
    assert counts["real"] == counts["class_weight"] == {0: 12, 1: 6, 2: 3}
    assert counts["oversample"] == counts["smote"] == {0: 12, 1: 12, 2: 12}  # balanced
    assert counts["gan"] == counts["gan_class_weight"] == {0: 12, 1: 12, 2: 12}
    assert [r.metrics["n_train"] for r in results.values()] == [21, 21, 36, 36, 36, 36]
    assert fits == [(v, s) for v in ALL for s in (0, 1)]  # every (variant, seed) reported
    # gan_class_weight's weights are uniform on the balanced set: the same run as gan, not refit
    assert ("gan_class_weight", 0) not in logs and [st for st, _ in logs[("real", 0)]] == [30]
    np.testing.assert_array_equal(results["gan"].probas, results["gan_class_weight"].probas)
    assert not np.array_equal(results["real"].probas, results["class_weight"].probas)


def test_metrics_are_seed_means_in_range_with_intervals(comparison) -> None:
    results, _, _, test = comparison
    for name, res in results.items():
        m = res.metrics
        assert m["n_seeds"] == 2 and len(res.per_seed) == 2 and res.probas.shape == (2, 15, 3)
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "minority_recall",
                    "minority_precision"):
            assert 0.0 <= m[key] <= 1.0, key
            assert m[key] == pytest.approx(np.mean([p[key] for p in res.per_seed])), key
        assert m["minority_class"] == 2 and m["minority_recall"] == pytest.approx(m["recall"][2])
        for key in ("balanced_accuracy", "minority_recall"):
            lo, hi = m[f"{key}_ci95"]
            assert 0.0 <= lo <= m[key] <= hi <= 1.0, (name, key)
        np.testing.assert_array_equal(res.confusion["actual"].to_numpy(), test.labels)
        assert res.roc["fpr"].iloc[0] == 0 and res.roc["tpr"].iloc[-1] == 1
        if name == "real":
            assert "vs_real" not in m
        else:
            vs = m["vs_real"]
            assert vs["balanced_accuracy_delta"] == pytest.approx(
                m["balanced_accuracy"] - results["real"].metrics["balanced_accuracy"])
            dlo, dhi = vs["balanced_accuracy_delta_ci95"]
            assert -1 <= dlo <= dhi <= 1


def test_smote_and_oversampling_balance_the_counts() -> None:
    train = Split(*make_images([20, 7, 4], seed=0))
    empty = Split(*make_images([0, 0, 0]))
    for name in ("oversample", "smote"):
        data = VARIANTS[name](train, empty, n_classes=3, seed=0)
        assert np.bincount(data.labels).tolist() == [20, 20, 20]
        assert data.images.dtype == np.uint8 and data.images.shape[1:] == train.images.shape[1:]
    over = VARIANTS["oversample"](train, empty, n_classes=3, seed=0)
    real_rows = {img.tobytes() for img in train.images}
    assert all(img.tobytes() in real_rows for img in over.images)  # copies only
    smote = VARIANTS["smote"](train, empty, n_classes=3, seed=0)
    new = [img for img in smote.images if img.tobytes() not in real_rows]
    assert len(new) > 0  # SMOTE interpolates new images


def test_class_weights_are_inverse_frequency() -> None:
    train = Split(*make_images([30, 10, 5], seed=0))
    data = VARIANTS["class_weight"](train, Split(*make_images([0, 0, 0])), n_classes=3, seed=0)
    np.testing.assert_allclose(data.class_weights, [45 / 90, 45 / 30, 45 / 15])


def test_smote_needs_two_images_per_class() -> None:
    train = Split(*make_images([10, 1], seed=0))
    with pytest.raises(PipelineError, match="smote needs at least 2"):
        VARIANTS["smote"](train, Split(*make_images([0, 0])), n_classes=2, seed=0)


def test_bootstrap_recalls_known_answer() -> None:
    y = np.array([0, 0, 1, 1])
    preds = np.array([[0, 1, 1, 1]])  # class 0: 1/2 right, class 1: 2/2
    weights = np.array([[1, 1, 1, 1], [2, 0, 1, 1], [0, 2, 0, 2]], dtype=float)
    r = bootstrap_recalls(preds, y, weights, 2)
    np.testing.assert_allclose(r[:, 0, :], [[0.5, 1.0], [1.0, 1.0], [0.0, 1.0]])


def test_binary_tasks_report_sensitivity_and_specificity() -> None:
    train = Split(*make_images([12, 4], seed=0))
    test = Split(*make_images([6, 6], seed=2))
    res = evaluate_variants(train, Split(*make_images([0, 8], seed=1)), test,
                            quick(steps=20, seeds=1, variants=["real"], bootstrap=50),
                            n_classes=2, seed=0, device=CPU)["real"].metrics
    assert res["minority_class"] == 1
    assert res["sensitivity"] == res["recall"][1] and res["specificity"] == res["recall"][0]


def test_resnet18_classifier_trains_on_small_inputs() -> None:
    x, y = make_images([6, 6], seed=0)
    model = train_classifier(x, y, quick(steps=2, classifier="resnet18", batch_size=4),
                             n_classes=2, seed=0, device=CPU)
    assert predict_proba(model, x, device=CPU).shape == (12, 2)
    assert model.conv1.stride == (1, 1)  # small-input stem


def test_only_the_listed_variants_run() -> None:
    train = Split(*make_images([6, 6]))
    results = evaluate_variants(train, Split(*make_images([0, 0])), train,
                                quick(steps=2, seeds=1, variants=["gan"]), n_classes=2, seed=0,
                                device=CPU)
    assert list(results) == ["gan"]
    assert results["gan"].metrics["n_train"] == 12  # no synthetic images: the real ones only
    assert "balanced_accuracy_ci95" in results["gan"].metrics
