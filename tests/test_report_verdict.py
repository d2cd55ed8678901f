"""pipeline/report/verdict.py: the plain-language verdict on worked numbers."""

from __future__ import annotations

from report_fixtures import BINARY, binary_evaluate, headline_of, ten_class_evaluate, variant

from pipeline.report import verdict


def test_verdict_names_a_clear_gan_win_and_says_the_interval_excludes_zero() -> None:
    text = verdict(binary_evaluate(), class_names=BINARY, test_counts={"0": 42, "1": 114})
    assert "gan has the highest balanced accuracy (0.840), +0.060 vs real, and 0 lies outside " \
           "the 95% CI of the paired difference [+0.020, +0.100]" in text
    assert "gan has the highest recall of the minority class 'malignant' (0.760), +0.210 vs real" \
        in text
    # against the best variant without synthetic images, with the caveat of no paired interval
    assert "Against the best variant without synthetic images (class_weight), gan has balanced " \
           "accuracy 0.840 vs 0.810 (+0.030), minority recall 0.760 vs 0.680 (+0.080) and ROC " \
           "AUC 0.870 vs 0.852 (+0.018)" in text
    assert "did better than class_weight at no loss of AUC" in text
    assert "no paired interval of its own" in text
    assert "not distinguishable" not in text


def test_verdict_says_not_distinguishable_when_the_interval_contains_zero() -> None:
    ev = binary_evaluate()
    del ev["gan"]  # class_weight wins both, its balanced-accuracy interval straddles 0
    text = verdict(ev, class_names=BINARY, test_counts={"0": 42, "1": 114})
    assert "class_weight has the highest balanced accuracy (0.810), +0.030 vs real, but the 95% " \
           "CI of the paired difference [-0.010, +0.070] contains 0: not distinguishable from " \
           "no balancing at this test-set size (156 test images, 42 of the minority class)" in text
    # its minority-recall gain is outside the interval
    assert "+0.130 vs real, and 0 lies outside the 95% CI of the paired difference " \
           "[+0.020, +0.250]" in text
    assert "No GAN variant was evaluated" in text


def test_verdict_leads_with_the_validation_chosen_pair_and_its_paired_interval() -> None:
    ev, counts = binary_evaluate(), {"0": 42, "1": 114}
    text = verdict(ev, class_names=BINARY, test_counts=counts,
                   headline=headline_of(0.03, (-0.02, 0.08)))
    assert text.startswith("Chosen on the validation split (the test split played no part): "
                           "gan, the best of 1 GAN configuration, and class_weight")
    assert "balanced accuracy +0.030 (paired 95% CI [-0.020, +0.080])" in text
    assert "not distinguishable from class_weight at this test-set size (156 test images, " \
           "42 of the minority class)" in text
    assert "0.100 wide over 5 seeds and 156 test images: it cannot resolve a 2-point " \
           "difference; the test set alone accounts for a width of 0.090, so more seeds cannot " \
           "fix this: only a larger test split can." in text
    assert "Among all variants on the test split:" in text  # the descriptive part follows
    win = verdict(ev, class_names=BINARY, test_counts=counts,
                  headline=headline_of(0.03, (0.01, 0.045), auc=-0.01))
    assert "The synthetic images helped" in win and "ROC AUC is lower (-0.010)" in win
    assert "0.035 wide" in win and "it can resolve a 2-point difference." in win
    narrow = verdict(ev, class_names=BINARY, headline=headline_of(-0.008, (-0.023, 0.008)))
    assert "not distinguishable from class_weight, and the interval is narrow: a gain larger " \
           "than +0.008 or a loss larger than -0.023 is unlikely." in narrow
    seeds_help = verdict(ev, class_names=BINARY, headline={
        **headline_of(0.03, (-0.01, 0.05)), "balanced_accuracy_delta_ci95_width_test_only": 0.03})
    assert "accounts for 0.030, so more seeds (evaluate.seeds) would narrow it." in seeds_help
    loss = verdict(ev, class_names=BINARY, headline=headline_of(-0.05, (-0.09, -0.01)))
    assert "did worse than class_weight, beyond test-set and seed noise" in loss


def test_verdict_says_when_gan_is_worse_and_real_wins() -> None:
    text = verdict(ten_class_evaluate(), class_names=[str(c) for c in range(10)])
    assert "real has the highest balanced accuracy (0.951): no balancing method beats training " \
           "on the imbalanced data as it is" in text
    assert "The best of them, gan, is -0.033 vs real, and the 95% CI of the paired difference " \
           "[-0.060, -0.008] lies below 0" in text
    assert "recall of the minority class '9' (0.778)" in text
    assert "On these point estimates the synthetic images did not beat real. The paired 95% CI " \
           "of the balanced-accuracy difference, [-0.060, -0.008], excludes 0." in text
    assert "did better" not in text


def test_verdict_reports_a_mixed_result_and_a_lower_auc() -> None:
    ev = {"real": variant(0.80, 0.50, auc=0.90),
          "gan": variant(0.79, 0.70, auc=0.88, vs=(-0.01, (-0.04, 0.02), 0.2, (0.05, 0.35), -0.02),
                         synthetic=True)}
    text = verdict(ev, class_names=BINARY)
    assert "A mixed result: gan is better on minority recall and worse on balanced accuracy " \
           "than real." in text
    ev["gan"]["balanced_accuracy"] = 0.85
    assert "did better than real but at a lower AUC (-0.020). The paired 95% CI of the " \
           "balanced-accuracy difference, [-0.040, +0.020], contains 0: within test-set noise." \
           in verdict(ev, class_names=BINARY)
    ev["gan"]["minority_recall"] = 0.40  # better overall, worse on the class that matters
    assert "A mixed result: gan is better on balanced accuracy and worse on minority recall " \
           "than real." in verdict(ev, class_names=BINARY)


def test_verdict_handles_an_undefined_auc() -> None:
    ev = binary_evaluate()
    ev["gan"]["roc_auc"] = None
    ev["class_weight"]["roc_auc"] = float("nan")
    text = verdict(ev, class_names=BINARY)
    assert "ROC AUC undefined for gan and class_weight" in text
    assert "did better than class_weight." in text  # no claim about AUC either way
    assert "AUC" not in text.split("did better")[1]


def test_verdict_with_one_variant_no_real_or_no_intervals() -> None:
    one = verdict({"real": variant(0.78, 0.55, ba_ci=(0.72, 0.84))}, class_names=BINARY)
    assert one.startswith("Only one variant (real) was evaluated: balanced accuracy 0.780 "
                          "(95% CI [0.720, 0.840])")
    assert "cannot say whether balancing helps" in one
    ev = binary_evaluate()
    del ev["real"]
    text = verdict(ev, class_names=BINARY)
    assert "gan has the highest balanced accuracy (0.840); there is no real variant" in text
    no_ci = {"real": variant(0.78, 0.55), "gan": variant(0.84, 0.76)}  # evaluate.bootstrap: 0
    assert "+0.060 vs real (no interval recorded" in verdict(no_ci, class_names=BINARY)
    only_gan = verdict({"gan": variant(0.8, 0.5, synthetic=True),
                        "gan_class_weight": variant(0.8, 0.6, synthetic=True)},
                       class_names=BINARY)
    assert "gan and gan_class_weight tie for the highest balanced accuracy (0.800)" in only_gan
    assert "Only GAN variants were evaluated" in only_gan


def test_the_verdict_groups_variants_by_what_evaluate_recorded_not_by_their_names() -> None:
    ev = {"real": variant(0.80, 0.50), "mixup": variant(0.84, 0.70, synthetic=True),
          "gan_lookalike": variant(0.82, 0.60)}
    text = verdict(ev, class_names=BINARY)
    assert "Against the best variant without synthetic images (gan_lookalike), mixup has " \
           "balanced accuracy 0.840 vs 0.820 (+0.020)" in text
    chosen = verdict(ev, class_names=BINARY, headline={
        **headline_of(0.02, (-0.02, 0.06)), "gan": "mixup", "baseline": "gan_lookalike"})
    assert "mixup, the best of 1 GAN configuration, and gan_lookalike" in chosen


def test_verdict_states_the_minimum_detectable_difference_and_the_one_se_rule() -> None:
    ev, counts = binary_evaluate(), {"0": 42, "1": 114}
    h = {**headline_of(0.01, (-0.04, 0.06)), "balanced_accuracy_mdd80": 0.0712,
         "selection_rule": "one_se"}
    text = verdict(ev, class_names=BINARY, test_counts=counts, headline=h)
    assert text.startswith("Chosen on the validation split (the test split played no part): "
                           "gan of 1 GAN configuration and class_weight of the variants without "
                           "synthetic images, each the simplest within one paired standard "
                           "error of the best.")
    assert "So: no difference larger than 7.1 points of balanced accuracy (the smallest this " \
           "test split and seed count detect with 80% power" in text
    # an interval that excludes 0 found a difference: no power caveat
    clear = verdict(ev, class_names=BINARY, test_counts=counts,
                    headline={**h, "balanced_accuracy_delta_ci95": [0.01, 0.09]})
    assert "no difference larger than" not in clear
