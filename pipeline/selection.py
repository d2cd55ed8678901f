"""How evaluate chooses the GAN configuration and the baseline on the validation split, so that
the choice does not flip with the classifier seeds or the last bits of a machine's floats.

Rules (`evaluate.selection`, SELECTION_RULES):
  one_se  (default) the one-standard-error rule: among the variants whose validation balanced
          accuracy is within one paired standard error of the best one's, the simplest
          (`preference`). The SE of each pair's difference comes from the validation bootstrap
          (images and seeds resampled, paired across variants), else from the per-seed scores.
  max     the highest validation balanced accuracy (the rule before one_se).
Ties go to the simpler variant; a NaN score is never chosen. `stability` records, for every
rule, the share of validation bootstrap resamples in which it picks the same pair: computed from
probabilities already predicted, no extra fits. Only validation probabilities are read: images
the synthesizer trained on (the training split) and the test split play no part.

Pure numpy: the config reads SELECTION_RULES without the torch stack.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Not imported from pipeline/evaluate.py (torch): the config and the prepare stage import this.
Draws = dict[str, dict[str, np.ndarray]]  # variant -> metric -> (B,) bootstrap values
VariantResult = Any  # pipeline.evaluate.VariantResult: .metrics and .val_scores are read

SELECT_BY = "val_balanced_accuracy"  # the validation metric every choice is made on

# Preference order for the one-standard-error rule and for ties: simpler first. Baselines:
# no balancing, then a loss weight, then resampling, then interpolation. Synthetic
# configurations: plain real + synthetic first, then the others; within one family the smaller
# synthetic share first. Names not listed (new variants) come after, in params order.
BASELINE_ORDER = ("real", "class_weight", "oversample", "smote", "real_noaug")
SYNTHETIC_ORDER = ("gan", "gan_random", "gan_real", "gan_class_weight", "gan_downweight", "gan_mix",
                   "gan_pretrain")
SELECTION_RULES = {
    "one_se": "the simplest variant (preference order) whose validation balanced accuracy is "
              "within one paired standard error of the best one's",
    "max": "the highest validation balanced accuracy (ties: preference order)",
}


def preference(name: str, metrics: dict[str, Any], position: int) -> tuple:
    """Sort key, simpler first: family rank, synthetic share (balance last), params position."""
    # evaluate records the base variant and the share; else they are read off the name (gan@0.5)
    named_base, _, named_ratio = name.partition("@")
    base = metrics.get("variant", named_base)
    order = SYNTHETIC_ORDER if metrics.get("synthetic") else BASELINE_ORDER
    rank = order.index(base) if base in order else len(order)
    ratio = metrics.get("synthetic_ratio", named_ratio or None)
    share = (np.inf if ratio == "balance" else float(ratio)) if ratio is not None else 0.0
    return rank, share, position


def select(results: dict[str, VariantResult], *, rule: str = "one_se",
           draws: Draws | None = None) -> dict[str, Any]:
    """The GAN configuration and the baseline (no synthetic images), each chosen on validation
    alone by `rule` (SELECTION_RULES); the test split plays no part. A NaN score is never chosen;
    ties go to the simpler variant (`preference`).

    one_se: the simplest variant whose score is within one paired standard error of the best
    one's: the SE of the difference from `draws` (validation bootstrap over images and seeds),
    else from the per-seed scores. `stability` is the share of the validation resamples in which
    the rule picks the same pair (the SEs held fixed; no extra fits)."""
    if rule not in SELECTION_RULES:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {list(SELECTION_RULES)}")
    draws = draws or {}
    groups = {g: _by_preference(results, synthetic=g == "gan") for g in ("gan", "baseline")}
    scores = {n: float(r.metrics[SELECT_BY]) for n, r in results.items()}
    se = {g: _paired_se(results, draws, names) for g, names in groups.items()}
    chosen = {g: _choose(names, scores, se[g], rule=rule) for g, names in groups.items()}
    out: dict[str, Any] = {**chosen, "by": SELECT_BY, "rule": rule,
                           "rule_text": SELECTION_RULES[rule],
                           "highest": {g: _choose(names, scores, se[g], rule="max")
                                       for g, names in groups.items()}}
    if draws and all(n in draws for names in groups.values() for n in names):
        out["stability"] = {r: _stability(groups, scores, draws, se, rule=r)
                            for r in SELECTION_RULES}
        out["stability_resamples"] = len(next(iter(draws.values()))[
            "balanced_accuracy"])
    return out


def _by_preference(results: dict[str, VariantResult], *, synthetic: bool) -> list[str]:
    names = [(preference(n, r.metrics, i), n) for i, (n, r) in enumerate(results.items())
             if bool(r.metrics["synthetic"]) == synthetic]
    return [n for _, n in sorted(names)]


def _choose(names: list[str], scores: dict[str, float], se: dict[tuple[str, str], float], *,
            rule: str) -> str | None:
    """`names` in preference order: the best non-NaN (first on ties), or under one_se the first
    within one SE of it."""
    valid = [n for n in names if np.isfinite(scores[n])]
    if not valid:
        return None
    best = max(valid, key=lambda n: scores[n])  # max keeps the first of equals
    if rule == "max":
        return best
    return next(n for n in valid if scores[n] >= scores[best] - se.get((best, n), 0.0))


def _paired_se(results: dict[str, VariantResult], draws: Draws,
               names: list[str]) -> dict[tuple[str, str], float]:
    """Standard error of each pair's difference in validation balanced accuracy: the spread of
    the paired bootstrap difference, else of the per-seed differences (same seed, same split)."""
    out = {}
    for a in names:
        for b in names:
            if a in draws and b in draws:
                d = draws[a]["balanced_accuracy"] - draws[b]["balanced_accuracy"]
                out[a, b] = float(np.nanstd(d)) if np.isfinite(d).any() else 0.0
                continue
            sa, sb = (getattr(results[n], "val_scores", None) for n in (a, b))
            if sa is not None and sb is not None and len(sa) > 1:
                out[a, b] = float(np.std(sa - sb, ddof=1) / np.sqrt(len(sa)))
    return out


def _stability(groups: dict[str, list[str]], scores: dict[str, float], draws: Draws,
               se: dict[str, dict[tuple[str, str], float]], *, rule: str) -> float:
    """Share of the validation resamples in which `rule` picks the pair it picks on the full
    validation split (`scores`)."""
    def pair(values: dict[str, float]) -> tuple:
        return tuple(_choose(names, values, se[g], rule=rule) for g, names in groups.items())

    full = pair(scores)
    n_boot = len(next(iter(draws.values()))["balanced_accuracy"])
    same = [pair({n: float(d["balanced_accuracy"][b]) for n, d in draws.items()}) == full
            for b in range(n_boot)]
    return float(np.mean(same))
