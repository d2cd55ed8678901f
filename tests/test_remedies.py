"""The shortcut remedies' training sets and losses (gan_mix, gan_real, gan_downweight), their
settings, and the report's guard that names a shortcut."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_images
from pipeline.artifacts import Split
from pipeline.classify import predict_proba, train_classifier
from pipeline.config import EvaluateConfig, parse_config
from pipeline.errors import PipelineError
from pipeline.pool import SyntheticPool, load_pool
from pipeline.report.shortcut import class_sentence, shortcut_guard
from pipeline.variants import VARIANTS, Variant, mixed_counts

CPU = torch.device("cpu")


def pool_with_realness() -> SyntheticPool:
    """10 candidates per class; scores rank by draw order, realness by the reverse."""
    x, y = make_images([10, 10], seed=1)
    draw = np.r_[np.arange(10), np.arange(10)]
    return SyntheticPool(x, y, np.arange(20, dtype=np.int64), 1.0 - draw / 10, draw,
                         draw / 10)


def build(base: str, ratio, train: Split, **kw):
    return VARIANTS[base](train, pool_with_realness(), Variant(base, ratio), n_classes=2,
                          seed=0, **kw)


def test_mixed_counts_give_every_class_the_same_share() -> None:
    labels = np.array([0] * 9 + [1] * 3)
    assert mixed_counts(labels, 2, 1) == {0: 9, 1: 3}
    assert mixed_counts(labels, 2, 0.5) == {0: 4, 1: 2}  # round half to even: 4.5 -> 4


def test_gan_mix_adds_synthetic_images_to_every_class_with_class_weights() -> None:
    train = Split(*make_images([8, 2], seed=0))
    data = build("gan_mix", 1, train)
    n0, n1 = np.bincount(data.labels)
    assert (n0, n1) == (16, 4)  # each class doubled: the real proportions kept
    synth_labels = data.labels[10:]
    assert np.bincount(synth_labels).tolist() == [8, 2]  # the majority got synthetic images too
    np.testing.assert_allclose(data.class_weights, [20 / (2 * 16), 20 / (2 * 4)])
    assert data.sample_weights is None


def test_gan_real_takes_the_most_real_looking_and_gan_the_best_scored() -> None:
    train = Split(*make_images([8, 2], seed=0))
    pool = pool_with_realness()
    real = build("gan_real", 1, train)
    best = build("gan", 1, train)
    # class 1 gets 2 synthetic images: by realness the last two drawn, by score the first two
    np.testing.assert_array_equal(real.images[10:], pool.images[[19, 18]])
    np.testing.assert_array_equal(best.images[10:], pool.images[[10, 11]])


def test_gan_downweight_weights_only_the_synthetic_rows() -> None:
    train = Split(*make_images([8, 2], seed=0))
    data = build("gan_downweight", "balance", train, synthetic_weight=0.25)
    assert len(data.labels) == 16
    np.testing.assert_array_equal(data.sample_weights, np.r_[np.ones(10), np.full(6, 0.25)])
    assert build("gan", "balance", train).sample_weights is None


def test_a_near_zero_weight_makes_the_classifier_ignore_those_images() -> None:
    """Real images of two classes plus three 'synthetic' copies of each with the label swapped:
    at weight 1 the swapped labels outvote the real ones; at weight 0.01 the real labels win."""
    x, y = make_images([24, 24], seed=0)
    images, labels = np.concatenate([x, x, x, x]), np.concatenate([y, 1 - y, 1 - y, 1 - y])
    cfg = EvaluateConfig(steps=80, batch_size=16, lr=0.01, width=8, augment=())
    test_x, test_y = make_images([10, 10], seed=5)

    def accuracy(w: float) -> float:
        sw = np.r_[np.ones(48), np.full(144, w)]
        model = train_classifier(images, labels, cfg, n_classes=2, seed=0, device=CPU,
                                 sample_weights=sw)
        return float((predict_proba(model, test_x, device=CPU).argmax(1) == test_y).mean())

    assert accuracy(0.01) >= 0.9
    assert accuracy(1.0) <= 0.1


def test_the_pool_keeps_its_realness_through_a_save(tmp_path) -> None:
    pool = pool_with_realness()
    pool.save(tmp_path / "pool.npz")
    back = load_pool(tmp_path / "pool.npz")
    np.testing.assert_array_equal(back.realness, pool.realness)
    assert back.take({0: 3}, by="realness").tolist() == [9, 8, 7]
    assert back.take({0: 3}).tolist() == [0, 1, 2]
    assert back.take({0: 3}, by="draw").tolist() == [0, 1, 2]


@pytest.mark.parametrize("section, key, value, words", [
    ("evaluate", "synthetic_weight", 0, "evaluate.synthetic_weight"),
    ("evaluate", "synthetic_weight", 1.5, "evaluate.synthetic_weight"),
    ("generate", "score", "best", "generate.score"),
])
def test_bad_settings_are_named(section, key, value, words) -> None:
    with pytest.raises(PipelineError, match=words):
        parse_config({section: {key: value}})


def test_gan_mix_needs_a_numeric_share() -> None:
    with pytest.raises(PipelineError, match="gan_mix"):
        parse_config({"evaluate": {"variants": ["real", "gan_mix"],
                                   "synthetic_ratios": ["balance"]}})
    cfg = parse_config({"evaluate": {"variants": ["real", "gan_mix"],
                                     "synthetic_ratios": [0.5, "balance"]}})
    from pipeline.evaluate import expand_variants
    assert [v.name for v in expand_variants(cfg.evaluate)] == ["real", "gan_mix@0.5"]


# --- the report's guard ---------------------------------------------------------------------------

def generate_doc(auc: float | None) -> dict:
    test = ({"measured": True, "auc": auc, "auc_ci95": [auc - 0.02, auc + 0.01]} if auc is not None
            else {"measured": False, "reason": "too few images to measure (real_held 2)"})
    return {"shortcut": {"selected": {"1": {"pixels": test, "features": test}}}}


def runs(gan_recall: float) -> dict:
    common = {"balanced_accuracy": 0.8, "minority_class": 1}
    return {"real": {**common, "synthetic": False, "minority_recall": 0.6},
            "gan@balance": {**common, "synthetic": True, "variant": "gan",
                            "minority_recall": gan_recall}}


NAMES = ["normal", "pneumonia"]


def test_the_guard_names_a_shortcut_when_synthetic_images_cost_minority_recall() -> None:
    text = shortcut_guard(runs(0.5), generate_doc(0.99), NAMES)
    assert text.startswith("gan@balance lowered the recall of the minority class pneumonia")
    assert "Likely cause: a shortcut" in text and "ROC AUC 0.990" in text
    assert "gan_mix" in text


def test_the_guard_points_elsewhere_when_the_test_cannot_tell_them_apart() -> None:
    text = shortcut_guard(runs(0.5), generate_doc(0.55), NAMES)
    assert "does not point to a shortcut" in text and "shortcut." not in text.split("(")[0]


def test_the_guard_says_when_it_could_not_measure() -> None:
    text = shortcut_guard(runs(0.5), generate_doc(None), NAMES)
    assert "cannot be told" in text and "real_held 2" in text


def test_no_guard_when_no_synthetic_variant_is_below_real() -> None:
    assert shortcut_guard(runs(0.65), generate_doc(0.99), NAMES) == ""


def test_the_plain_words_per_class() -> None:
    assert "a classifier can learn to spot your synthetic pneumonia images" in class_sentence(
        generate_doc(0.99), 1, NAMES)
    assert "finds it hard" in class_sentence(generate_doc(0.52), 1, NAMES)
    assert class_sentence(generate_doc(None), 1, NAMES).startswith("Class 'pneumonia': cannot tell")
