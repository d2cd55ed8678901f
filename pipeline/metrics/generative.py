"""Generative quality on feature arrays: domain FID/KID, PRDC, per-class scores, memorization audit.

Every function takes features (N, D) that some extractor computed elsewhere (in this project a small
CNN trained on the real training split); nothing here loads weights or downloads anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

# Rows of the (rows, N) distance block that PRDC holds at once: 1024 x 20k float64 is ~160 MB.
_PRDC_CHUNK = 1024

_METRIC_NAMES = ("fid_domain", "kid_domain", "precision", "recall", "density", "coverage")


def _features(name: str, x: np.ndarray, *, min_rows: int = 2) -> np.ndarray:
    """`x` as a finite float64 (N, D) array with at least `min_rows` rows, or a ValueError."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D feature array (N, D), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has no feature columns (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _pair(
    names: tuple[str, str], a: np.ndarray, b: np.ndarray, *, min_rows: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    a = _features(names[0], a, min_rows=min_rows)
    b = _features(names[1], b, min_rows=min_rows)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same feature dimension, "
                         f"got {a.shape[1]} and {b.shape[1]}")
    return a, b


def _mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    xc = x - mu  # (N, D)
    return mu, xc.T @ xc / (x.shape[0] - 1)  # unbiased (ddof=1), (D, D) even for D=1


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix; round-off negative eigenvalues count as 0."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D).

    ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2}) (Dowson & Landau 1982), the FID of Heusel
    et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", here on in-domain features. Covariances use ddof=1. Tr((S_r S_f)^{1/2}) is taken
    as Tr((S_r^{1/2} S_f S_r^{1/2})^{1/2}): the same eigenvalues, but a symmetric PSD matrix, so
    `eigh` handles it in float64 without scipy's `sqrtm` and its complex round-off. Each set needs
    >= 2 rows; the result is clipped at 0.
    """
    real, fake = _pair(("real", "fake"), real, fake)
    mu_r, cov_r = _mean_cov(real)
    mu_f, cov_f = _mean_cov(fake)
    root_r = _psd_sqrt(cov_r)
    middle = root_r @ cov_f @ root_r  # (D, D), symmetric PSD up to round-off
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu_r - mu_f
    fid = diff @ diff + np.trace(cov_r) + np.trace(cov_f) - 2.0 * tr_covmean
    return float(max(fid, 0.0))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between (m, D) and (n, D) under k(a, b) = (a.b / D + 1)^3."""
    d = x.shape[1]
    k_xx = (x @ x.T / d + 1.0) ** 3  # (m, m)
    k_yy = (y @ y.T / d + 1.0) ** 3  # (n, n)
    k_xy = (x @ y.T / d + 1.0) ** 3  # (m, n)
    m, n = len(x), len(y)
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """Kernel distance (KID) of Bińkowski et al. 2018, "Demystifying MMD GANs".

    The unbiased MMD^2 under the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over
    `subsets` random subsets (drawn without replacement) of min(subset_size, N, M) rows from each
    set. Deterministic for a given `seed`. Unbiased, so it can come out slightly negative when the
    two sets share a distribution. Each set needs >= 2 rows.
    """
    real, fake = _pair(("real", "fake"), real, fake)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2 (unbiased MMD needs 2 rows), got {subset_size}")
    m = min(subset_size, len(real), len(fake))
    rng = np.random.default_rng(seed)
    scores = [
        _mmd2_unbiased(real[rng.choice(len(real), m, replace=False)],
                       fake[rng.choice(len(fake), m, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(scores))


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x (N, D) to its k-th nearest other row of x: (N,)."""
    radii = []
    for start in range(0, len(x), _PRDC_CHUNK):
        dist = torch.cdist(x[start:start + _PRDC_CHUNK], x)  # (chunk, N); self at ~0
        radii.append(torch.kthvalue(dist, k + 1, dim=1).values)  # k+1: skip the point itself
    return torch.cat(radii)


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of fake (M, D) against real (N, D) features.

    Each point gets a ball reaching its k-th nearest neighbour in its own set (the point itself
    excluded). precision = share of fakes inside at least one real ball, recall = share of reals
    inside at least one fake ball (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric
    for Assessing Generative Models"); density = sum over fakes of the number of real balls holding
    them, / (k M); coverage = share of real balls holding at least one fake (Naeem et al. 2020,
    "Reliable Fidelity and Diversity Metrics for Generative Models"). "Inside" is a strict
    d < radius as in Naeem et al.'s reference code, so identical sets score density 1.

    k is clamped per set to min(k, n - 1) (at least 1) so small sets, such as rare classes, still
    get a score; each set needs >= 2 rows. Distances are float64 and computed in row blocks, so
    20k x 20k sets never hold the full distance matrix.
    """
    real, fake = _pair(("real", "fake"), real, fake)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k_real, k_fake = min(k, len(real) - 1), min(k, len(fake) - 1)
    r, f = torch.from_numpy(real), torch.from_numpy(fake)
    r_radii, f_radii = _knn_radii(r, k_real), _knn_radii(f, k_fake)  # (N,), (M,)
    in_real_balls = torch.zeros(len(f), dtype=torch.int64)  # per fake: real balls holding it
    covered = torch.zeros(len(r), dtype=torch.bool)  # per real: its ball holds a fake
    recalled = torch.zeros(len(r), dtype=torch.bool)  # per real: inside some fake ball
    # Blocks of real rows, as in _knn_radii: cdist's round-off is not symmetric, and the same
    # orientation keeps a fake that equals a real's k-th neighbour exactly on the ball's edge.
    for start in range(0, len(r), _PRDC_CHUNK):
        stop = start + _PRDC_CHUNK
        dist = torch.cdist(r[start:stop], f)  # (chunk, M)
        inside_real = dist < r_radii[start:stop, None]
        in_real_balls += inside_real.sum(dim=0)
        covered[start:stop] = inside_real.any(dim=1)
        recalled[start:stop] = (dist < f_radii[None, :]).any(dim=1)
    return {
        "precision": float((in_real_balls > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(in_real_balls.sum()) / (k_real * len(f)),
        "coverage": float(covered.double().mean()),
    }


def realism_score(fake: np.ndarray, real: np.ndarray, *, k: int = 5) -> np.ndarray:
    """Per-fake realism (M,): max over real rows j of radius_k(j) / ||fake - real_j||.

    Kynkäänniemi et al. 2019 (section 5): >= 1 means the fake lies inside the k-NN ball of some
    real row (the precision manifold), and larger means deeper inside. As in the paper, the half
    of the real rows with the largest balls is dropped first, so isolated outliers, whose huge
    balls would call almost anything realistic, do not count. k is clamped to len(real) - 1.
    """
    fake, real = _pair(("fake", "real"), fake, real, min_rows=1)
    if len(real) < 2:
        raise ValueError(f"real needs at least 2 rows (samples), got {len(real)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    r = torch.from_numpy(real)
    radii = _knn_radii(r, min(k, len(real) - 1))  # (N,)
    keep = radii <= radii.median()
    r, radii = r[keep], radii[keep]
    f = torch.from_numpy(fake)
    scores = []
    for start in range(0, len(f), _PRDC_CHUNK):
        dist = torch.cdist(f[start:start + _PRDC_CHUNK], r)  # (chunk, N')
        scores.append((radii[None, :] / dist.clamp_min(1e-12)).max(dim=1).values)
    return torch.cat(scores).numpy()


def _all_metrics(real: np.ndarray, fake: np.ndarray, *, k: int, seed: int) -> dict[str, float]:
    return {
        "fid_domain": frechet_distance(real, fake),
        "kid_domain": kernel_inception_distance(real, fake, seed=seed),
        **prdc(real, fake, k=k),
    }


def _labels(name: str, labels: np.ndarray, n_rows: int, n_classes: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != (n_rows,):
        raise ValueError(f"{name} must have shape ({n_rows},) to match the features, "
                         f"got {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes - 1}] (n_classes={n_classes}), "
                         f"got values from {lab.min()} to {lab.max()}")
    return lab


def generative_metrics(
    real: np.ndarray, fake: np.ndarray, real_labels: np.ndarray, fake_labels: np.ndarray, *,
    n_classes: int, k: int = 5, seed: int = 0,
) -> dict[str, float]:
    """fid_domain, kid_domain, precision, recall, density, coverage: pooled and per class.

    Pooled scores use all rows of `real` and `fake`; per-class scores are keyed like
    `fid_domain/class_0` and compare only the rows with that label. A class with fewer than 2 rows
    on either side has no per-class keys at all (no score is better than a meaningless one).
    """
    real, fake = _pair(("real", "fake"), real, fake)
    real_labels = _labels("real_labels", real_labels, len(real), n_classes)
    fake_labels = _labels("fake_labels", fake_labels, len(fake), n_classes)
    out = _all_metrics(real, fake, k=k, seed=seed)
    for c in range(n_classes):
        real_c, fake_c = real[real_labels == c], fake[fake_labels == c]
        if len(real_c) < 2 or len(fake_c) < 2:
            continue
        scores = _all_metrics(real_c, fake_c, k=k, seed=seed)
        out.update({f"{name}/class_{c}": scores[name] for name in _METRIC_NAMES})
    return out


def nearest_distances(
    query: np.ndarray, reference: np.ndarray, *, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance (Q,) from each query row to its nearest reference row, and its index (Q,).

    The nearest row is found with block-wise `torch.cdist` in float64; its distance is then
    recomputed directly from the difference, so an exact copy reports exactly 0.
    """
    query, reference = _pair(("query", "reference"), query, reference, min_rows=1)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    q, ref = torch.from_numpy(query), torch.from_numpy(reference)
    idx = torch.cat([torch.cdist(q[s:s + chunk], ref).argmin(dim=1)
                     for s in range(0, len(q), chunk)]).numpy()  # (Q,)
    dist = np.sqrt(((query - reference[idx]) ** 2).sum(axis=1))
    return dist, idx.astype(np.int64)


# A row closer to a training row than this fraction of the training set's typical spacing (the
# median distance from a training row to its nearest *other* training row) is a near copy: far
# below where genuinely new images land (their 1st-percentile distance was 0.55-0.87 of the spacing
# on 8-D and 64-D Gaussians and on the digits' pixels), far above float noise.
NEAR_COPY_FRACTION = 0.1
_SPACING_ROWS = 1000  # training rows whose nearest-other distance estimates the spacing
_SPACING_CHUNK = 64  # rows of the (rows, N) distance block held at once


@dataclass(frozen=True, eq=False)
class MemorizationAudit:
    """Result of `memorization_audit`; arrays are per synthetic row unless named test_."""

    threshold: float  # flag rows closer than this (see threshold_source)
    distances: np.ndarray  # (S,) distance of each synthetic row to its nearest training row
    nearest: np.ndarray  # (S,) index into train of that row
    memorized: np.ndarray  # (S,) bool: `flag(distances)`
    memorization_rate: float  # memorized.mean()
    test_distances: np.ndarray  # (T,) distance of each real test row to its nearest training row
    near_copy_distance: float = 0.0  # NEAR_COPY_FRACTION x the training set's typical spacing
    calibration_excluded: int = 0  # test rows that are (near) copies of training rows: not used
    threshold_source: str = "validation"  # or "near-copy fallback" (see `warning`)
    warning: str | None = None  # why the fallback was used; None when calibrated

    def flag(self, distances: np.ndarray) -> np.ndarray:
        """Memorized: closer than the threshold, and always an exact or near copy, whatever the
        calibration said."""
        return (distances < self.threshold) | (distances <= self.near_copy_distance)

    def report(self) -> dict[str, float | int | str]:
        """The audit's calibration for metrics/generate.json (`memorization_warning` only when
        the fallback was used)."""
        out: dict[str, float | int | str] = {
            "memorization_threshold_source": self.threshold_source,
            "memorization_near_copy_distance": self.near_copy_distance,
            "memorization_calibration_excluded": self.calibration_excluded}
        if self.warning:
            out["memorization_warning"] = self.warning
        return out


def typical_spacing(train: np.ndarray) -> float:
    """Median distance from a training row to its nearest *other*, non-identical training row
    (estimated on up to _SPACING_ROWS evenly spaced rows); 0 when all rows are identical."""
    train = _features("train", train, min_rows=1)
    idx = np.unique(np.linspace(0, len(train) - 1, min(len(train), _SPACING_ROWS)).astype(int))
    ref = torch.from_numpy(train)
    nearest = []
    for s in range(0, len(idx), _SPACING_CHUNK):
        # exact mode: an identical row must come out at exactly 0 to be skipped
        block = torch.cdist(ref[idx[s:s + _SPACING_CHUNK]], ref,
                            compute_mode="donot_use_mm_for_euclid_dist")  # (rows, N)
        nearest.append(block.masked_fill(block <= 0, float("inf")).min(dim=1).values)
    d = torch.cat(nearest).numpy()
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) else 0.0


def memorization_audit(
    synthetic: np.ndarray, train: np.ndarray, test: np.ndarray, *, percentile: float = 1.0
) -> MemorizationAudit:
    """Flag synthetic rows that sit closer to a training row than real unseen data does.

    A distance-to-closest-record check (cf. Meehan et al. 2020, "A Non-Parametric Test to Detect
    Data-Copying in Generative Models"): real test rows calibrate how close a genuinely new sample
    gets to the training set, and a synthetic row closer to a training row than all but
    `percentile` % of test rows is flagged as memorized. A generator that samples the real
    distribution without copying is thus flagged at a rate of about percentile / 100.

    The audit cannot switch itself off: test rows that are exact or near copies of training rows
    (closer than `near_copy_distance`, NEAR_COPY_FRACTION of the training set's typical spacing)
    do not calibrate the threshold, since a few duplicates across the splits would otherwise put
    the percentile at 0 and flag nothing; if no test row is left, or the threshold is not above
    the near-copy distance, the near-copy distance is used and `warning` says so. Exact and near
    copies of training rows are always flagged.
    """
    synthetic = _features("synthetic", synthetic, min_rows=1)
    train = _features("train", train, min_rows=1)
    test = _features("test", test, min_rows=1)
    if not synthetic.shape[1] == train.shape[1] == test.shape[1]:
        raise ValueError("synthetic, train and test must have the same feature dimension, got "
                         f"{synthetic.shape[1]}, {train.shape[1]} and {test.shape[1]}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    d_syn, nearest = nearest_distances(synthetic, train)
    d_test, _ = nearest_distances(test, train)
    near = NEAR_COPY_FRACTION * typical_spacing(train)
    calibration = d_test[d_test > near]
    threshold = float(np.percentile(calibration, percentile)) if len(calibration) else near
    source, warning = "validation", None
    if not threshold > near:
        warning = (f"memorization audit: {len(d_test) - len(calibration)} of {len(d_test)} "
                   f"validation images are copies of training images, so they cannot calibrate "
                   f"the threshold; it falls back to the near-copy distance ({near:.4g}), which "
                   "flags exact and near copies of training images only. Fix the splits "
                   "(metrics/prepare.json lists cross-split duplicates; prepare.drop_duplicates: "
                   "true removes them from train)")
        threshold, source = near, "near-copy fallback"
    audit = MemorizationAudit(
        threshold=threshold, distances=d_syn, nearest=nearest, memorized=np.zeros(0, bool),
        memorization_rate=0.0, test_distances=d_test, near_copy_distance=near,
        calibration_excluded=int(len(d_test) - len(calibration)), threshold_source=source,
        warning=warning)
    memorized = audit.flag(d_syn)
    return dataclasses.replace(audit, memorized=memorized,
                               memorization_rate=float(memorized.mean()))
