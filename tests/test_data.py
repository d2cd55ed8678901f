"""pipeline/data: imbalance fractions, subsampling, stratified splits, transforms and
prepare_dataset on the bundled digits."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import DataConfig, PrepareConfig
from pipeline.data.imbalance import keep_fractions, subsample_indices
from pipeline.data.prepare import prepare_dataset, stratified_split
from pipeline.data.transforms import resize, to_channels
from pipeline.errors import PipelineError

# scikit-learn's digits: images per class 0..9 (1,797 in all)
DIGITS_PER_CLASS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# --- imbalance.keep_fractions ---------------------------------------------------------------

def test_long_tail_is_geometric_from_one_to_min_fraction() -> None:
    f = keep_fractions(10, PrepareConfig(imbalance="long_tail", min_fraction=0.08))
    assert list(f) == list(range(10))
    assert f[0] == 1.0
    assert f[9] == pytest.approx(0.08)
    # the docstring's table: 1.00, 0.76, 0.57, 0.43, 0.33, 0.25, 0.19, 0.14, 0.11, 0.08
    assert [round(v, 2) for v in f.values()] == [
        1.0, 0.76, 0.57, 0.43, 0.33, 0.25, 0.19, 0.14, 0.11, 0.08]
    assert all(a > b for a, b in zip(list(f.values()), list(f.values())[1:]))
    # geometric: the same ratio between neighbours, 0.08 ** (1/9)
    ratios = np.array(list(f.values())[1:]) / np.array(list(f.values())[:-1])
    np.testing.assert_allclose(ratios, 0.08 ** (1 / 9))


def test_long_tail_with_one_class_keeps_everything() -> None:
    assert keep_fractions(1, PrepareConfig(imbalance="long_tail")) == {0: 1.0}


def test_auto_is_long_tail_on_the_digits_demo_only() -> None:
    auto = PrepareConfig(imbalance="auto", min_fraction=0.08)
    assert keep_fractions(3, auto, source="digits") == pytest.approx({0: 1.0, 1: 0.08 ** 0.5,
                                                                      2: 0.08})
    for source in ("medmnist", "folder", "csv"):
        assert keep_fractions(3, auto, source=source) == {0: 1.0, 1: 1.0, 2: 1.0}


def test_digits_demo_report_says_what_the_simulated_imbalance_removed(digits) -> None:
    report = digits.report
    before, after = report["train_counts_before_imbalance"], report["counts"]["train"]
    removed = {c: before[c] - after[c] for c in range(10)}
    assert removed[0] == 0 and removed[9] == before[9] - 10
    assert report["imbalance"] == "long_tail" and report["imbalance_setting"] == "auto"
    assert report["simulated_imbalance"] == {"method": "long_tail", "removed": removed,
                                             "count": sum(removed.values()),
                                             "of": sum(before.values())}
    assert report["native_sizes"] == {"8x8": 1797} and report["resized"] is None
    (note,) = report["data_changes"]  # the digits are natively 8x8: nothing resized
    assert note.startswith(f"Removed {sum(removed.values())} of {sum(before.values())} training "
                           "images to simulate imbalance (prepare.imbalance: auto")
    assert f"{removed[9]} of class '9'" in note and "class '0'" not in note


def test_none_keeps_everything() -> None:
    assert keep_fractions(4, PrepareConfig(imbalance="none")) == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}


def test_fractions_apply_to_listed_classes_only() -> None:
    cfg = PrepareConfig(imbalance="fractions", keep_fractions={1: 0.5, 2: 0.1})
    assert keep_fractions(4, cfg) == {0: 1.0, 1: 0.5, 2: 0.1, 3: 1.0}


def test_fractions_for_a_class_that_does_not_exist_are_an_error() -> None:
    cfg = PrepareConfig(imbalance="fractions", keep_fractions={1: 0.5, 5: 0.1})
    with pytest.raises(PipelineError,
                       match=r"prepare.keep_fractions: class 5 does not exist; classes are 0..2"):
        keep_fractions(3, cfg)
    with pytest.raises(PipelineError, match=r"classes are 0..2 \(0 = a, 1 = b, 2 = c\)$"):
        keep_fractions(3, cfg, class_names=["a", "b", "c"])


# --- imbalance.subsample_indices -------------------------------------------------------------

LABELS = np.repeat([0, 1, 2], [10, 7, 3])


def test_subsample_keeps_round_n_times_f_per_class_and_at_least_one() -> None:
    kept = subsample_indices(LABELS, {0: 1.0, 1: 0.5, 2: 0.1}, seed=0)
    # class 0: 10 * 1.0 = 10; class 1: round(3.5) = 4; class 2: round(0.3) = 0 -> at least 1
    assert np.bincount(LABELS[kept], minlength=3).tolist() == [10, 4, 1]
    assert np.all(np.diff(kept) > 0)  # sorted, no repeats
    assert set(kept) <= set(range(len(LABELS)))


def test_subsample_is_deterministic_by_seed() -> None:
    fractions = {0: 0.5, 1: 0.5, 2: 0.7}
    a = subsample_indices(LABELS, fractions, seed=3)
    b = subsample_indices(LABELS, fractions, seed=3)
    c = subsample_indices(LABELS, fractions, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.bincount(LABELS[c]), np.bincount(LABELS[a]))


def test_subsample_of_a_class_without_images_keeps_none() -> None:
    kept = subsample_indices(LABELS, {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.5}, seed=0)
    np.testing.assert_array_equal(kept, np.arange(len(LABELS)))


# --- prepare.stratified_split ---------------------------------------------------------------

def test_stratified_split_is_a_disjoint_cover_with_every_class_in_every_split() -> None:
    labels = np.repeat([0, 1, 2, 3], [40, 20, 10, 5])
    s = stratified_split(labels, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert sorted(s) == ["test", "train", "val"]
    everything = np.concatenate([s["train"], s["val"], s["test"]])
    assert sorted(everything.tolist()) == list(range(len(labels)))  # disjoint and complete
    # test = ceil(0.15 * 75) = 12; val = ceil(0.15 / 0.85 * 63) = 12; train = 51
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (51, 12, 12)
    for idx in s.values():
        assert set(labels[idx]) == {0, 1, 2, 3}
        assert np.all(np.diff(idx) > 0)
    # each split keeps roughly the class proportions of the whole
    assert np.bincount(labels[s["test"]]).tolist() == pytest.approx([6, 3, 2, 1], abs=1)


def test_stratified_split_is_deterministic_by_seed() -> None:
    labels = np.repeat([0, 1, 2], [30, 20, 10])
    a = stratified_split(labels, val_fraction=0.2, test_fraction=0.2, seed=1)
    b = stratified_split(labels, val_fraction=0.2, test_fraction=0.2, seed=1)
    c = stratified_split(labels, val_fraction=0.2, test_fraction=0.2, seed=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["test"], c["test"])


def test_a_class_with_three_images_lands_in_every_split() -> None:
    labels = np.concatenate([np.repeat(np.arange(9), 40), [9, 9, 9]])
    s = stratified_split(labels, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert [int((labels[s[k]] == 9).sum()) for k in ("train", "val", "test")] == [1, 1, 1]


def test_a_class_with_fewer_than_three_images_is_an_error_naming_it() -> None:
    labels = np.repeat([0, 1, 2, 3], [40, 20, 10, 2])
    with pytest.raises(PipelineError, match=r"class 3 has only 2 .*at least 3"):
        stratified_split(labels, val_fraction=0.15, test_fraction=0.15, seed=0)


def test_a_rare_class_is_named_by_its_name_where_it_has_one() -> None:
    labels = np.repeat([0, 1], [40, 2])
    with pytest.raises(PipelineError, match=r"^class 'malignant' \(label 1\) has only 2 images"):
        stratified_split(labels, val_fraction=0.15, test_fraction=0.15, seed=0,
                         class_names=["benign", "malignant"])


def test_three_images_of_every_class_give_each_split_one_of_each() -> None:
    # the fractions ask for 5 test and 5 val images, but every class must reach every split
    labels = np.repeat(np.arange(10), 3)
    s = stratified_split(labels, val_fraction=0.15, test_fraction=0.15, seed=0)
    for idx in s.values():
        assert sorted(labels[idx].tolist()) == list(range(10))


# --- transforms -------------------------------------------------------------------------------

def test_resize_up_and_down_keeps_uint8_nhwc() -> None:
    x = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    up = resize(x, 28)
    assert up.shape == (5, 28, 28, 1) and up.dtype == np.uint8
    down = resize(up, 8)
    assert down.shape == (5, 8, 8, 1) and down.dtype == np.uint8
    rgb = np.random.default_rng(1).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    assert resize(rgb, 8).shape == (3, 8, 8, 3)
    assert resize(rgb, 64).shape == (3, 64, 64, 3)


def test_resize_to_the_same_size_is_a_no_op() -> None:
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
    assert resize(x, 8) is x


def test_resize_down_averages_blocks() -> None:
    x = np.array([[0, 0, 255, 255],
                  [0, 0, 255, 255],
                  [100, 100, 50, 50],
                  [100, 100, 60, 40]], dtype=np.uint8)[None, :, :, None]
    np.testing.assert_array_equal(resize(x, 2)[0, :, :, 0], [[0, 255], [100, 50]])


def test_resize_keeps_a_constant_image_constant() -> None:
    x = np.full((1, 8, 8, 3), 77, dtype=np.uint8)
    assert np.all(resize(x, 28) == 77)
    assert np.all(resize(x, 4) == 77)


def test_grey_to_rgb_repeats_the_channel() -> None:
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    rgb = to_channels(x, 3)
    assert rgb.shape == (4, 8, 8, 3) and rgb.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], x[..., 0])


def test_rgb_to_grey_is_luma() -> None:
    pixels = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 20, 30]],
                      dtype=np.uint8).reshape(1, 1, 5, 3)
    grey = to_channels(pixels, 1)
    assert grey.shape == (1, 1, 5, 1) and grey.dtype == np.uint8
    # 0.299 R + 0.587 G + 0.114 B, rounded: 76.2, 149.7, 29.1, 255, 18.1
    assert grey.reshape(-1).tolist() == [76, 150, 29, 255, 18]


def test_same_channel_count_is_a_no_op_and_others_are_errors() -> None:
    x = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    assert to_channels(x, 3) is x
    with pytest.raises(ValueError, match="cannot convert 2 channels to 3"):
        to_channels(np.zeros((1, 4, 4, 2), dtype=np.uint8), 3)


# --- prepare_dataset on the bundled digits -----------------------------------------------------

@pytest.fixture(scope="module")
def digits() -> object:
    return prepare_dataset(DataConfig(), PrepareConfig(), seed=0)


def test_digits_default_gives_three_uint8_nhwc_splits(digits) -> None:
    assert sorted(digits.splits) == ["test", "train", "val"]
    for split in digits.splits.values():
        n = len(split.labels)
        assert split.images.shape == (n, 8, 8, 1) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.int64
        assert split.labels.min() == 0 and split.labels.max() == 9
    assert digits.class_names == [str(i) for i in range(10)]
    train = digits.splits["train"].images
    assert train.min() == 0 and train.max() == 255  # 0..16 scaled to the full uint8 range


def test_digits_val_and_test_keep_the_natural_class_balance(digits) -> None:
    # per class, round(0.15 * n_c) images go to val and to test
    expected = sum(int(np.floor(0.15 * n + 0.5)) for n in DIGITS_PER_CLASS)
    assert expected in (269, 270)
    assert digits.report["n_images"]["val"] == expected
    assert digits.report["n_images"]["test"] == expected
    before = digits.report["train_counts_before_imbalance"]
    for split in ("val", "test"):
        counts = np.bincount(digits.splits[split].labels, minlength=10)
        np.testing.assert_allclose(counts, 0.15 * np.array(DIGITS_PER_CLASS), atol=1.5)
    total = [before[c] + digits.report["counts"]["val"][c] + digits.report["counts"]["test"][c]
             for c in range(10)]
    assert total == DIGITS_PER_CLASS


def test_digits_train_is_imbalanced_as_planned(digits) -> None:
    report = digits.report
    before = report["train_counts_before_imbalance"]
    fractions = keep_fractions(10, PrepareConfig(), source="digits")
    expected = {c: max(1, round(before[c] * fractions[c])) for c in range(10)}
    counts = np.bincount(digits.splits["train"].labels, minlength=10)
    assert dict(enumerate(counts.tolist())) == expected == report["counts"]["train"]
    assert counts[0] == before[0]  # class 0 keeps everything
    assert counts[9] == round(before[9] * 0.08)
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert report["imbalance_ratio"] == round(counts.max() / counts.min(), 3)
    assert report["n_images"]["train"] == counts.sum()


def test_imbalance_never_touches_val_and_test(digits) -> None:
    balanced = prepare_dataset(DataConfig(), PrepareConfig(imbalance="none"), seed=0)
    for split in ("val", "test"):
        np.testing.assert_array_equal(balanced.splits[split].labels, digits.splits[split].labels)
        np.testing.assert_array_equal(balanced.splits[split].images, digits.splits[split].images)
    # without imbalance the training split is the whole stratified remainder
    counts = np.bincount(balanced.splits["train"].labels, minlength=10)
    assert dict(enumerate(counts.tolist())) == digits.report["train_counts_before_imbalance"]
    # and the imbalanced training split is a subset of it
    as_rows = {img.tobytes() for img in balanced.splits["train"].images}
    assert all(img.tobytes() in as_rows for img in digits.splits["train"].images)


def test_fractions_imbalance_changes_only_the_listed_class(digits) -> None:
    cfg = PrepareConfig(imbalance="fractions", keep_fractions={9: 0.5})
    ds = prepare_dataset(DataConfig(), cfg, seed=0)
    before = ds.report["train_counts_before_imbalance"]
    counts = np.bincount(ds.splits["train"].labels, minlength=10)
    assert counts[9] == round(before[9] * 0.5)
    assert [counts[c] for c in range(9)] == [before[c] for c in range(9)]


def test_digits_at_28_px_rgb(digits) -> None:
    ds = prepare_dataset(DataConfig(), PrepareConfig(image_size=28, channels=3), seed=0)
    for name, split in ds.splits.items():
        assert split.images.shape == (len(split.labels), 28, 28, 3)
        assert split.images.dtype == np.uint8
        # grey digits repeated into three equal channels
        np.testing.assert_array_equal(split.images[..., 0], split.images[..., 2])
        # the split and the imbalance do not depend on the image size
        np.testing.assert_array_equal(split.labels, digits.splits[name].labels)
    assert ds.report["image_shape"] == [28, 28, 3]
    assert ds.report["resized"] == {"count": 1797, "from": {"8x8": 1797}, "to": "28x28"}
    assert ds.report["data_changes"][0] == ("Resized 1797 images (1797 at 8x8) to 28x28 "
                                           "(prepare.image_size: 28; null keeps the native size).")


def test_prepare_dataset_is_deterministic_by_seed(digits) -> None:
    again = prepare_dataset(DataConfig(), PrepareConfig(), seed=0)
    other = prepare_dataset(DataConfig(), PrepareConfig(), seed=1)
    np.testing.assert_array_equal(again.splits["train"].images, digits.splits["train"].images)
    assert not np.array_equal(other.splits["test"].labels, digits.splits["test"].labels)
