"""pipeline/metrics/generative: FID, KID, PRDC and the memorization audit on worked answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from pipeline.metrics import generative
from pipeline.metrics.generative import (
    frechet_distance,
    generative_metrics,
    kernel_inception_distance,
    memorization_audit,
    nearest_distances,
    prdc,
    realism_score,
)

# Four points whose columns are the non-constant columns of a 4x4 Hadamard matrix: zero mean,
# orthogonal, so the sample covariance (ddof=1) is exactly 4/3 * I.
HADAMARD_POINTS = np.array([[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], dtype=float)


def gaussian(n: int, dim: int, *, seed: int, mean: float | np.ndarray = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + mean


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook FID with scipy's general matrix square root, as a reference."""
    diff = a.mean(axis=0) - b.mean(axis=0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(diff @ diff + np.trace(s_a + s_b - 2 * covmean))


def naive_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic kernel, written as explicit sums over pairs."""
    d = x.shape[1]
    kern = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(kern(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(kern(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(kern(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def naive_prdc(
    real: np.ndarray, fake: np.ndarray, k: int, k_fake: int | None = None
) -> dict[str, float]:
    """PRDC from full distance matrices, following Naeem et al.'s reference code."""
    def radii(x: np.ndarray, k: int) -> np.ndarray:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    r_rad, f_rad = radii(real, k), radii(fake, k if k_fake is None else k_fake)
    d = np.linalg.norm(real[:, None] - fake[None], axis=-1)  # (N, M)
    return {
        "precision": float((d < r_rad[:, None]).any(axis=0).mean()),
        "recall": float((d < f_rad[None, :]).any(axis=1).mean()),
        "density": float((d < r_rad[:, None]).sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < r_rad).mean()),
    }


# --- FID -------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero() -> None:
    x = gaussian(300, 16, seed=0) * 10.0  # trace of the covariance ~ 1600
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6 * 1600)
    tiny = gaussian(5, 20, seed=1)  # fewer rows than dims: singular covariance
    assert frechet_distance(tiny, tiny) == pytest.approx(0.0, abs=1e-8)


def test_fid_matches_the_closed_form_on_exact_diagonal_covariances() -> None:
    # cov = 4/3 * diag(s^2) exactly, so FID = ||mu_r - mu_f||^2 + 4/3 * sum (s_r - s_f)^2
    s_r, s_f = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.0])
    mu_r, mu_f = np.array([0.0, 1.0, -1.0]), np.array([2.0, 1.0, 1.0])
    real, fake = mu_r + HADAMARD_POINTS * s_r, mu_f + HADAMARD_POINTS * s_f
    expected = 4.0 + 0.0 + 4.0 + 4 / 3 * (4.0 + 0.0 + 0.25)
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-12)
    # a rotation of the feature space changes nothing
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    assert frechet_distance(real @ q, fake @ q) == pytest.approx(expected, rel=1e-10)


def test_fid_matches_scipy_sqrtm_on_random_data() -> None:
    rng = np.random.default_rng(3)
    real = rng.normal(size=(60, 8)) @ rng.normal(size=(8, 8))  # correlated features
    fake = rng.normal(size=(45, 8)) @ rng.normal(size=(8, 8)) + 0.5
    assert frechet_distance(real, fake) == pytest.approx(scipy_fid(real, fake), rel=1e-8)


def test_fid_of_two_unit_gaussians_is_the_squared_mean_shift() -> None:
    shift = np.array([3.0, 0.0, -1.0, 0.0])  # ||shift||^2 = 10
    real = gaussian(20_000, 4, seed=0)
    fake = gaussian(20_000, 4, seed=1, mean=shift)
    assert frechet_distance(real, fake) == pytest.approx(10.0, rel=0.03)


def test_fid_is_symmetric_and_large_for_far_apart_sets() -> None:
    real = gaussian(100, 6, seed=0)
    fake = gaussian(80, 6, seed=1, mean=50.0) * 2.0
    assert frechet_distance(real, fake) == pytest.approx(frechet_distance(fake, real), rel=1e-10)
    assert frechet_distance(real, fake) > 6 * 50.0**2  # the mean shift alone gives 15000


# --- KID -------------------------------------------------------------------------------------


def test_kid_hand_worked_one_dimensional_case() -> None:
    # k(x, y) = (x y + 1)^3; real {0, 1}: k(0,1) = 1; fake {1, 2}: k(1,2) = 27;
    # cross pairs k(0,1), k(0,2), k(1,1), k(1,2) = 1, 1, 8, 27 -> mean 9.25; 1 + 27 - 2 * 9.25
    real, fake = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    for seed in (0, 1):
        assert kernel_inception_distance(real, fake, subsets=3, seed=seed) == pytest.approx(9.5)


def test_kid_with_full_subsets_is_the_plain_unbiased_mmd() -> None:
    real, fake = gaussian(15, 3, seed=0), gaussian(12, 3, seed=1, mean=0.3)
    # subset_size >= both sizes: each subset is all of fake and 12 of the 15 real rows
    kid = kernel_inception_distance(real[:12], fake, subsets=2, subset_size=100)
    assert kid == pytest.approx(naive_mmd2(real[:12], fake), rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_positive_when_shifted() -> None:
    real, same = gaussian(400, 8, seed=0), gaussian(400, 8, seed=1)
    shifted = gaussian(400, 8, seed=2, mean=1.0)
    near = kernel_inception_distance(real, same, subsets=20, subset_size=200)
    identical = kernel_inception_distance(real, real, subsets=20, subset_size=200)
    far = kernel_inception_distance(real, shifted, subsets=20, subset_size=200)
    assert far > 1.0
    assert abs(near) < 0.02 * far and abs(identical) < 0.02 * far


def test_kid_is_deterministic_given_the_seed() -> None:
    real, fake = gaussian(300, 5, seed=0), gaussian(300, 5, seed=1, mean=0.2)
    kw = {"subsets": 5, "subset_size": 50}
    a = kernel_inception_distance(real, fake, seed=7, **kw)
    assert kernel_inception_distance(real, fake, seed=7, **kw) == a
    assert kernel_inception_distance(real, fake, seed=8, **kw) != a  # other subsets


# --- PRDC ------------------------------------------------------------------------------------


def test_prdc_hand_worked_points_on_a_line() -> None:
    # k=1: every real ball has radius 1; fake 0.5 lies in the balls of 0 and 1, fake 10 in none.
    # Each fake's nearest other fake is 9.5 away, so both fake balls reach all four reals.
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0]])
    m = prdc(real, fake, k=1)
    assert m == pytest.approx({"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 0.5})


def test_prdc_of_identical_sets_is_perfect() -> None:
    x = gaussian(200, 10, seed=0)
    m = prdc(x, x, k=5)
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    assert m["density"] == pytest.approx(1.0, abs=0.01)


def test_prdc_of_far_apart_sets_is_zero() -> None:
    m = prdc(gaussian(100, 4, seed=0), gaussian(120, 4, seed=1, mean=100.0), k=5)
    assert m == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_in_small_chunks_matches_full_distance_matrices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(generative, "_PRDC_CHUNK", 7)  # many blocks, a ragged last one
    real, fake = gaussian(40, 5, seed=0), gaussian(33, 5, seed=1, mean=0.4) * 1.3
    assert prdc(real, fake, k=3) == pytest.approx(naive_prdc(real, fake, 3))


def test_prdc_clamps_k_to_the_set_size() -> None:
    real, fake = gaussian(3, 2, seed=0), gaussian(6, 2, seed=1)
    # real has 3 rows, so its k becomes 2 (also in density's 1 / k); fake has 6 rows, its k = 5
    assert prdc(real, fake, k=10) == pytest.approx(naive_prdc(real, fake, 2, k_fake=5))
    with pytest.raises(ValueError, match="k must be >= 1"):
        prdc(real, fake, k=0)


# --- per class -------------------------------------------------------------------------------


def test_generative_metrics_per_class_keys_and_values() -> None:
    # class 0, 1: enough on both sides; class 2: a single fake; class 3: no real rows
    real_labels = np.array([0] * 30 + [1] * 20 + [2] * 5)
    fake_labels = np.array([0] * 25 + [1] * 3 + [2] * 1 + [3] * 4)
    real = gaussian(len(real_labels), 6, seed=0) + real_labels[:, None]
    fake = gaussian(len(fake_labels), 6, seed=1) + fake_labels[:, None]
    out = generative_metrics(real, fake, real_labels, fake_labels, n_classes=4, k=3, seed=2)
    names = ["fid_domain", "kid_domain", "precision", "recall", "density", "coverage"]
    assert set(out) == {*names, *(f"{n}/class_{c}" for n in names for c in (0, 1))}
    assert all(isinstance(v, float) for v in out.values())
    assert out["fid_domain"] == frechet_distance(real, fake)  # pooled over all classes
    r1, f1 = real[real_labels == 1], fake[fake_labels == 1]
    assert out["fid_domain/class_1"] == frechet_distance(r1, f1)
    assert out["kid_domain/class_1"] == kernel_inception_distance(r1, f1, seed=2)
    assert out["coverage/class_1"] == prdc(r1, f1, k=3)["coverage"]  # k clamped to 2 for fakes


def test_generative_metrics_rejects_labels_that_do_not_fit() -> None:
    x = gaussian(6, 3, seed=0)
    labels = np.array([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="real_labels must have shape"):
        generative_metrics(x, x, labels[:5], labels, n_classes=2)
    with pytest.raises(ValueError, match=r"fake_labels must lie in \[0, 1\]"):
        generative_metrics(x, x, labels, labels + 1, n_classes=2)


# --- memorization ----------------------------------------------------------------------------


def test_nearest_distances_in_chunks_find_the_closest_row() -> None:
    reference = gaussian(50, 4, seed=0)
    query = gaussian(23, 4, seed=1)
    dist, idx = nearest_distances(query, reference, chunk=5)
    full = np.linalg.norm(query[:, None] - reference[None], axis=-1)  # (23, 50)
    np.testing.assert_array_equal(idx, full.argmin(axis=1))
    np.testing.assert_allclose(dist, full.min(axis=1), rtol=1e-12)


def test_memorization_audit_flags_exactly_the_planted_copies() -> None:
    train, test = gaussian(200, 8, seed=0), gaussian(100, 8, seed=1)
    copied = np.array([3, 17, 42, 150, 199])
    # the test rows themselves never lie below the smallest test distance (percentile 0)
    synthetic = np.concatenate([test, train[copied]])
    audit = memorization_audit(synthetic, train, test, percentile=0.0)
    assert audit.threshold == audit.test_distances.min() > 0
    np.testing.assert_array_equal(np.flatnonzero(audit.memorized), np.arange(100, 105))
    np.testing.assert_array_equal(audit.nearest[100:], copied)
    np.testing.assert_array_equal(audit.distances[100:], 0.0)
    assert audit.memorization_rate == 5 / 105


def test_memorization_audit_among_fresh_samples() -> None:
    train, test = gaussian(300, 8, seed=0), gaussian(300, 8, seed=1)
    fresh = gaussian(200, 8, seed=2)
    copied = np.arange(0, 300, 15)  # 20 rows, copied with a little noise
    noisy = train[copied] + 1e-4 * gaussian(len(copied), 8, seed=3)
    synthetic = np.concatenate([noisy, fresh])
    audit = memorization_audit(synthetic, train, test, percentile=1.0)
    assert audit.threshold == pytest.approx(np.percentile(audit.test_distances, 1.0))
    assert audit.memorized[:20].all()
    np.testing.assert_array_equal(audit.nearest[:20], copied)
    # fresh samples from the real distribution are flagged at about the percentile's rate (1%)
    assert audit.memorized[20:].mean() <= 0.05
    assert audit.memorization_rate == pytest.approx(audit.memorized.mean())
    assert audit.memorization_rate >= 20 / 220


def test_copies_across_the_splits_do_not_switch_the_audit_off() -> None:
    """Planted fault: the threshold calibrated on every validation row. 5 of 100 validation rows
    are exact and 3 near copies of training rows (8% > the 1st percentile), so the percentile is
    ~0 and the copied training row in the pool was flagged by nothing (rate 0)."""
    train, fresh_val = gaussian(300, 8, seed=0), gaussian(92, 8, seed=1)
    near = train[[7, 8, 9]] + 1e-6 * gaussian(3, 8, seed=2)
    val = np.concatenate([fresh_val, train[[1, 2, 3, 4, 5]], near])
    pool = np.concatenate([gaussian(100, 8, seed=3), train[[42]], train[[43]] + 1e-6])
    audit = memorization_audit(pool, train, val, percentile=1.0)
    assert audit.calibration_excluded == 8 and audit.threshold_source == "validation"
    assert audit.warning is None and "memorization_warning" not in audit.report()
    # calibrated on the 92 genuinely new rows only
    assert audit.threshold == pytest.approx(np.percentile(audit.test_distances[:92], 1.0))
    assert audit.threshold > audit.near_copy_distance > 0
    assert audit.memorized[100:].all()  # the exact and the near copy
    assert audit.memorized[:100].mean() <= 0.05  # fresh samples: about the percentile's rate


def test_when_every_validation_row_is_a_copy_the_fallback_still_flags_copies_and_says_so() -> None:
    """Planted faults: no fallback (threshold 0 flags nothing), or a fallback that flags only
    exact copies (the near copy would ship), or one without a warning."""
    train = gaussian(300, 8, seed=0)
    val = train[:50].copy()  # e.g. the validation split is the training split
    pool = np.concatenate([gaussian(100, 8, seed=3), train[[42]], train[[43]] + 1e-6])
    audit = memorization_audit(pool, train, val, percentile=1.0)
    assert audit.threshold_source == "near-copy fallback" and audit.calibration_excluded == 50
    assert audit.threshold == audit.near_copy_distance == pytest.approx(
        generative.NEAR_COPY_FRACTION * generative.typical_spacing(train))
    assert "50 of 50 validation images are copies" in audit.warning
    assert audit.report()["memorization_warning"] == audit.warning
    assert audit.memorized[100:].all()  # exact and near copy
    assert not audit.memorized[:100].any()  # fresh rows are far above a tenth of the spacing
    np.testing.assert_array_equal(audit.flag(audit.distances), audit.memorized)


def test_typical_spacing_skips_identical_rows_and_is_zero_without_any_other() -> None:
    x = np.array([[0.0], [0.0], [3.0], [7.0]])  # nearest others: 3, 3, 3, 4 (never the twin's 0)
    assert generative.typical_spacing(x) == 3.0
    assert generative.typical_spacing(np.zeros((5, 2))) == 0.0
    # with no spacing, exact copies are still flagged
    audit = memorization_audit(np.zeros((2, 2)) + [[0.0], [1.0]], np.zeros((5, 2)),
                               np.zeros((3, 2)))
    assert audit.memorized.tolist() == [True, False] and audit.warning


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [frechet_distance, kernel_inception_distance, prdc])
def test_pairwise_metrics_reject_bad_inputs(fn) -> None:
    ok = gaussian(10, 3, seed=0)
    with pytest.raises(ValueError, match="fake needs at least 2 rows"):
        fn(ok, ok[:1])
    with pytest.raises(ValueError, match="same feature dimension, got 3 and 4"):
        fn(ok, gaussian(10, 4, seed=1))
    with pytest.raises(ValueError, match=r"real must be a 2-D feature array"):
        fn(ok[0], ok)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(ok, np.where(ok > 1, np.nan, ok))


def test_memorization_audit_rejects_bad_inputs() -> None:
    x = gaussian(10, 3, seed=0)
    with pytest.raises(ValueError, match="same feature dimension"):
        memorization_audit(x, x, gaussian(10, 2, seed=1))
    with pytest.raises(ValueError, match=r"percentile must be in \[0, 100\]"):
        memorization_audit(x, x, x, percentile=101)


# --- realism score --------------------------------------------------------------------------------

def test_realism_score_known_answers() -> None:
    real = np.arange(10, dtype=np.float64).reshape(-1, 1)  # k=1 balls of radius 1 everywhere
    fake = np.array([[4.5], [3.0], [50.0]])
    r = realism_score(fake, real, k=1)
    # 4.5: half a unit from 4 and 5 -> 1 / 0.5; 3.0 sits on a real point (distance clamped, huge);
    # 50: 41 units beyond the last kept real point -> radius 1 / 41
    assert r[0] == pytest.approx(2.0)
    assert r[1] > 1e6
    assert r[2] == pytest.approx(1 / 41, rel=1e-6)
    assert (realism_score(fake, real, k=1) >= 1).tolist() == [True, True, False]


def test_realism_score_ignores_the_half_of_real_points_with_the_largest_balls() -> None:
    real = np.array([[0.0], [1.0], [2.0], [3.0], [100.0]])  # 100 is an outlier: radius 97
    # Without pruning, 60 would be inside the outlier's ball (distance 40 < 97).
    assert realism_score(np.array([[60.0]]), real, k=1)[0] == pytest.approx(1 / 57)


def test_realism_score_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="real needs at least 2 rows"):
        realism_score(np.zeros((3, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="same feature dimension"):
        realism_score(np.zeros((3, 2)), np.zeros((4, 3)))
