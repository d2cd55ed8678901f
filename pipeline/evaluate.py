"""The evaluate stage's work: GAN augmentation against the standard balancing baselines.

The variants (training sets) are declared in pipeline/variants.py.

Every variant gets the same classifier, step budget, seeds and classifier-side augmentation; only
its training set (and, for the class_weight variants, the loss weights) differ. Each fit is scored
on the validation split, where every choice is made (which GAN configuration, which baseline), and
on the untouched test split, which is scored once and reported. Point estimates are seed means;
95% intervals come from one shared two-level bootstrap (test images and training seeds), paired
across variants, so differences get their own interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import precision_score, roc_curve

from pipeline import LogFn
from pipeline.artifacts import Split, save_csv
from pipeline.classify import predict_proba, train_classifier
from pipeline.config import EvaluateConfig
from pipeline.metrics import classification_metrics, confusion_table
from pipeline.pool import SyntheticPool
from pipeline.schema import as_flat_dict
from pipeline.selection import SELECT_BY, SELECTION_RULES, select  # noqa: F401 (re-exported)
from pipeline.variants import NUMERIC_ONLY, SHARED, VARIANTS, TrainingSet, Variant, ratio_text



def expand_variants(cfg: EvaluateConfig) -> list[Variant]:
    """evaluate.variants x evaluate.synthetic_ratios for the share variants, in params order
    (`balance` is skipped for gan_mix, which gives every class the same share)."""
    def ratios(base: str) -> tuple:
        if base not in SHARED:
            return (None,)
        return tuple(r for r in cfg.synthetic_ratios
                     if not (base in NUMERIC_ONLY and r == "balance"))

    return [Variant(base, r) for base in cfg.variants for r in ratios(base)]


@dataclass
class VariantResult:
    metrics: dict[str, Any]  # seed means + intervals: one object of metrics/evaluate.json
    per_seed: list[dict[str, Any]]  # classification_metrics of each seed (test split)
    confusion: pd.DataFrame  # actual, predicted per test image (first seed)
    roc: pd.DataFrame  # fpr, tpr: the minority class against the rest (seed-mean scores)
    train_counts: dict[int, int] = field(default_factory=dict)
    probas: np.ndarray | None = None  # (S, N, K) test probabilities per seed
    variant: Variant | None = None
    val_probas: np.ndarray | None = None  # (S, M, K) validation probabilities: what choices see
    val_scores: np.ndarray | None = None  # (S,) validation balanced accuracy per seed
    train_digest: str = ""  # fingerprint of its training set (MLflow's dataset digest)
    train_labels: np.ndarray | None = None  # (N,) its training set's labels


@dataclass
class Comparison:
    """What metrics/evaluate.json holds: the choice made on validation, its test result against
    the chosen baseline (paired), and every variant."""

    variants: dict[str, VariantResult]
    selection: dict[str, Any] = field(default_factory=dict)
    headline: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"selection": self.selection, "headline": self.headline,
                "variants": {name: res.metrics for name, res in self.variants.items()}}


def evaluate_variants(
    train: Split, val: Split, test: Split, pool: SyntheticPool, cfg: EvaluateConfig, *,
    n_classes: int, seed: int, device: torch.device,
    log_for: Callable[[str, int], LogFn] = lambda variant, seed: (lambda metrics, step: None),
    on_fit: Callable[[str, int], None] = lambda variant, seed: None,
    fitted: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Comparison:
    """Train each variant with seeds seed..seed+cfg.seeds-1, score it on `val` and `test`, choose
    the GAN configuration and the baseline on `val`, and compare the two on `test`.

    fitted: the (val, test) probabilities of every fit made, by a key of the training set, the
        settings, the seeds and the scored splits; pass one dict to several calls (e.g. one per
        synthetic pool) and the variants they share (the baselines) are trained once.
    """
    # the rarest training class; among equally rare classes the lowest label (argmin's first)
    minority = int(np.argmin(np.bincount(train.labels, minlength=n_classes)))
    results: dict[str, VariantResult] = {}
    fitted = {} if fitted is None else fitted
    context = hashlib.blake2b(repr((as_flat_dict(cfg), seed)).encode(), digest_size=16)
    for split in (val, test):
        context.update(split.images.tobytes() + split.labels.tobytes())
    for v in expand_variants(cfg):
        data = VARIANTS[v.base](train, pool, v, n_classes=n_classes, seed=seed,
                                synthetic_weight=cfg.synthetic_weight)
        key = _fingerprint(data) + context.hexdigest()
        if key not in fitted:  # e.g. gan_class_weight is gan when the synthetic set balances
            probas = [], []
            for s in range(seed, seed + cfg.seeds):
                model = train_classifier(
                    data.images, data.labels, cfg, n_classes=n_classes, seed=s, device=device,
                    class_weights=data.class_weights, augment=None if data.augment else (),
                    pretrain=data.pretrain, sample_weights=data.sample_weights,
                    pretrain_steps=round(cfg.pretrain_fraction * cfg.steps), log=log_for(v.name, s),
                )
                for out, split in zip(probas, (val, test)):
                    out.append(predict_proba(model, split.images, device=device))
                on_fit(v.name, s)
            fitted[key] = (np.stack(probas[0]), np.stack(probas[1]))
        else:
            for s in range(seed, seed + cfg.seeds):
                on_fit(v.name, s)
        val_probas, test_probas = fitted[key]
        res = _summarize(test_probas, test.labels, data.labels, n_classes=n_classes,
                         minority=minority)
        res.variant, res.train_digest, res.train_labels = v, _fingerprint(data), data.labels
        val_seeds = [_seed_metrics(p, val.labels, minority=minority) for p in val_probas]
        res.val_probas = val_probas
        res.val_scores = np.array([m["balanced_accuracy"] for m in val_seeds])
        for k in ("balanced_accuracy", "minority_recall", "roc_auc"):
            res.metrics[f"val_{k}"] = float(np.mean([m[k] for m in val_seeds]))
        res.metrics.update(variant=v.base, synthetic=v.synthetic,
                           synthetic_ratio=None if v.ratio is None else ratio_text(v.ratio),
                           n_synthetic=len(data.labels) - len(train.labels)
                           if v.base in SHARED else 0,
                           n_pretrain=0 if data.pretrain is None else len(data.pretrain[1]))
        results[v.name] = res
    # every choice is made here, from validation probabilities alone; test is scored below, once
    val_draws = bootstrap_draws(results, val.labels, minority=minority, n_boot=cfg.bootstrap,
                                seed=seed, split="val")
    comparison = Comparison(results, select(results, rule=cfg.selection, draws=val_draws))
    draws = bootstrap_draws(results, test.labels, minority=minority, n_boot=cfg.bootstrap,
                            seed=seed)
    add_intervals(results, draws)
    base = comparison.selection["baseline"]
    for name, res in results.items():  # every variant against the validation-chosen baseline
        if base is not None and name != base:
            res.metrics["vs_baseline"] = paired(results, draws, name, base)
    comparison.headline = headline(results, comparison.selection, draws, n_test=len(test.labels),
                                   step=balanced_accuracy_step(test.labels, n_classes))
    return comparison


def _fingerprint(data: TrainingSet) -> str:
    """Equal fingerprints = the same training run: same images and labels, augmentation and
    pretraining, and class weights that change the loss (uniform weights leave weighted
    cross-entropy unchanged)."""
    h = hashlib.blake2b(data.images.tobytes(), digest_size=16)
    h.update(data.labels.tobytes())
    h.update(bytes([data.augment]))
    if data.pretrain is not None:
        h.update(b"pretrain" + data.pretrain[0].tobytes() + data.pretrain[1].tobytes())
    if data.sample_weights is not None and not np.all(data.sample_weights == 1):
        h.update(b"sample_weights" + np.asarray(data.sample_weights, np.float64).tobytes())
    w = data.class_weights
    present = np.bincount(data.labels, minlength=len(w)) > 0 if w is not None else None
    if w is not None and not np.allclose(w[present], w[present][0]):
        h.update(np.asarray(w, dtype=np.float64).tobytes())
    return h.hexdigest()


def _summarize(
    probas: np.ndarray, y_true: np.ndarray, train_labels: np.ndarray, *, n_classes: int,
    minority: int,
) -> VariantResult:
    per_seed = [_seed_metrics(p, y_true, minority=minority) for p in probas]
    metrics: dict[str, Any] = {
        k: float(np.mean([m[k] for m in per_seed]))
        for k, v in per_seed[0].items() if not isinstance(v, dict)
    }
    metrics["recall"] = {c: float(np.mean([m["recall"][c] for m in per_seed]))
                         for c in range(n_classes)}
    metrics["balanced_accuracy_seed_std"] = float(np.std([m["balanced_accuracy"]
                                                          for m in per_seed]))
    metrics.update(n_train=len(train_labels), n_seeds=len(probas), minority_class=minority)
    fpr, tpr, _ = roc_curve(y_true == minority, probas[:, :, minority].mean(axis=0))
    counts = np.bincount(train_labels, minlength=n_classes)
    return VariantResult(
        metrics, per_seed, confusion_table(y_true, probas[0].argmax(axis=1)),
        pd.DataFrame({"fpr": fpr, "tpr": tpr}), {c: int(counts[c]) for c in range(n_classes)},
        probas,
    )


def _seed_metrics(proba: np.ndarray, y_true: np.ndarray, *, minority: int) -> dict[str, Any]:
    m = classification_metrics(y_true, proba, minority=minority)
    y_pred = proba.argmax(axis=1)
    m["minority_precision"] = float(precision_score(
        y_true == minority, y_pred == minority, zero_division=0))
    if proba.shape[1] == 2:  # binary: the minority class is the positive one
        m["sensitivity"] = m["recall"][minority]
        m["specificity"] = m["recall"][1 - minority]
    return m


def bootstrap_recalls(
    preds: np.ndarray, y_true: np.ndarray, weights: np.ndarray, n_classes: int
) -> np.ndarray:
    """Per-class recall for every bootstrap resample and seed: (B, S, K).

    preds (S, N) predicted labels; weights (B, N) how often each test image is drawn in each
    resample. A class absent from a resample gets NaN.
    """
    onehot = np.eye(n_classes)[y_true]  # (N, K)
    correct = (preds == y_true[None, :]).astype(np.float64)  # (S, N)
    hits = np.einsum("bn,sn,nk->bsk", weights, correct, onehot)
    totals = weights @ onehot  # (B, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / totals[:, None, :]


Draws = dict[str, dict[str, np.ndarray]]  # variant -> metric -> (B,) bootstrap values


def bootstrap_draws(
    results: dict[str, VariantResult], y_true: np.ndarray, *, minority: int, n_boot: int,
    seed: int, split: str = "test",
) -> Draws:
    """Seed-mean balanced accuracy and minority recall in each of `n_boot` resamples of the
    `split` ("test" or "val") images and the seeds; the same resamples for every variant, so
    differences are paired. Empty when n_boot is 0."""
    if n_boot == 0:
        return {}
    probas = {name: res.val_probas if split == "val" else res.probas
              for name, res in results.items()}
    n_seeds, n, n_classes = next(iter(probas.values())).shape
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # (B, N) test resamples
    # Two-level bootstrap: seeds are resampled too, so the intervals cover training-seed noise
    # as well as test-set noise.
    picks = rng.integers(0, n_seeds, size=(n_boot, n_seeds))[:, :, None]  # (B, S, 1)
    draws = {}
    for name, p in probas.items():
        recalls = bootstrap_recalls(p.argmax(axis=2), y_true, weights, n_classes)
        per_seed = np.nanmean(recalls, axis=2)  # (B, S) balanced accuracy, seeds as trained
        recalls = np.take_along_axis(recalls, picks, axis=1)  # (B, S, K)
        draws[name] = {"balanced_accuracy": np.nanmean(recalls, axis=2).mean(axis=1),
                       "minority_recall": recalls[:, :, minority].mean(axis=1),
                       # the test images alone (the seeds kept): what no number of seeds removes
                       "balanced_accuracy_test_only": per_seed.mean(axis=1)}
    return draws


def paired(results: dict[str, VariantResult], draws: Draws, a: str, b: str) -> dict[str, Any]:
    """Test-split differences a - b: point estimates, and paired 95% intervals where drawn."""
    ma, mb = results[a].metrics, results[b].metrics
    out: dict[str, Any] = {}
    for key in ("balanced_accuracy", "minority_recall"):
        out[f"{key}_delta"] = ma[key] - mb[key]
        if draws:
            out[f"{key}_delta_ci95"] = _ci(draws[a][key] - draws[b][key])
    out["roc_auc_delta"] = ma["roc_auc"] - mb["roc_auc"]
    return out


# Every variant is also compared (paired) with these, when evaluated: no balancing, and the
# baseline synthetic images have to beat (bench/regime.py plots both).
REFERENCES = ("real", "class_weight")


def add_intervals(results: dict[str, VariantResult], draws: Draws) -> None:
    """95% percentile intervals of each variant's balanced accuracy and minority recall, and of
    their paired differences against each of REFERENCES (`vs_real`, `vs_class_weight`)."""
    if not draws:
        return
    for name, res in results.items():
        for key in ("balanced_accuracy", "minority_recall"):
            res.metrics[f"{key}_ci95"] = _ci(draws[name][key])
        for ref in REFERENCES:
            if name != ref and ref in results:
                res.metrics[f"vs_{ref}"] = paired(results, draws, name, ref)


# The smallest difference in balanced accuracy the headline should be able to resolve.
RESOLVE = 0.02
# Minimum detectable difference at 80% power, two-sided alpha 0.05: a true difference of
# (z_0.975 + z_0.80) x SE gives an estimate beyond 1.96 SE (a CI excluding 0) 80% of the time.
POWER_Z = 1.959964 + 0.841621


def balanced_accuracy_step(y_test: np.ndarray, n_classes: int) -> float:
    """How far one test image of the smallest class moves balanced accuracy: 1 / (K x its count).
    >>> balanced_accuracy_step(np.array([0] * 42 + [1] * 114), 2)
    0.011905
    """
    counts = np.bincount(y_test, minlength=n_classes)
    present = counts[counts > 0]
    return round(1.0 / (len(present) * int(present.min())), 6) if len(present) else 1.0


def headline(results: dict[str, VariantResult], selection: dict[str, Any], draws: Draws, *,
             n_test: int, step: float = 0.0) -> dict[str, Any]:
    """The selected GAN configuration against the selected baseline on the test split (paired),
    with the interval's width: a 95% interval wider than 2 x RESOLVE cannot tell a 2-point
    difference from noise, and neither can a test split where one image of the smallest class
    (`step`) moves balanced accuracy by more than RESOLVE / 2, however narrow the bootstrap
    interval (every fit perfect on a tiny test split gives a 0-wide one). `..._width_test_only` is the width with the seeds held fixed: the part
    of the noise that comes from the test set's size, which more seeds cannot remove."""
    gan, base = selection.get("gan"), selection.get("baseline")
    if gan is None or base is None:
        return {}
    out = {"gan": gan, "baseline": base, **paired(results, draws, gan, base),
           "n_seeds": results[gan].metrics["n_seeds"], "n_test": n_test}
    ci = out.get("balanced_accuracy_delta_ci95")
    if ci is not None:
        lo, hi = _ci(draws[gan]["balanced_accuracy_test_only"]
                     - draws[base]["balanced_accuracy_test_only"])
        out["balanced_accuracy_delta_ci95_width"] = ci[1] - ci[0]
        out["balanced_accuracy_delta_ci95_width_test_only"] = hi - lo
        out["balanced_accuracy_step"] = step
        out["resolves_2_points"] = bool(ci[1] - ci[0] <= 2 * RESOLVE and step <= RESOLVE / 2)
        out.update(minimum_detectable(draws[gan]["balanced_accuracy"]
                                      - draws[base]["balanced_accuracy"], floor=step))
    out["selection_rule"] = selection.get("rule")
    return out


def minimum_detectable(delta_draws: np.ndarray, *, floor: float = 0.0) -> dict[str, float]:
    """The paired bootstrap SE of a balanced-accuracy difference and the smallest true difference
    this test split and seed count detect at 80% power (two-sided 5%): POWER_Z x SE, about 2.8 SE,
    and never less than `floor` (one test image of the smallest class: a bootstrap of fits that
    are all right has SE 0, yet cannot detect less than one image).
    >>> minimum_detectable(np.array([-0.01, 0.01]))
    {'balanced_accuracy_delta_se': 0.01, 'balanced_accuracy_mdd80': 0.028016}
    """
    se = float(np.nanstd(delta_draws))
    return {"balanced_accuracy_delta_se": se,
            "balanced_accuracy_mdd80": round(max(POWER_Z * se, floor), 6)}


def _ci(values: np.ndarray) -> list[float]:
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def save_plots(plots: Path, comparison: Comparison) -> None:
    """Per variant: its confusion table (first seed) and minority ROC; recall.csv wide, one row per
    class and one column per variant (DVC draws one series per column)."""
    results = comparison.variants
    for name, res in results.items():
        save_csv(plots / f"confusion_{name}.csv", res.confusion)
        save_csv(plots / f"roc_{name}.csv", res.roc)
    recall = pd.DataFrame({name: res.metrics["recall"] for name, res in results.items()})
    save_csv(plots / "recall.csv", recall.rename_axis("class").reset_index())


def log_variant_runs(run: Any, comparison: Comparison, histories: dict[tuple[str, int], list], *,
                     cfg: EvaluateConfig, seed: int, plots: Path, data_source: str = "") -> None:
    """Under the evaluate stage's MLflow run `run` (which holds the selection and the headline):
    one run per variant, tagged augmentation=<base variant>, variant=<name>, synthetic_ratio=<r>
    for the share sweep, with the same metric names everywhere and its training set as an MLflow
    dataset (from `data_source`, by its fingerprint), and one nested run per seed with its
    training curves (`histories`: (variant, seed) -> [(step, metrics)])."""
    params = as_flat_dict(cfg, "evaluate.")
    for name, res in comparison.variants.items():
        v = res.variant
        tags = {"stage": "evaluate", "augmentation": v.base, "variant": name, "kind": "variant"}
        if v.ratio is not None:
            tags["synthetic_ratio"] = res.metrics["synthetic_ratio"]
        with run.child(name, tags) as child:
            child.log_params({**params, "variant": name, "n_train": res.metrics["n_train"]})
            child.log_metrics(res.metrics)
            if res.train_labels is not None:
                child.log_data(name=f"train:{name}", digest=res.train_digest, source=data_source,
                               context="training", table=pd.DataFrame({"label": res.train_labels}))
            for path in (f"confusion_{name}.csv", f"roc_{name}.csv"):
                child.log_artifact(plots / path)
            for i, seed_metrics in enumerate(res.per_seed):
                with child.child(f"{name}-seed{seed + i}", {
                        "stage": "evaluate", "augmentation": v.base, "variant": name,
                        "kind": "seed", "seed": str(seed + i)}) as seed_run:
                    seed_run.log_history(histories.get((name, seed + i), []))
                    seed_run.log_metrics(seed_metrics)


def summary_lines(comparison: Comparison) -> list[str]:
    """What the stage prints: each variant's validation and test scores, then the choice made on
    validation and its paired test difference."""
    lines = []
    for name, res in comparison.variants.items():
        m = res.metrics
        ci = m.get("balanced_accuracy_ci95", [float("nan")] * 2)
        lines.append(f"evaluate: {name:>20}: val {m['val_balanced_accuracy']:.3f} | test "
                     f"balanced_accuracy={m['balanced_accuracy']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
                     f"minority_recall={m['minority_recall']:.3f} roc_auc={m['roc_auc']:.3f}")
    h = comparison.headline
    if h:
        ci = h.get("balanced_accuracy_delta_ci95", [float("nan")] * 2)
        lines.append(f"evaluate: chosen on validation: {h['gan']} vs {h['baseline']}: test "
                     f"balanced accuracy {h['balanced_accuracy_delta']:+.3f} [{ci[0]:+.3f}, "
                     f"{ci[1]:+.3f}], ROC AUC {h['roc_auc_delta']:+.3f}"
                     + _rule_note(comparison.selection, h))
    return lines


def _rule_note(selection: dict[str, Any], h: dict[str, Any]) -> str:
    """The rule, how often it picks the same pair in validation resamples, and the power."""
    note = f" | rule {selection.get('rule')}"
    stable = (selection.get("stability") or {}).get(selection.get("rule"))
    if stable is not None:
        note += f", same pair in {100 * stable:.0f}% of validation resamples"
    if "balanced_accuracy_mdd80" in h:
        note += f" | detectable at 80% power: {h['balanced_accuracy_mdd80']:.3f}"
    return note
