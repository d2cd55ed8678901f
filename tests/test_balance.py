"""pipeline/balance.py: how many synthetic images each class needs, with worked numbers."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.balance import balance_plan
from pipeline.errors import PipelineError

COUNTS = {0: 100, 1: 30, 2: 5}


def test_majority_fills_every_class_up_to_the_largest() -> None:
    assert balance_plan(COUNTS) == {0: 0, 1: 70, 2: 95}
    assert balance_plan(COUNTS, target="majority") == {0: 0, 1: 70, 2: 95}


def test_count_fills_every_class_up_to_count() -> None:
    assert balance_plan(COUNTS, target="count", count=50) == {0: 0, 1: 20, 2: 45}
    assert balance_plan(COUNTS, target="count", count=120) == {0: 20, 1: 90, 2: 115}


def test_count_below_every_class_adds_nothing() -> None:
    assert balance_plan(COUNTS, target="count", count=3) == {0: 0, 1: 0, 2: 0}


@pytest.mark.parametrize(("ratio", "expected"), [
    (0.5, {0: 0, 1: 20, 2: 45}),    # goal ceil(0.5 * 100) = 50
    (1.0, {0: 0, 1: 70, 2: 95}),    # goal 100, same as majority
    (1.5, {0: 50, 1: 120, 2: 145}),  # goal 150: the majority class grows too
    (0.333, {0: 0, 1: 4, 2: 29}),   # goal ceil(33.3) = 34
])
def test_ratio_fills_up_to_ratio_times_the_largest(ratio: float, expected: dict[int, int]) -> None:
    assert balance_plan(COUNTS, target="ratio", ratio=ratio) == expected


def test_ratio_goal_is_not_pushed_up_by_float_error() -> None:
    # 0.55 * 100 == 55.00000000000001 in floating point: the goal is 55, not 56.
    assert 0.55 * 100 > 55
    assert balance_plan({0: 100, 1: 1}, target="ratio", ratio=0.55) == {0: 0, 1: 54}
    assert balance_plan({0: 3, 1: 0}, target="ratio", ratio=1 / 3) == {0: 0, 1: 1}


def test_class_ids_need_not_be_contiguous() -> None:
    assert balance_plan({3: 4, 7: 10, 42: 1}) == {3: 6, 7: 0, 42: 9}


def test_a_single_class_needs_nothing() -> None:
    assert balance_plan({0: 17}) == {0: 0}


def test_plan_is_never_negative_and_reaches_the_goal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts = {c: int(n) for c, n in enumerate(rng.integers(0, 500, rng.integers(1, 12)))}
        for kwargs, goal in (
            ({"target": "majority"}, max(counts.values())),
            ({"target": "count", "count": 200}, 200),
            ({"target": "ratio", "ratio": 0.7}, int(np.ceil(0.7 * max(counts.values()) - 1e-9))),
        ):
            plan = balance_plan(counts, **kwargs)
            assert plan.keys() == counts.keys()
            assert all(v >= 0 for v in plan.values())
            assert all(counts[c] + plan[c] == max(counts[c], goal) for c in counts)


def test_empty_counts_are_an_error() -> None:
    with pytest.raises(PipelineError, match="no classes to balance"):
        balance_plan({})


def test_unknown_target_is_an_error_listing_the_targets() -> None:
    with pytest.raises(PipelineError,
                       match="generate.target: 'all' is not one of majority, count, ratio"):
        balance_plan(COUNTS, target="all")
