"""The verdict: one paragraph, computed from the numbers, that says whether the synthetic images
helped and how sure the run can be about it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.report.fmt import (
    TOL, best_variants, ci_text, class_label, f3, is_interval, is_number, join, minority_class,
    num, signed, uses_synthetic,
)


def verdict(
    evaluate: Mapping[str, Mapping[str, Any]], *, class_names: Sequence[str],
    test_counts: Mapping[str, int] | None = None, headline: Mapping[str, Any] | None = None,
) -> str:
    """One paragraph, computed from the numbers. With a `headline` (evaluate's GAN configuration
    and baseline, both chosen on validation, compared on test with a paired interval) it leads;
    then who wins balanced accuracy and minority recall on test and whether that win is
    distinguishable from no balancing (the paired 95% interval against `real` excludes 0).
    Without one, how the best GAN variant compares with the best variant without synthetic
    images. `test_counts` (class -> test images) sizes the caveats."""
    runs = dict(evaluate)
    if not runs:
        return "No variant was evaluated, so there is nothing to compare."
    minority = minority_class(runs)
    label = f"recall of the minority class {class_label(minority, class_names)}"
    size = _test_size(test_counts, minority)
    if len(runs) == 1:
        (name, m), = runs.items()
        return (f"Only one variant ({name}) was evaluated: balanced accuracy "
                f"{f3(m.get('balanced_accuracy'))}{ci_text(m.get('balanced_accuracy_ci95'))}, "
                f"{label} {f3(m.get('minority_recall'))}"
                f"{ci_text(m.get('minority_recall_ci95'))}. With nothing to compare it with, "
                "this run cannot say whether balancing helps; list more variants in "
                "evaluate.variants.")
    winners = [_winner_sentence(runs, "balanced_accuracy", "balanced accuracy", size),
               _winner_sentence(runs, "minority_recall", label, size)]
    if headline and headline.get("gan") in runs and headline.get("baseline") in runs:
        return " ".join([_headline_sentence(runs, headline, size),
                         "Among all variants on the test split:", *winners])
    return " ".join([*winners, _gan_sentence(runs)])


OUTCOMES = ("helped", "worse", "no benefit", "cannot tell")


def outcome(h: Mapping[str, Any]) -> str:
    """What the headline (evaluate's validation-chosen GAN configuration against the chosen
    baseline, paired on test) says, in one of OUTCOMES: the gain's 95% interval excludes 0
    (helped) or lies below it (worse); it contains 0 and is narrow enough to resolve 2 points
    (no benefit); or it is wide, or missing (cannot tell)."""
    ci = h.get("balanced_accuracy_delta_ci95")
    if not is_interval(ci):
        return "cannot tell"
    if ci[0] > 0:
        return "helped"
    if ci[1] < 0:
        return "worse"
    return "no benefit" if h.get("resolves_2_points") else "cannot tell"


def _headline_sentence(runs: Mapping[str, Mapping[str, Any]], h: Mapping[str, Any],
                       size: str) -> str:
    """The validation-chosen GAN configuration against the validation-chosen baseline, on test."""
    g, b = h["gan"], h["baseline"]
    n_gan = sum(1 for m in runs.values() if uses_synthetic(m))
    plural = "s" if n_gan != 1 else ""
    if h.get("selection_rule") == "one_se":
        chosen = (f"{g} of {n_gan} GAN configuration{plural} and {b} of the variants without "
                  "synthetic images, each the simplest within one paired standard error of the "
                  "best")
    else:
        chosen = (f"{g}, the best of {n_gan} GAN configuration{plural}, and {b}, the best "
                  "variant without synthetic images")
    text = (f"Chosen on the validation split (the test split played no part): {chosen}. "
            f"On the test split, {g} against {b}: ")
    shown = []
    for label, key in (("balanced accuracy", "balanced_accuracy"),
                       ("minority recall", "minority_recall"), ("ROC AUC", "roc_auc")):
        d, ci = h.get(f"{key}_delta"), h.get(f"{key}_delta_ci95")
        if is_number(d):
            shown.append(f"{label} {signed(d)}" + (
                f" (paired 95% CI [{signed(ci[0])}, {signed(ci[1])}])" if is_interval(ci)
                else ""))
    text += join(shown) + ". "
    ci, auc = h.get("balanced_accuracy_delta_ci95"), h.get("roc_auc_delta")
    auc_note = (f", though its ROC AUC is lower ({signed(auc)})"
                if is_number(auc) and auc < -TOL else "")
    result = outcome(h)
    if not is_interval(ci):
        text += ("There is no interval (evaluate.bootstrap is 0), so this difference cannot be "
                 "told from noise.")
    elif result == "helped":
        text += (f"The synthetic images helped: the gain in balanced accuracy is unlikely to be "
                 f"test-set or seed noise alone{auc_note}.")
    elif result == "worse":
        text += f"The synthetic images did worse than {b}, beyond test-set and seed noise."
    elif result == "no benefit":
        text += (f"The synthetic images are not distinguishable from {b}, and the interval is "
                 f"narrow: a gain larger than {signed(ci[1])} or a loss larger than "
                 f"{signed(ci[0])} is unlikely.")
    else:
        text += (f"The synthetic images are not distinguishable from {b} at this test-set "
                 f"size{size}.")
    text += _power_sentence(h, ci)
    width = h.get("balanced_accuracy_delta_ci95_width")
    if is_number(width):
        can = "can" if h.get("resolves_2_points") else "cannot"
        text += (f" That interval is {f3(width)} wide over {h.get('n_seeds', '?')} seeds and "
                 f"{h.get('n_test', '?')} test images: it {can} resolve a 2-point difference")
        test_only = h.get("balanced_accuracy_delta_ci95_width_test_only")
        if h.get("resolves_2_points") or not is_number(test_only):
            text += "."
        elif test_only > 0.04:
            text += (f"; the test set alone accounts for a width of {f3(test_only)}, so more "
                     "seeds cannot fix this: only a larger test split can.")
        else:
            text += (f"; the test set alone accounts for {f3(test_only)}, so more seeds "
                     "(evaluate.seeds) would narrow it.")
    return text


def _power_sentence(h: Mapping[str, Any], ci: Any) -> str:
    """What 'not distinguishable' means here: the minimum detectable difference at 80% power."""
    mdd = h.get("balanced_accuracy_mdd80")
    if not is_number(mdd) or not is_interval(ci) or not ci[0] <= 0 <= ci[1]:
        return ""
    return (f" So: no difference larger than {100 * mdd:.1f} points of balanced accuracy "
            f"(the smallest this test split and seed count detect with 80% power, 2.8 paired "
            "standard errors); a smaller one could go unseen.")


def _winner_sentence(runs: Mapping[str, Mapping[str, Any]], key: str, label: str,
                     size: str) -> str:
    best = best_variants(runs, key)
    value = f3(runs[best[0]].get(key))
    if len(best) > 1:
        head = f"{join(best)} tie for the highest {label} ({value})"
    else:
        head = f"{best[0]} has the highest {label} ({value})"
    if "real" not in runs:
        return head + "; there is no real variant (no balancing) to measure the gain against."
    if "real" in best:
        rest = [v for v in runs if v != "real"]
        runner = best_variants({v: runs[v] for v in rest}, key)[0]
        return (head + ": no balancing method beats training on the imbalanced data as it is. "
                f"The best of them, {runner}, is "
                f"{_delta_clause(runs, runner, key, size)}.")
    return head + f", {_delta_clause(runs, best[0], key, size)}."


def _delta_clause(runs: Mapping[str, Mapping[str, Any]], name: str, key: str, size: str) -> str:
    """'+0.050 vs real; 0 lies outside ...' for variant `name` against real."""
    vs = runs[name].get("vs_real") or {}
    delta = vs.get(f"{key}_delta")
    if not is_number(delta):
        delta = num(runs[name].get(key)) - num(runs["real"].get(key))
    text = f"{signed(delta)} vs real"
    ci = vs.get(f"{key}_delta_ci95")
    if not is_interval(ci):
        return text + " (no interval recorded: set evaluate.bootstrap > 0 to get one)"
    lo, hi = ci
    interval = f"95% CI of the paired difference [{signed(lo)}, {signed(hi)}]"
    if lo <= 0 <= hi:
        return (f"{text}, but the {interval} contains 0: not distinguishable from no balancing "
                f"at this test-set size{size}")
    if lo > 0:
        return (f"{text}, and 0 lies outside the {interval}: the gain is unlikely to be "
                "test-set sampling noise alone")
    return f"{text}, and the {interval} lies below 0: a loss beyond test-set sampling noise"


def _gan_sentence(runs: Mapping[str, Mapping[str, Any]]) -> str:
    gans = {v: m for v, m in runs.items() if uses_synthetic(m)}
    others = {v: m for v, m in runs.items() if not uses_synthetic(m)}
    if not gans:
        return "No GAN variant was evaluated, so this run says nothing about the synthetic images."
    if not others:
        return ("Only GAN variants were evaluated, so there is no baseline without synthetic "
                "images to compare them with.")
    g = best_variants(gans, "balanced_accuracy")[0]
    o = best_variants(others, "balanced_accuracy")[0]
    rows = [("balanced accuracy", "balanced_accuracy"), ("minority recall", "minority_recall"),
            ("ROC AUC", "roc_auc")]
    diffs, shown = {}, []
    for label, key in rows:
        a, b = runs[g].get(key), runs[o].get(key)
        if is_number(a) and is_number(b):
            diffs[key] = a - b
            shown.append(f"{label} {f3(a)} vs {f3(b)} ({signed(a - b)})")
        else:
            undefined = join([v for v, x in ((g, a), (o, b)) if not is_number(x)])
            shown.append(f"{label} undefined for {undefined}")
    text = (f"Against the best variant without synthetic images ({o}), {g} has "
            f"{join(shown)}. {_gan_conclusion(g, o, diffs)}")
    if o != "real":
        return (text + f" This {g} vs {o} difference has no paired interval of its own: treat "
                "differences smaller than the intervals in the table as unsettled.")
    ci = (runs[g].get("vs_real") or {}).get("balanced_accuracy_delta_ci95")
    if not is_interval(ci):
        return text
    where = "contains 0: within test-set noise" if ci[0] <= 0 <= ci[1] else "excludes 0"
    return (text + " The paired 95% CI of the balanced-accuracy difference, "
            f"[{signed(ci[0])}, {signed(ci[1])}], {where}.")


def _gan_conclusion(g: str, o: str, diffs: Mapping[str, float]) -> str:
    ba, mr = diffs.get("balanced_accuracy", 0.0), diffs.get("minority_recall", 0.0)
    auc = diffs.get("roc_auc")
    auc_note = ("" if auc is None else " at no loss of AUC" if auc > -TOL
                else f" but at a lower AUC ({signed(auc)})")
    if ba > TOL and mr > -TOL:
        return f"On these point estimates the synthetic images did better than {o}{auc_note}."
    if ba < -TOL and mr < TOL:
        return f"On these point estimates the synthetic images did not beat {o}."
    if abs(ba) <= TOL and abs(mr) <= TOL:
        return f"The synthetic images made no difference compared with {o}."
    better = [n for n, d in (("balanced accuracy", ba), ("minority recall", mr)) if d > TOL]
    worse = [n for n, d in (("balanced accuracy", ba), ("minority recall", mr)) if d < -TOL]
    return (f"A mixed result: {g} is better on {join(better) or 'nothing'} and worse on "
            f"{join(worse) or 'nothing'} than {o}.")


def _test_size(test_counts: Mapping[str, int] | None, minority: int | None) -> str:
    if not test_counts:
        return ""
    n = sum(int(v) for v in test_counts.values())
    if minority is None or str(minority) not in test_counts:
        return f" ({n} test images)"
    return f" ({n} test images, {int(test_counts[str(minority)])} of the minority class)"
