"""pipeline/selection.py: the validation-only choice of the GAN configuration and the baseline
(one-standard-error rule, preference order, stability), and evaluate's power figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_images
from pipeline.artifacts import Split
from pipeline.config import EvaluateConfig, parse_config
from pipeline.errors import PipelineError
from pipeline.evaluate import VariantResult, evaluate_variants, minimum_detectable
from pipeline.pool import SyntheticPool
from pipeline.selection import preference, select

B = 400  # validation resamples in the constructed draws


def result(name: str, score: float, *, seeds: tuple[float, ...] = ()) -> VariantResult:
    base, _, ratio = name.partition("@")
    metrics = {"val_balanced_accuracy": score, "synthetic": base.startswith("gan"),
               "variant": base, "synthetic_ratio": ratio or None}
    return VariantResult(metrics, [], None, None,
                         val_scores=np.array(seeds) if seeds else None)


def constructed(scores: dict[str, float], *, sd: float = 0.02,
                seed: int = 0) -> tuple[dict[str, VariantResult], dict]:
    """Results with these validation scores and paired draws whose differences have SE ~ sd:
    a shared term (the validation images, common to all variants) plus independent noise."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 0.05, B)
    draws = {n: {"balanced_accuracy": s + shared + rng.normal(0, sd / np.sqrt(2), B)}
             for n, s in scores.items()}
    return {n: result(n, s) for n, s in scores.items()}, draws


BASE = {"real": 0.70, "class_weight": 0.80, "oversample": 0.81, "smote": 0.79,
        "gan@0.5": 0.80, "gan@balance": 0.81}


def test_a_noise_level_validation_edge_does_not_move_the_choice() -> None:
    results, draws = constructed(BASE)  # oversample and gan@balance lead by 0.01, SE ~0.02
    sel = select(results, rule="one_se", draws=draws)
    assert (sel["gan"], sel["baseline"]) == ("gan@0.5", "class_weight")  # the simpler ones
    assert sel["highest"] == {"gan": "gan@balance", "baseline": "oversample"}
    old = select(results, rule="max", draws=draws)
    assert (old["gan"], old["baseline"]) == ("gan@balance", "oversample")
    assert 0 < sel["stability"]["one_se"] < 1 and sel["stability_resamples"] == B


def test_a_large_validation_edge_does_move_the_choice() -> None:
    results, draws = constructed({**BASE, "oversample": 0.90, "gan@balance": 0.90})
    sel = select(results, rule="one_se", draws=draws)
    assert (sel["gan"], sel["baseline"]) == ("gan@balance", "oversample")
    assert sel["stability"]["one_se"] > 0.95


def test_without_draws_the_standard_error_comes_from_the_seeds() -> None:
    close = {"real": result("real", 0.80, seeds=(0.78, 0.80, 0.82)),
             "smote": result("smote", 0.81, seeds=(0.80, 0.83, 0.80)),
             "gan@0.5": result("gan@0.5", 0.8, seeds=(0.8, 0.8, 0.8))}
    assert select(close, rule="one_se")["baseline"] == "real"  # 0.01 edge, seed SE ~0.02
    far = {**close, "smote": result("smote", 0.90, seeds=(0.89, 0.91, 0.90))}
    assert select(far, rule="one_se")["baseline"] == "smote"


def test_ties_go_to_the_simpler_variant_whatever_the_params_order() -> None:
    names = ["smote", "oversample", "class_weight", "gan@balance", "gan_pretrain", "gan@0.5"]
    for order in (names, names[::-1]):
        results = {n: result(n, 0.8) for n in order}
        for rule in ("max", "one_se"):
            sel = select(results, rule=rule)
            assert (sel["gan"], sel["baseline"]) == ("gan@0.5", "class_weight")


def test_nan_is_never_chosen() -> None:
    results = {"real": result("real", float("nan")), "smote": result("smote", 0.6),
               "gan@0.5": result("gan@0.5", float("nan"))}
    for rule in ("max", "one_se"):
        sel = select(results, rule=rule)
        assert (sel["gan"], sel["baseline"]) == (None, "smote")


def test_preference_is_simpler_first() -> None:
    def order(names: list[str]) -> list[str]:
        keyed = [(preference(n, result(n, 0.5).metrics, i), n) for i, n in enumerate(names)]
        return [n for _, n in sorted(keyed)]

    assert order(["smote", "oversample", "real", "class_weight"]) == [
        "real", "class_weight", "oversample", "smote"]
    assert order(["gan_pretrain", "gan@balance", "gan_random@0.5", "gan@1", "gan@0.25"]) == [
        "gan@0.25", "gan@1", "gan@balance", "gan_random@0.5", "gan_pretrain"]
    # a variant the order does not know (a new one) comes after the known ones, in params order
    assert order(["zz_new", "smote", "aa_new"]) == ["smote", "zz_new", "aa_new"]


def test_selection_is_a_checked_setting() -> None:
    assert EvaluateConfig().selection == "one_se"
    assert parse_config({"evaluate": {"selection": "max"}}).evaluate.selection == "max"
    with pytest.raises(PipelineError, match=r"evaluate.selection: 'best' \(str\) is not allowed; "
                                            r"choose one of: one_se, max"):
        parse_config({"evaluate": {"selection": "best"}})


def test_flipping_every_test_label_does_not_move_the_choice_or_its_stability() -> None:
    train = Split(*make_images([12, 4], seed=0))
    # noisy test and synthetic images: the variants differ on test, so a choice that read test
    # would move when its labels flip (planted: select on test balanced accuracy -> gan flips)
    val, test = Split(*make_images([6, 6], seed=3)), Split(*make_images([6, 6], seed=2, noise=120))
    x, y = make_images([16, 16], seed=1, noise=120)
    pool = SyntheticPool(x, y, np.arange(len(y), dtype=np.int64),
                         np.linspace(0, 1, len(y)), np.concatenate([np.arange(16)] * 2))
    cfg = EvaluateConfig(steps=30, batch_size=16, lr=0.01, width=8, seeds=2, bootstrap=50,
                         variants=("real", "class_weight", "oversample", "gan"))
    runs = [evaluate_variants(train, val, t, pool, cfg, n_classes=2, seed=0,
                              device=torch.device("cpu"))
            for t in (test, Split(test.images, 1 - test.labels))]
    assert runs[0].selection == runs[1].selection
    real = [r.variants["real"].metrics["balanced_accuracy"] for r in runs]
    assert real[0] != pytest.approx(real[1])  # the test scores did change
    assert runs[0].headline["selection_rule"] == "one_se"


def test_minimum_detectable_difference_is_2_8_paired_standard_errors() -> None:
    draws = np.random.default_rng(0).normal(0.01, 0.025, 20_000)
    out = minimum_detectable(draws)
    assert out["balanced_accuracy_delta_se"] == pytest.approx(0.025, rel=0.02)
    assert out["balanced_accuracy_mdd80"] == pytest.approx(2.8016 * 0.025, rel=0.02)
