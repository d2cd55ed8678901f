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
from pipeline.evaluate import bootstrap_recalls, evaluate_variants, summary_lines
from pipeline.pool import SyntheticPool
from pipeline.variants import NUMERIC_ONLY, SHARED, VARIANTS, Variant, synthetic_counts

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

def make_pool(counts: list[int], *, seed: int = 1) -> SyntheticPool:
    """A pool of easily separable 'synthetic' images whose scores shuffle the draw order."""
    x, y = make_images(counts, seed=seed)
    draw = np.concatenate([np.arange(n) for n in counts])
    scores = (draw * 7 % 23) / 23.0  # a permutation of the draw order for up to 23 per class
    return SyntheticPool(x, y, np.arange(len(y), dtype=np.int64), scores, draw)


ALL = tuple(VARIANTS)  # every registered variant, in registry order
# the share variants once per synthetic_ratios entry (0.5, balance), in place; gan_mix only at 0.5
EXPANDED = [f"{name}@{r}" if name in SHARED else name for name in ALL
            for r in ((("0.5",) if name in NUMERIC_ONLY else ("0.5", "balance"))
                      if name in SHARED else (None,))]


def test_expanded_names_cover_the_registry() -> None:
    assert len(EXPANDED) == len(ALL) + len(SHARED) - len(NUMERIC_ONLY)
    assert set(SHARED) < set(ALL) and "real" in ALL and "gan@balance" in EXPANDED


@pytest.fixture(scope="module")
def comparison():
    train = Split(*make_images([12, 6, 3], seed=0))
    pool = make_pool([24, 24, 24])
    val = Split(*make_images([4, 4, 4], seed=3))
    test = Split(*make_images([5, 5, 5], seed=2))
    logs: dict[tuple, list] = {}
    fits: list[tuple] = []
    result = evaluate_variants(
        train, val, test, pool, quick(steps=30, seeds=2, bootstrap=200, variants=list(ALL)),
        n_classes=3, seed=0, device=CPU,
        log_for=lambda v, s: (lambda m, step: logs.setdefault((v, s), []).append((step, m))),
        on_fit=lambda v, s: fits.append((v, s)),
    )
    return result, logs, fits, test


def test_every_variant_runs_with_its_training_set(comparison) -> None:
    result, logs, fits, _ = comparison
    results = result.variants
    assert list(results) == EXPANDED
    counts = {name: res.train_counts for name, res in results.items()}
    assert counts["real"] == counts["class_weight"] == counts["real_noaug"] == {0: 12, 1: 6, 2: 3}
    assert counts["oversample"] == counts["smote"] == {0: 12, 1: 12, 2: 12}  # balanced
    # share 0.5: half the real count of each class below the majority, capped at balance
    assert counts["gan@0.5"] == counts["gan_random@0.5"] == {0: 12, 1: 9, 2: 5}
    assert counts["gan@balance"] == counts["gan_class_weight@balance"] == {0: 12, 1: 12, 2: 12}
    assert counts["gan_pretrain"] == {0: 12, 1: 6, 2: 3}  # fine-tuned on the real split
    assert results["gan_pretrain"].metrics["n_pretrain"] == 36  # 12 synthetic per class
    assert results["gan@0.5"].metrics["n_synthetic"] == 5
    assert counts["gan_real@0.5"] == counts["gan_downweight@0.5"] == {0: 12, 1: 9, 2: 5}
    # label-free mixing: every class, the majority too, gets half its real count
    assert counts["gan_mix@0.5"] == {0: 18, 1: 9, 2: 5}
    assert "gan_mix@balance" not in results
    # what MLflow records as each variant's training set (log_variant_runs)
    assert np.bincount(results["gan@0.5"].train_labels).tolist() == [12, 9, 5]
    assert results["gan@0.5"].train_digest != results["gan@balance"].train_digest
    assert fits == [(v, s) for v in EXPANDED for s in (0, 1)]  # every (variant, seed) reported
    # gan_class_weight@balance's weights are uniform on the balanced set: the same run as
    # gan@balance, not refit; at 0.5 the weights differ, so it is its own run
    assert ("gan_class_weight@balance", 0) not in logs and ("gan_class_weight@0.5", 0) in logs
    np.testing.assert_array_equal(results["gan@balance"].probas,
                                  results["gan_class_weight@balance"].probas)
    for a, b in (("real", "class_weight"), ("real", "real_noaug"), ("real", "gan_pretrain"),
                 ("gan@0.5", "gan_random@0.5"), ("gan@0.5", "gan_downweight@0.5"),
                 ("gan@0.5", "gan_real@0.5")):
        assert not np.array_equal(results[a].probas, results[b].probas), (a, b)
    m = results["gan@0.5"].metrics
    assert (m["variant"], m["synthetic"], m["synthetic_ratio"]) == ("gan", True, "0.5")
    assert results["smote"].metrics["synthetic"] is False


def test_summary_lines_name_every_variant_and_the_choice(comparison) -> None:
    result = comparison[0]
    lines = summary_lines(result)
    assert len(lines) == len(EXPANDED) + 1
    for name, line in zip(EXPANDED, lines):
        assert line.startswith(f"evaluate: {name:>20}: val ")
        m = result.variants[name].metrics
        assert f"balanced_accuracy={m['balanced_accuracy']:.3f}" in line
    h = result.headline
    assert lines[-1].startswith(f"evaluate: chosen on validation: {h['gan']} vs {h['baseline']}")


def test_selection_uses_validation_and_the_headline_is_the_paired_test_difference(
        comparison) -> None:
    result, _, _, _ = comparison
    results, sel, h = result.variants, result.selection, result.headline
    val = {n: r.metrics["val_balanced_accuracy"] for n, r in results.items()}
    gans = [n for n in EXPANDED if results[n].metrics["synthetic"]]
    others = [n for n in EXPANDED if n not in gans]
    assert sel["highest"] == {"gan": max(gans, key=val.get), "baseline": max(others, key=val.get)}
    assert (sel["by"], sel["rule"]) == ("val_balanced_accuracy", "one_se")
    for group in ("gan", "baseline"):  # one_se keeps a simpler variant only when close to the best
        assert val[sel[group]] <= val[sel["highest"][group]]
    assert all(0 <= v <= 1 for v in sel["stability"].values())
    assert set(sel["stability"]) == {"one_se", "max"}
    g, b = results[sel["gan"]].metrics, results[sel["baseline"]].metrics
    assert (h["gan"], h["baseline"]) == (sel["gan"], sel["baseline"])
    assert h["balanced_accuracy_delta"] == pytest.approx(
        g["balanced_accuracy"] - b["balanced_accuracy"])
    assert h["roc_auc_delta"] == pytest.approx(g["roc_auc"] - b["roc_auc"])
    lo, hi = h["balanced_accuracy_delta_ci95"]
    assert lo <= h["balanced_accuracy_delta"] <= hi
    assert h["balanced_accuracy_delta_ci95_width"] == pytest.approx(hi - lo)
    # 5 test images per class: one image moves balanced accuracy by 1/15, so however narrow the
    # interval, this split cannot resolve 2 points
    assert h["balanced_accuracy_step"] == pytest.approx(1 / 15, abs=1e-6)
    assert h["resolves_2_points"] is False
    # holding the seeds fixed removes seed noise: never wider than the two-level interval
    assert 0 <= h["balanced_accuracy_delta_ci95_width_test_only"] <= hi - lo + 1e-9
    assert (h["n_seeds"], h["n_test"]) == (2, 15)
    assert "vs_baseline" not in b and g["vs_baseline"] == {k: v for k, v in h.items()
                                                          if k in g["vs_baseline"]}
    assert set(result.as_json()) == {"selection", "headline", "variants"}


def test_selection_never_reads_the_test_split() -> None:
    train = Split(*make_images([12, 4], seed=0))
    val = Split(*make_images([5, 5], seed=3))
    test = Split(*make_images([6, 6], seed=2))
    cfg = quick(steps=20, seeds=1, variants=["real", "class_weight", "gan"], bootstrap=0)
    a = evaluate_variants(train, val, test, make_pool([16, 16]), cfg, n_classes=2, seed=0,
                          device=CPU)
    flipped = Split(test.images, 1 - test.labels)  # every test label wrong
    b = evaluate_variants(train, val, flipped, make_pool([16, 16]), cfg, n_classes=2, seed=0,
                          device=CPU)
    assert a.selection == b.selection
    assert a.variants["real"].metrics["balanced_accuracy"] != \
        b.variants["real"].metrics["balanced_accuracy"]
    assert "balanced_accuracy_delta_ci95" not in a.headline  # bootstrap 0: no interval


def test_a_shared_fit_cache_trains_the_baselines_once_across_pools() -> None:
    train = Split(*make_images([12, 4], seed=0))
    val, test = Split(*make_images([5, 5], seed=3)), Split(*make_images([6, 6], seed=2))
    cfg = quick(steps=10, seeds=2, variants=["real", "class_weight", "gan"], bootstrap=0)
    fitted: dict = {}

    def compare(pool: SyntheticPool, *, settings=cfg, scored: Split = test):
        trained: list[tuple[str, int]] = []
        result = evaluate_variants(
            train, val, scored, pool, settings, n_classes=2, seed=0, device=CPU, fitted=fitted,
            log_for=lambda v, s: (lambda m, step: None if (v, s) in trained
                                  else trained.append((v, s))))
        return result, trained

    first, trained = compare(make_pool([16, 16], seed=1))
    assert trained == [(v, s) for v in ("real", "class_weight", "gan@0.5", "gan@balance")
                       for s in (0, 1)]
    second, trained = compare(make_pool([16, 16], seed=4))  # another pool: only its gan variants
    assert trained == [(v, s) for v in ("gan@0.5", "gan@balance") for s in (0, 1)]
    for name in ("real", "class_weight"):  # reused, so the same probabilities
        np.testing.assert_array_equal(first.variants[name].probas, second.variants[name].probas)
    # other settings or another scored split never reuse a fit
    _, trained = compare(make_pool([16, 16], seed=1), settings=quick(
        steps=11, seeds=2, variants=["real", "class_weight", "gan"], bootstrap=0))
    assert ("real", 0) in trained
    _, trained = compare(make_pool([16, 16], seed=1), scored=Split(test.images, 1 - test.labels))
    assert ("real", 0) in trained


def test_metrics_are_seed_means_in_range_with_intervals(comparison) -> None:
    result, _, _, test = comparison
    results = result.variants
    for name, res in results.items():
        m = res.metrics
        assert m["n_seeds"] == 2 and len(res.per_seed) == 2 and res.probas.shape == (2, 15, 3)
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "minority_recall",
                    "minority_precision", "val_balanced_accuracy", "val_roc_auc"):
            assert 0.0 <= m[key] <= 1.0, key
        for key in ("accuracy", "balanced_accuracy", "minority_recall"):
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


def test_synthetic_counts_worked_examples() -> None:
    labels = np.array([0] * 100 + [1] * 30 + [2] * 5)
    assert synthetic_counts(labels, 3, 0.25) == {0: 0, 1: 8, 2: 1}  # round(7.5) = 8
    assert synthetic_counts(labels, 3, 1.0) == {0: 0, 1: 30, 2: 5}
    assert synthetic_counts(labels, 3, 30.0) == {0: 0, 1: 70, 2: 95}  # capped at balance
    assert synthetic_counts(labels, 3, "balance") == {0: 0, 1: 70, 2: 95}


def test_gan_variants_take_best_scored_or_first_drawn_images() -> None:
    train = Split(*make_images([8, 4], seed=0))
    pool = make_pool([10, 10])
    pool = SyntheticPool(pool.images, pool.labels, pool.seeds,
                         np.where(pool.draw % 2 == 1, 1.0, 0.0), pool.draw)  # odd draws best
    gan = VARIANTS["gan"](train, pool, Variant("gan", 0.5), n_classes=2, seed=0)
    rnd = VARIANTS["gan_random"](train, pool, Variant("gan_random", 0.5), n_classes=2, seed=0)
    added = lambda data: data.images[len(train.labels):]  # noqa: E731
    best = pool.take({1: 2})
    assert pool.draw[best].tolist() == [1, 3]
    np.testing.assert_array_equal(added(gan), pool.images[best])
    np.testing.assert_array_equal(added(rnd), pool.images[pool.take({1: 2}, by="draw")])
    assert gan.labels[len(train.labels):].tolist() == [1, 1]


def test_smote_and_oversampling_balance_the_counts() -> None:
    train = Split(*make_images([20, 7, 4], seed=0))
    empty = make_pool([0, 0, 0])
    for name in ("oversample", "smote"):
        data = VARIANTS[name](train, empty, Variant(name), n_classes=3, seed=0)
        assert np.bincount(data.labels).tolist() == [20, 20, 20]
        assert data.images.dtype == np.uint8 and data.images.shape[1:] == train.images.shape[1:]
    over = VARIANTS["oversample"](train, empty, Variant("oversample"), n_classes=3, seed=0)
    real_rows = {img.tobytes() for img in train.images}
    assert all(img.tobytes() in real_rows for img in over.images)  # copies only
    smote = VARIANTS["smote"](train, empty, Variant("smote"), n_classes=3, seed=0)
    new = [img for img in smote.images if img.tobytes() not in real_rows]
    assert len(new) > 0  # SMOTE interpolates new images


def test_class_weights_are_inverse_frequency() -> None:
    train = Split(*make_images([30, 10, 5], seed=0))
    data = VARIANTS["class_weight"](train, make_pool([0, 0, 0]), Variant("class_weight"),
                                    n_classes=3, seed=0)
    np.testing.assert_allclose(data.class_weights, [45 / 90, 45 / 30, 45 / 15])


def test_smote_needs_two_images_per_class() -> None:
    train = Split(*make_images([10, 1], seed=0))
    with pytest.raises(PipelineError, match="smote needs at least 2"):
        VARIANTS["smote"](train, make_pool([0, 0]), Variant("smote"), n_classes=2, seed=0)


def test_bootstrap_recalls_known_answer() -> None:
    y = np.array([0, 0, 1, 1])
    preds = np.array([[0, 1, 1, 1]])  # class 0: 1/2 right, class 1: 2/2
    weights = np.array([[1, 1, 1, 1], [2, 0, 1, 1], [0, 2, 0, 2]], dtype=float)
    r = bootstrap_recalls(preds, y, weights, 2)
    np.testing.assert_allclose(r[:, 0, :], [[0.5, 1.0], [1.0, 1.0], [0.0, 1.0]])


def test_binary_tasks_report_sensitivity_and_specificity() -> None:
    train = Split(*make_images([12, 4], seed=0))
    test = Split(*make_images([6, 6], seed=2))
    res = evaluate_variants(train, test, test, make_pool([0, 8]),
                            quick(steps=20, seeds=1, variants=["real"], bootstrap=50),
                            n_classes=2, seed=0, device=CPU).variants["real"].metrics
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
    result = evaluate_variants(train, train, train, make_pool([0, 0]),
                               quick(steps=2, seeds=1, variants=["gan"],
                                     synthetic_ratios=["balance"]), n_classes=2, seed=0,
                               device=CPU)
    assert list(result.variants) == ["gan@balance"]
    m = result.variants["gan@balance"].metrics
    assert m["n_train"] == 12 and m["n_synthetic"] == 0  # balanced already: real images only
    assert "balanced_accuracy_ci95" in m
    assert {k: result.selection[k] for k in ("gan", "baseline", "by")} == {
        "gan": "gan@balance", "baseline": None, "by": "val_balanced_accuracy"}
    assert result.headline == {}  # nothing to compare with
