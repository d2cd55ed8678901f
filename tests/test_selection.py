"""pipeline/evaluate.select and the minority class: what validation chooses when numbers tie,
when a validation metric is NaN, and which class is "the minority" when rare classes tie.

Planted faults each test catches: a tie resolved by something other than the documented rule
(the preference order, pipeline/selection.py) or differently from call to call; a NaN validation metric chosen (Python's max() keeps a NaN
it meets first); equally rare classes resolved to the highest label, or the rare classes given
different synthetic shares."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import make_images
from pipeline.artifacts import Split
from pipeline.config import EvaluateConfig
from pipeline.evaluate import SELECT_BY, evaluate_variants, headline, select
from pipeline.pool import SyntheticPool

NAN = math.nan


def results(val: dict[str, float]) -> dict[str, SimpleNamespace]:
    """Stand-ins for VariantResult: select reads only `synthetic` and the validation metric."""
    return {name: SimpleNamespace(metrics={SELECT_BY: v, "synthetic": name.startswith("gan")})
            for name, v in val.items()}


def chosen(sel: dict) -> dict:
    """The part of select's record these tests are about (it also records the rule, `highest`
    and, with validation draws, its stability)."""
    return {k: sel[k] for k in ("gan", "baseline", "by")}


def test_exact_ties_go_to_the_simpler_variant_every_time() -> None:
    """BreastMNIST's case: class_weight and oversample tied on 78 validation images. The rule
    (pipeline/selection.py, docs/study.md): the simpler variant in the preference order
    (real < class_weight < oversample < smote; plain gan, smaller share first), whatever the
    order of evaluate.variants, under both selection rules."""
    val = {"real": 0.80, "class_weight": 0.876, "oversample": 0.876, "gan@0.5": 0.9,
           "gan@balance": 0.9}
    swapped = {k: val[k] for k in ("oversample", "class_weight", "real", "gan@balance",
                                   "gan@0.5")}
    for rule in ("max", "one_se"):
        for order in (val, swapped):
            assert all(chosen(select(results(order), rule=rule)) == {
                "gan": "gan@0.5", "baseline": "class_weight", "by": SELECT_BY}
                for _ in range(5))


@pytest.mark.parametrize("first", [True, False])
def test_a_nan_validation_metric_is_never_chosen(first: bool) -> None:
    val = {"real": NAN, "class_weight": 0.7, "gan@0.5": NAN, "gan@balance": 0.6}
    if not first:  # NaN listed last: max() happens to skip it, but the rule must not depend on it
        val = dict(reversed(list(val.items())))
    for rule in ("max", "one_se"):
        assert chosen(select(results(val), rule=rule)) == {
            "gan": "gan@balance", "baseline": "class_weight", "by": SELECT_BY}


def test_when_every_validation_metric_is_nan_nothing_is_chosen_and_no_headline() -> None:
    sel = select(results({"real": NAN, "gan@0.5": NAN}))
    assert chosen(sel) == {"gan": None, "baseline": None, "by": SELECT_BY}
    assert headline({}, sel, {}, n_test=10) == {}


def quick_evaluate(counts: list[int]):
    train = Split(*make_images(counts, seed=0))
    val = Split(*make_images([4] * len(counts), seed=3))
    pool_x, pool_y = make_images([12] * len(counts), seed=1)
    draw = np.concatenate([np.arange(12)] * len(counts))
    pool = SyntheticPool(pool_x, pool_y, np.arange(len(pool_y), dtype=np.int64),
                         np.linspace(0, 1, len(pool_y)), draw)
    cfg = EvaluateConfig(steps=2, batch_size=8, width=4, seeds=1, bootstrap=0,
                         variants=["real", "gan"], synthetic_ratios=[0.5])
    return evaluate_variants(train, val, val, pool, cfg, n_classes=len(counts), seed=0,
                             device=torch.device("cpu"))


@pytest.mark.parametrize(("counts", "minority"), [([4, 12, 4], 0), ([12, 4, 4], 1),
                                                  ([6, 6], 0)])
def test_equally_rare_classes_make_the_lowest_label_the_minority(counts, minority) -> None:
    result = quick_evaluate(counts)
    real = result.variants["real"].metrics
    assert real["minority_class"] == minority
    if len(counts) == 2:  # binary: the minority is the positive class
        assert real["sensitivity"] == real["recall"][minority]
    added = {c: result.variants["gan@0.5"].train_counts[c] - n for c, n in enumerate(counts)}
    rare = [c for c, n in enumerate(counts) if n == min(counts)]
    assert len({added[c] for c in rare}) == 1  # the equally rare classes get the same share
    assert all(added[c] == 0 for c, n in enumerate(counts) if n == max(counts))
