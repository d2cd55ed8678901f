"""prepare.imbalance: counts — nested, seeded per-class counts of training images (the regime
study's scarcity setting), and class names in keep_fractions / keep_counts."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import DataConfig, PrepareConfig, parse_config
from pipeline.data.imbalance import keep_counts, keep_fractions, nested_indices
from pipeline.data.prepare import prepare_dataset
from pipeline.errors import PipelineError

LABELS = np.repeat([0, 1, 2], [60, 50, 8])
NAMES = ["benign", "malignant", "normal"]


def _kept(n: int, *, seed: int = 0) -> set[int]:
    return set(nested_indices(LABELS, {0: 60, 1: n, 2: 8}, seed=seed).tolist())


def test_counts_are_nested_exact_and_leave_other_classes_alone() -> None:
    k10, k25, k50 = _kept(10), _kept(25), _kept(50)
    assert k10 < k25 < k50  # the 10 kept are among the 25 kept, which are among the 50
    for kept, n in ((k10, 10), (k25, 25), (k50, 50)):
        assert np.bincount(LABELS[sorted(kept)], minlength=3).tolist() == [60, n, 8]
    # another class's count does not move which class-1 images are kept
    other = nested_indices(LABELS, {0: 5, 1: 25, 2: 3}, seed=0)
    assert set(other[LABELS[other] == 1].tolist()) == {i for i in k25 if LABELS[i] == 1}


def test_counts_are_deterministic_by_seed_and_sorted() -> None:
    a = nested_indices(LABELS, {0: 30, 1: 10, 2: 4}, seed=3)
    np.testing.assert_array_equal(a, nested_indices(LABELS, {0: 30, 1: 10, 2: 4}, seed=3))
    assert not np.array_equal(a, nested_indices(LABELS, {0: 30, 1: 10, 2: 4}, seed=4))
    assert np.all(np.diff(a) > 0)


def test_keep_counts_by_name_or_label_and_unlisted_classes_keep_all() -> None:
    by_name = PrepareConfig(imbalance="counts", keep_counts={"malignant": 25})
    by_label = PrepareConfig(imbalance="counts", keep_counts={1: 25})
    for cfg in (by_name, by_label):
        assert keep_counts(LABELS, cfg, n_classes=3, class_names=NAMES) == {0: 60, 1: 25, 2: 8}


@pytest.mark.parametrize("counts, message", [
    ({"malignant": 51}, r"class 'malignant' \(label 1\) has only 50 training images, fewer than "
                        r"the 51 asked for; ask for at most 50"),
    ({"tumour": 5}, r"prepare.keep_counts: class 'tumour' does not exist; classes are 0..2 "
                    r"\(0 = benign, 1 = malignant, 2 = normal\)"),
    ({"malignant": 5, 1: 6}, r"class 1 is given twice"),
])
def test_keep_counts_errors_name_the_class(counts, message) -> None:
    cfg = PrepareConfig(imbalance="counts", keep_counts=counts)
    with pytest.raises(PipelineError, match=message):
        keep_counts(LABELS, cfg, n_classes=3, class_names=NAMES)


@pytest.mark.parametrize("prepare, message", [
    ({"imbalance": "counts", "keep_counts": {"malignant": 2}},
     r"prepare.keep_counts.malignant: must be >= 3 \(class 'malignant'"),
    ({"imbalance": "counts"}, r"prepare.keep_counts: must name at least one class"),
    ({"imbalance": "counts", "keep_counts": {"malignant": 2.5}},
     r"prepare.keep_counts.malignant: expected int"),
])
def test_keep_counts_params_errors(prepare, message) -> None:
    with pytest.raises(PipelineError, match=message):
        parse_config({"prepare": prepare})


def test_keep_fractions_take_class_names() -> None:
    cfg = parse_config({"prepare": {"imbalance": "fractions",
                                    "keep_fractions": {"malignant": 0.5, 2: 0.25}}}).prepare
    assert keep_fractions(3, cfg, class_names=NAMES) == {0: 1.0, 1: 0.5, 2: 0.25}


def test_prepare_with_counts_thins_train_only_and_reports_it() -> None:
    full = prepare_dataset(DataConfig(), PrepareConfig(imbalance="none"), seed=0)
    cfg = PrepareConfig(imbalance="counts", keep_counts={"3": 5, 7: 20})  # digits: names "0".."9"
    thin = prepare_dataset(DataConfig(), cfg, seed=0)
    before = full.report["counts"]["train"]
    assert thin.report["counts"]["train"] == {**before, 3: 5, 7: 20}
    for split in ("val", "test"):  # untouched
        np.testing.assert_array_equal(thin.splits[split].labels, full.splits[split].labels)
        np.testing.assert_array_equal(thin.splits[split].images, full.splits[split].images)
    assert thin.report["simulated_imbalance"]["removed"][3] == before[3] - 5
    assert thin.report["train_keep_fraction"][7] == round(20 / before[7], 4)
    assert "prepare.imbalance: counts" in thin.report["data_changes"][0]
