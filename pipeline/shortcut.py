"""Can a classifier tell the synthetic images from real ones? The shortcut test and the realness score.

When only the minority class receives synthetic images, anything that marks an image as synthetic
(a texture, the grey levels, a border) is perfectly correlated with the minority label, and a
downstream classifier can learn "looks synthetic -> minority" instead of the anatomy: real minority
images, which do not look synthetic, are then pushed to the majority. Two tools here:

- `shortcut_test`: per class, a classifier two-sample test (Lopez-Paz & Oquab 2017, "Revisiting
  Classifier Two-Sample Tests"): a small classifier is trained to tell real *training* images of
  the class from half of its synthetic images, and scored on real *validation* images against the
  other half. ROC AUC 0.5: it cannot tell them apart; near 1: it can, and so can a downstream
  classifier. Run twice: on pixels (gradient-boosted trees catch artifacts such as grey levels or a
  marked pixel) and in the in-project extractor's feature space (logistic regression).
- `realness`: cross-fitted probability that a candidate is real, from the same kind of pixel
  classifier, for selection by indistinguishability (`generate.score`). Candidates are split into
  folds; each fold is scored by a model trained on the other folds, so no candidate is scored by a
  model that saw it.

Pure numpy + scikit-learn: the images are uint8 arrays, the features float arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MIN_HELD = 5  # held-out real or synthetic images below which a class's AUC is not measured
MIN_FIT = 5  # real or synthetic images to train on, below which nothing is measured
FOLDS = 3  # cross-fitting folds of `realness`
BOOT = 500  # bootstrap resamples of the held-out images for the AUC's interval
# An AUC at or above this: a classifier tells the class's synthetic images from real ones easily
# enough that a downstream classifier can use the difference (the report's plain-words threshold).
SHORTCUT_AUC = 0.8

Classifier = Callable[[int], Any]  # seed -> an unfitted scikit-learn classifier


def pixel_classifier(seed: int) -> Any:
    # min_samples_leaf 5 (not sklearn's 20): a rare class has a few dozen images, and a tree that
    # cannot split answers a constant, which would read as "indistinguishable"
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
                                          min_samples_leaf=5, early_stopping=False,
                                          class_weight="balanced", random_state=seed)


def feature_classifier(seed: int) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(
        C=0.1, max_iter=2000, class_weight="balanced", random_state=seed))


def flat(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, H*W*C) in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def two_sample_auc(real_fit: np.ndarray, synth: np.ndarray, real_held: np.ndarray, *,
                   classifier: Classifier, seed: int, n_boot: int = BOOT) -> dict[str, Any]:
    """ROC AUC of a classifier trained on `real_fit` (N, D) against half of `synth` (M, D) and
    scored on `real_held` against the other half (synthetic = positive), with a bootstrap 95%
    interval over the held-out rows. `measured: False` with the reason when there are too few."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(synth))
    fit, held = synth[order[: len(synth) // 2]], synth[order[len(synth) // 2:]]
    n = {"n_real_fit": len(real_fit), "n_synthetic_fit": len(fit), "n_real_held": len(real_held),
         "n_synthetic_held": len(held)}
    short = [f"{k[2:]} {v}" for k, v in n.items()
             if v < (MIN_FIT if k.endswith("_fit") else MIN_HELD)]
    if short:
        return {"measured": False, **n,
                "reason": f"too few images to measure ({', '.join(short)}; needs "
                          f"{MIN_FIT} to fit and {MIN_HELD} held out of each)"}
    model = classifier(seed).fit(np.concatenate([real_fit, fit]),
                                 np.r_[np.zeros(len(real_fit)), np.ones(len(fit))])
    p_real = model.predict_proba(real_held)[:, 1]  # (R,) probability of "synthetic"
    p_synth = model.predict_proba(held)[:, 1]  # (S,)
    if np.ptp(np.r_[p_real, p_synth]) == 0:  # learned nothing: no evidence, not "identical"
        return {"measured": False, **n, "reason": "the classifier gave every image the same "
                "score (too few images to learn from)"}
    return {"measured": True, **n, "auc": auc(p_real, p_synth),
            "auc_ci95": _boot_ci(p_real, p_synth, rng, n_boot)}


def auc(p_real: np.ndarray, p_synth: np.ndarray) -> float:
    """ROC AUC with the synthetic images as positives (the Mann-Whitney statistic, ties half)."""
    return float(_kernel(p_real, p_synth).mean())


def _kernel(p_real: np.ndarray, p_synth: np.ndarray) -> np.ndarray:
    """(S, R): 1 where a synthetic image scores above a real one, 0.5 on a tie, else 0."""
    diff = p_synth[:, None] - p_real[None, :]
    return (diff > 0) + 0.5 * (diff == 0)


def _boot_ci(p_real: np.ndarray, p_synth: np.ndarray, rng: np.random.Generator,
             n_boot: int) -> list[float] | None:
    """Percentile interval, real and synthetic rows resampled separately (both stay present):
    each resample's AUC is w_s' K w_r / (S R) with multinomial counts w."""
    if n_boot == 0:
        return None
    s, r = len(p_synth), len(p_real)
    ws = rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot)  # (B, S)
    wr = rng.multinomial(r, np.full(r, 1.0 / r), size=n_boot)  # (B, R)
    values = np.einsum("bs,sr,br->b", ws, _kernel(p_real, p_synth), wr) / (s * r)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def shortcut_test(
    *, real_images: np.ndarray, real_labels: np.ndarray, real_feats: np.ndarray,
    held_images: np.ndarray, held_labels: np.ndarray, held_feats: np.ndarray,
    synth_images: np.ndarray, synth_labels: np.ndarray, synth_feats: np.ndarray,
    n_classes: int, seed: int, n_boot: int = BOOT,
) -> dict[int, dict[str, Any]]:
    """Per class c: the two-sample test on pixels and in feature space. `real_*` are the real
    training images (fit), `held_*` real images never trained on (validation), `synth_*` the
    synthetic set under test."""
    out: dict[int, dict[str, Any]] = {}
    for c in range(n_classes):
        r, h, s = real_labels == c, held_labels == c, synth_labels == c
        out[c] = {
            "pixels": two_sample_auc(flat(real_images[r]), flat(synth_images[s]),
                                     flat(held_images[h]), classifier=pixel_classifier,
                                     seed=seed + c, n_boot=n_boot),
            "features": two_sample_auc(real_feats[r], synth_feats[s], held_feats[h],
                                       classifier=feature_classifier, seed=seed + c,
                                       n_boot=n_boot),
        }
    return out


def max_auc(result: dict[str, Any]) -> float | None:
    """The larger measured AUC of one class's pixel and feature tests (None if neither ran)."""
    aucs = [t["auc"] for t in result.values() if isinstance(t, dict) and t.get("measured")]
    return max(aucs) if aucs else None


def realness(
    candidates: np.ndarray, labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray, *,
    seed: int, folds: int = FOLDS,
) -> np.ndarray:
    """(P,) cross-fitted probability that each candidate is real, from pixel classifiers trained
    per class on the real training images of the class against the candidates of the other folds.
    A class with fewer than MIN_FIT real images, or too few candidates for the folds, scores 1
    (no evidence either way)."""
    out = np.ones(len(labels))
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        r = flat(real[real_labels == c])
        if len(r) < MIN_FIT or len(idx) < folds * MIN_FIT:
            continue
        fold = rng.permutation(len(idx)) % folds  # (n_c,) fold of each candidate
        x = flat(candidates[idx])
        for k in range(folds):
            train = x[fold != k]
            model = pixel_classifier(seed + int(c)).fit(
                np.concatenate([r, train]), np.r_[np.zeros(len(r)), np.ones(len(train))])
            out[idx[fold == k]] = model.predict_proba(x[fold == k])[:, 0]
    return out
