"""The report stage's work: one self-contained HTML page that says, from the numbers, whether the
synthetic images helped.

Pure pieces, each testable on its own: `verdict` (the plain-language summary), `plot_*` (matplotlib
figures built on `Figure` objects, no pyplot state, no display needed) and `build_report` (figures
+ tables -> `index.html`, written atomically). `load_inputs` reads what the earlier stages wrote.
Nothing here talks to MLflow: the stage passes the MLflow comparison table in.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.artifacts import atomic_dir
from pipeline.errors import PipelineError

DPI = 110
# Differences below this are "the same": the report shows three decimals.
TOL = 5e-4
# metrics/<file> -> the stage that writes it (for "run `dvc repro <stage>`" messages)
REQUIRED_METRICS = {"prepare.json": "prepare", "train_gan.json": "train_gan",
                    "generate.json": "generate", "evaluate.json": "evaluate"}
GRIDS = {"samples": "train_gan/samples.png", "real_vs_synthetic": "generate/real_vs_synthetic.png",
         "closest_pairs": "generate/closest_pairs.png", "selection": "generate/selection.png"}
# (metrics file, key, label) of the "Synthetic image quality and privacy" table
QUALITY_ROWS = [
    ("train_gan", "fid_domain", "FID in the in-project feature space (lower is better)"),
    ("train_gan", "kid_domain", "KID in the same space (lower is better; ~0 = indistinguishable)"),
    ("train_gan", "precision", "precision: share of synthetic images that look real"),
    ("train_gan", "recall", "recall: share of real images the generator covers"),
    ("train_gan", "density", "density"),
    ("train_gan", "coverage", "coverage"),
    ("train_gan", "tstr_balanced_accuracy", "TSTR: classifier trained on synthetic only, "
                                            "balanced accuracy on the real validation split"),
    ("train_gan", "trtr_balanced_accuracy", "the same classifier trained on the real training split"),
    ("train_gan", "best_step", "generator kept: the training step with the lowest FID"),
    ("generate", "memorization_rate", "memorization rate: share of drawn synthetic images closer to "
                                      "a training image than 99% of real validation images are"),
    ("generate", "memorization_rate_shipped", "memorization rate of the images shipped"),
    ("generate", "score_mean_shipped", "mean selection score of the images shipped (0-1: real-data "
                                       "classifier's confidence x realism)"),
    ("generate", "score_mean_pool", "mean selection score of all candidates drawn"),
    ("generate", "acceptance_rate", "acceptance rate of the memorization filter and quality gate"),
    ("generate", "rejected_memorized", "drawn images replaced as memorized"),
    ("generate", "rejected_quality_gate", "drawn images replaced by the quality gate"),
]
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows. The four metrics dicts are the stages' JSON files."""

    prepare: Mapping[str, Any]
    train_gan: Mapping[str, Any]
    generate: Mapping[str, Any]
    evaluate: Mapping[str, Mapping[str, Any]]  # variant -> metrics
    # evaluate.json's choice made on validation ({gan, baseline, by}) and its paired test result
    selection: Mapping[str, Any] = field(default_factory=dict)
    headline: Mapping[str, Any] = field(default_factory=dict)
    losses: pd.DataFrame | None = None  # step, d_loss, g_loss[, d_real, d_fake]
    roc: Mapping[str, pd.DataFrame] = field(default_factory=dict)  # variant -> fpr, tpr
    # variant -> one row per test image: actual, predicted
    confusion: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    grids: Mapping[str, Path] = field(default_factory=dict)  # GRIDS key -> PNG file
    missing: tuple[str, ...] = ()  # optional inputs that were not there

    @property
    def class_names(self) -> list[str]:
        n = int(self.prepare.get("n_classes") or len(_counts(self.prepare, "train")))
        names = list(self.prepare.get("class_names") or [])
        return names if len(names) == n else [str(c) for c in range(n)]


# --- reading the inputs -------------------------------------------------------------------------

def load_inputs(metrics_dir: str | Path, plots_dir: str | Path) -> ReportInputs:
    """Read the earlier stages' outputs. A missing or broken metrics file, or a broken optional
    file, raises PipelineError; a missing optional file (a variant without its ROC CSV) is
    listed in `missing` and its part of the report says so."""
    metrics_dir, plots_dir = Path(metrics_dir), Path(plots_dir)
    docs = {name: _read_json(metrics_dir / name, stage) for name, stage in REQUIRED_METRICS.items()}
    doc = docs["evaluate.json"]
    evaluate = doc.get("variants")
    _check_evaluate(evaluate, metrics_dir / "evaluate.json")
    missing: list[str] = []

    def optional_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame | None:
        if not path.is_file():
            missing.append(str(path))
            return None
        return _read_csv(path, columns)

    losses = optional_csv(plots_dir / "train_gan/losses.csv", ["step", "d_loss", "g_loss"])
    roc = {v: optional_csv(plots_dir / f"evaluate/roc_{v}.csv", ["fpr", "tpr"]) for v in evaluate}
    confusion = {v: optional_csv(plots_dir / f"evaluate/confusion_{v}.csv",
                                 ["actual", "predicted"]) for v in evaluate}
    grids = {}
    for key, rel in GRIDS.items():
        if (plots_dir / rel).is_file():
            grids[key] = plots_dir / rel
        else:
            missing.append(str(plots_dir / rel))
    return ReportInputs(
        prepare=docs["prepare.json"], train_gan=docs["train_gan.json"],
        generate=docs["generate.json"], evaluate=evaluate, losses=losses,
        selection=doc.get("selection") or {}, headline=doc.get("headline") or {},
        roc={v: f for v, f in roc.items() if f is not None},
        confusion={v: f for v, f in confusion.items() if f is not None},
        grids=grids, missing=tuple(missing),
    )


def _read_json(path: Path, stage: str) -> dict[str, Any]:
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the stage that writes it "
                            f"(`dvc repro {stage}`)")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PipelineError(f"{path}: not valid JSON ({e}); rerun `dvc repro {stage}`") from None
    if not isinstance(doc, dict):
        raise PipelineError(f"{path}: expected a JSON object; rerun `dvc repro {stage}`")
    return doc


def _check_evaluate(evaluate: Any, path: Path) -> None:
    if not isinstance(evaluate, dict) or not evaluate:
        raise PipelineError(f"{path}: no variants in it; rerun `dvc repro evaluate`")
    for name, m in evaluate.items():
        if not isinstance(m, dict) or not _is_number(m.get("balanced_accuracy")):
            raise PipelineError(f"{path}: variant {name!r} has no balanced_accuracy; rerun "
                                "`dvc repro evaluate`")


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise PipelineError(f"{path}: not a readable CSV ({type(e).__name__}); rerun "
                            "`dvc repro`") from None
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise PipelineError(f"{path}: missing column(s) {', '.join(absent)}; rerun `dvc repro`")
    return frame


# --- the verdict ----------------------------------------------------------------------------------

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
    minority = _minority(runs)
    label = f"recall of the minority class {_class_label(minority, class_names)}"
    size = _test_size(test_counts, minority)
    if len(runs) == 1:
        (name, m), = runs.items()
        return (f"Only one variant ({name}) was evaluated: balanced accuracy "
                f"{_f(m.get('balanced_accuracy'))}{_ci_text(m.get('balanced_accuracy_ci95'))}, "
                f"{label} {_f(m.get('minority_recall'))}"
                f"{_ci_text(m.get('minority_recall_ci95'))}. With nothing to compare it with, "
                "this run cannot say whether balancing helps; list more variants in "
                "evaluate.variants.")
    winners = [_winner_sentence(runs, "balanced_accuracy", "balanced accuracy", size),
               _winner_sentence(runs, "minority_recall", label, size)]
    if headline and headline.get("gan") in runs and headline.get("baseline") in runs:
        return " ".join([_headline_sentence(runs, headline, size),
                         "Among all variants on the test split:", *winners])
    return " ".join([*winners, _gan_sentence(runs)])


def _headline_sentence(runs: Mapping[str, Mapping[str, Any]], h: Mapping[str, Any],
                       size: str) -> str:
    """The validation-chosen GAN configuration against the validation-chosen baseline, on test."""
    g, b = h["gan"], h["baseline"]
    n_gan = sum(1 for v, m in runs.items() if _uses_synthetic(v, m))
    text = (f"Chosen on the validation split (the test split played no part): {g}, the best of "
            f"{n_gan} GAN configuration{'s' if n_gan != 1 else ''}, and {b}, the best variant "
            f"without synthetic images. On the test split, {g} against {b}: ")
    shown = []
    for label, key in (("balanced accuracy", "balanced_accuracy"),
                       ("minority recall", "minority_recall"), ("ROC AUC", "roc_auc")):
        d, ci = h.get(f"{key}_delta"), h.get(f"{key}_delta_ci95")
        if _is_number(d):
            shown.append(f"{label} {_signed(d)}" + (
                f" (paired 95% CI [{_signed(ci[0])}, {_signed(ci[1])}])" if _is_interval(ci)
                else ""))
    text += _join(shown) + ". "
    ci, auc = h.get("balanced_accuracy_delta_ci95"), h.get("roc_auc_delta")
    auc_note = (f", though its ROC AUC is lower ({_signed(auc)})"
                if _is_number(auc) and auc < -TOL else "")
    if not _is_interval(ci):
        text += ("There is no interval (evaluate.bootstrap is 0), so this difference cannot be "
                 "told from noise.")
    elif ci[0] > 0:
        text += (f"The synthetic images helped: the gain in balanced accuracy is unlikely to be "
                 f"test-set or seed noise alone{auc_note}.")
    elif ci[1] < 0:
        text += f"The synthetic images did worse than {b}, beyond test-set and seed noise."
    elif h.get("resolves_2_points"):
        text += (f"The synthetic images are not distinguishable from {b}, and the interval is "
                 f"narrow: a gain larger than {_signed(ci[1])} or a loss larger than "
                 f"{_signed(ci[0])} is unlikely.")
    else:
        text += (f"The synthetic images are not distinguishable from {b} at this test-set "
                 f"size{size}.")
    width = h.get("balanced_accuracy_delta_ci95_width")
    if _is_number(width):
        can = "can" if h.get("resolves_2_points") else "cannot"
        text += (f" That interval is {_f(width)} wide over {h.get('n_seeds', '?')} seeds and "
                 f"{h.get('n_test', '?')} test images: it {can} resolve a 2-point difference")
        test_only = h.get("balanced_accuracy_delta_ci95_width_test_only")
        if h.get("resolves_2_points") or not _is_number(test_only):
            text += "."
        elif test_only > 0.04:
            text += (f"; the test set alone accounts for a width of {_f(test_only)}, so more "
                     "seeds cannot fix this: only a larger test split can.")
        else:
            text += (f"; the test set alone accounts for {_f(test_only)}, so more seeds "
                     "(evaluate.seeds) would narrow it.")
    return text


def _winner_sentence(runs: Mapping[str, Mapping[str, Any]], key: str, label: str,
                     size: str) -> str:
    best = _best(runs, key)
    value = _f(runs[best[0]].get(key))
    if len(best) > 1:
        head = f"{_join(best)} tie for the highest {label} ({value})"
    else:
        head = f"{best[0]} has the highest {label} ({value})"
    if "real" not in runs:
        return head + "; there is no real variant (no balancing) to measure the gain against."
    if "real" in best:
        rest = [v for v in runs if v != "real"]
        runner = _best({v: runs[v] for v in rest}, key)[0]
        return (head + ": no balancing method beats training on the imbalanced data as it is. "
                f"The best of them, {runner}, is "
                f"{_delta_clause(runs, runner, key, size)}.")
    return head + f", {_delta_clause(runs, best[0], key, size)}."


def _delta_clause(runs: Mapping[str, Mapping[str, Any]], name: str, key: str, size: str) -> str:
    """'+0.050 vs real; 0 lies outside ...' for variant `name` against real."""
    vs = runs[name].get("vs_real") or {}
    delta = vs.get(f"{key}_delta")
    if not _is_number(delta):
        delta = _num(runs[name].get(key)) - _num(runs["real"].get(key))
    text = f"{_signed(delta)} vs real"
    ci = vs.get(f"{key}_delta_ci95")
    if not _is_interval(ci):
        return text + " (no interval recorded: set evaluate.bootstrap > 0 to get one)"
    lo, hi = ci
    interval = f"95% CI of the paired difference [{_signed(lo)}, {_signed(hi)}]"
    if lo <= 0 <= hi:
        return (f"{text}, but the {interval} contains 0: not distinguishable from no balancing "
                f"at this test-set size{size}")
    if lo > 0:
        return (f"{text}, and 0 lies outside the {interval}: the gain is unlikely to be "
                "test-set sampling noise alone")
    return f"{text}, and the {interval} lies below 0: a loss beyond test-set sampling noise"


def _gan_sentence(runs: Mapping[str, Mapping[str, Any]]) -> str:
    gans = {v: m for v, m in runs.items() if _uses_synthetic(v, m)}
    others = {v: m for v, m in runs.items() if not _uses_synthetic(v, m)}
    if not gans:
        return "No GAN variant was evaluated, so this run says nothing about the synthetic images."
    if not others:
        return ("Only GAN variants were evaluated, so there is no baseline without synthetic "
                "images to compare them with.")
    g, o = _best(gans, "balanced_accuracy")[0], _best(others, "balanced_accuracy")[0]
    rows = [("balanced accuracy", "balanced_accuracy"), ("minority recall", "minority_recall"),
            ("ROC AUC", "roc_auc")]
    diffs, shown = {}, []
    for label, key in rows:
        a, b = runs[g].get(key), runs[o].get(key)
        if _is_number(a) and _is_number(b):
            diffs[key] = a - b
            shown.append(f"{label} {_f(a)} vs {_f(b)} ({_signed(a - b)})")
        else:
            undefined = _join([v for v, x in ((g, a), (o, b)) if not _is_number(x)])
            shown.append(f"{label} undefined for {undefined}")
    text = (f"Against the best variant without synthetic images ({o}), {g} has "
            f"{_join(shown)}. {_gan_conclusion(g, o, diffs)}")
    if o != "real":
        return (text + f" This {g} vs {o} difference has no paired interval of its own: treat "
                "differences smaller than the intervals in the table as unsettled.")
    ci = (runs[g].get("vs_real") or {}).get("balanced_accuracy_delta_ci95")
    if not _is_interval(ci):
        return text
    where = "contains 0: within test-set noise" if ci[0] <= 0 <= ci[1] else "excludes 0"
    return (text + " The paired 95% CI of the balanced-accuracy difference, "
            f"[{_signed(ci[0])}, {_signed(ci[1])}], {where}.")


def _gan_conclusion(g: str, o: str, diffs: Mapping[str, float]) -> str:
    ba, mr = diffs.get("balanced_accuracy", 0.0), diffs.get("minority_recall", 0.0)
    auc = diffs.get("roc_auc")
    auc_note = ("" if auc is None else " at no loss of AUC" if auc > -TOL
                else f" but at a lower AUC ({_signed(auc)})")
    if ba > TOL and mr > -TOL:
        return f"On these point estimates the synthetic images did better than {o}{auc_note}."
    if ba < -TOL and mr < TOL:
        return f"On these point estimates the synthetic images did not beat {o}."
    if abs(ba) <= TOL and abs(mr) <= TOL:
        return f"The synthetic images made no difference compared with {o}."
    better = [n for n, d in (("balanced accuracy", ba), ("minority recall", mr)) if d > TOL]
    worse = [n for n, d in (("balanced accuracy", ba), ("minority recall", mr)) if d < -TOL]
    return (f"A mixed result: {g} is better on {_join(better) or 'nothing'} and worse on "
            f"{_join(worse) or 'nothing'} than {o}.")


def _best(runs: Mapping[str, Mapping[str, Any]], key: str) -> list[str]:
    """The variants with the highest value of `key` (ties within TOL), in file order."""
    values = {v: _num(m.get(key)) for v, m in runs.items()}
    finite = [x for x in values.values() if not math.isnan(x)]
    if not finite:
        return [next(iter(runs))]
    top = max(finite)
    return [v for v, x in values.items() if not math.isnan(x) and x >= top - TOL]


def _bold(runs: Mapping[str, Mapping[str, Any]], key: str) -> set[str]:
    """Variants whose `key` is the best of its column; none when every variant ties."""
    best = [v for v in _best(runs, key) if _is_number(runs[v].get(key))]
    return set() if len(runs) > 1 and len(best) == len(runs) else set(best)


def _minority(runs: Mapping[str, Mapping[str, Any]]) -> int | None:
    for m in runs.values():
        if isinstance(m.get("minority_class"), int):
            return m["minority_class"]
    return None


def _test_size(test_counts: Mapping[str, int] | None, minority: int | None) -> str:
    if not test_counts:
        return ""
    n = sum(int(v) for v in test_counts.values())
    if minority is None or str(minority) not in test_counts:
        return f" ({n} test images)"
    return f" ({n} test images, {int(test_counts[str(minority)])} of the minority class)"


def _uses_synthetic(name: str, m: Mapping[str, Any]) -> bool:
    """evaluate.json records it per variant; files without the flag go by the gan* names."""
    return bool(m.get("synthetic", name == "gan" or name.startswith(("gan_", "gan@"))))


# --- figures --------------------------------------------------------------------------------------

def plot_class_counts(before: Mapping[str, int], added: Mapping[str, int],
                      class_names: Sequence[str]) -> Figure:
    """Per class: real training images and synthetic images added (grouped bars)."""
    n = len(class_names)
    x = np.arange(n)
    real = [int(before.get(str(c), 0)) for c in range(n)]
    synth = [int(added.get(str(c), 0)) for c in range(n)]
    fig = Figure(figsize=(min(14.0, max(6.0, 0.6 * n + 3)), 3.8), dpi=DPI)
    ax = fig.add_subplot()
    ax.bar(x - 0.2, real, 0.4, label="real training images", color=COLORS[0])
    ax.bar(x + 0.2, synth, 0.4, label="synthetic added", color=COLORS[1])
    _class_ticks(ax, class_names, axis="x")
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.set_title("Training images per class: real and synthetic")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_losses(losses: pd.DataFrame) -> Figure:
    """GAN losses by step; discriminator outputs on real and fake in a second panel if logged;
    ADA's augmentation probability p and its overfitting signal r_t in a third (method stylegan)."""
    extra = [c for c in ("d_real", "d_fake") if c in losses.columns]
    ada = [c for c in ("ada_p", "ada_rt") if c in losses.columns]
    n = 1 + bool(extra) + bool(ada)
    fig = Figure(figsize=(6 + 3 * (n - 1), 3.6), dpi=DPI)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for i, col in enumerate(("d_loss", "g_loss")):
        axes[0].plot(losses["step"], losses[col], label=col, color=COLORS[i])
    axes[0].set_title("GAN losses")
    axes[0].set_ylabel("loss")
    if extra:
        for i, col in enumerate(extra):
            axes[1].plot(losses["step"], losses[col], label=col, color=COLORS[2 + i])
        axes[1].set_title("Discriminator output on real and fake")
        axes[1].set_ylabel("mean D output")
    if ada:
        for i, col in enumerate(ada):
            axes[-1].plot(losses["step"], losses[col], label=col, color=COLORS[i])
        axes[-1].set_title("ADA: augmentation probability p, r_t")
        axes[-1].set_ylabel("p / E[sign D(real)]")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(frameon=False)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_recall(evaluate: Mapping[str, Mapping[str, Any]], class_names: Sequence[str]) -> Figure:
    """Per-class test recall, one bar per variant."""
    n, variants = len(class_names), list(evaluate)
    width = 0.8 / len(variants)
    fig = Figure(figsize=(min(12.0, max(6.5, n * (0.15 * len(variants) + 0.3) + 2.5)), 3.8),
                 dpi=DPI)
    ax = fig.add_subplot()
    for i, v in enumerate(variants):
        recall = evaluate[v].get("recall") or {}
        values = [_num(recall.get(str(c))) for c in range(n)]
        ax.bar(np.arange(n) - 0.4 + width * (i + 0.5), values, width, label=v,
               color=COLORS[i % len(COLORS)])
    _class_ticks(ax, class_names, axis="x")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("test recall")
    ax.set_title("Per-class recall on the test split")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              title="variant", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_roc(roc: Mapping[str, pd.DataFrame], *, minority_name: str) -> Figure:
    """Minority class against the rest: one ROC curve per variant, with the chance diagonal."""
    fig = Figure(figsize=(5.2, 4.6), dpi=DPI)
    ax = fig.add_subplot()
    for i, (v, frame) in enumerate(roc.items()):
        auc = _area(frame["fpr"].to_numpy(float), frame["tpr"].to_numpy(float))
        ax.plot(frame["fpr"], frame["tpr"], label=f"{v} (AUC {_f(auc)})",
                color=COLORS[i % len(COLORS)], linewidth=1.6)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC: minority class {minority_name} vs rest")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_balanced_accuracy(evaluate: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Balanced accuracy per variant with its 95% interval (horizontal), real's value marked."""
    variants = list(evaluate)[::-1]  # first variant on top
    values = np.array([_num(evaluate[v].get("balanced_accuracy")) for v in variants])
    cis = [evaluate[v].get("balanced_accuracy_ci95") for v in variants]
    lo = np.array([values[i] - ci[0] if _is_interval(ci) else 0.0 for i, ci in enumerate(cis)])
    hi = np.array([ci[1] - values[i] if _is_interval(ci) else 0.0 for i, ci in enumerate(cis)])
    fig = Figure(figsize=(6.4, 0.45 * len(variants) + 1.6), dpi=DPI)
    ax = fig.add_subplot()
    y = np.arange(len(variants))
    ax.errorbar(values, y, xerr=[lo, hi], fmt="o", color=COLORS[0], ecolor="#555555",
                capsize=4)
    if "real" in evaluate:
        ax.axvline(_num(evaluate["real"].get("balanced_accuracy")), color=COLORS[3],
                   linestyle="--", linewidth=1, label="real (no balancing)")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_yticks(y, variants)
    ax.set_ylim(-0.6, len(variants) - 0.4)
    ax.set_xlabel("balanced accuracy (test, seed mean) with 95% CI")
    ax.set_title("Balanced accuracy by variant")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_confusions(confusion: Mapping[str, pd.DataFrame], class_names: Sequence[str]) -> Figure:
    """One confusion matrix per variant (rows: actual, normalized to recall; cells: counts)."""
    n, k = len(class_names), len(confusion)
    cols = min(k, 3)
    rows = math.ceil(k / cols)
    side = max(2.8, 0.32 * n + 1.4)
    fig = Figure(figsize=(side * cols + 0.9, side * rows + 0.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    image = None
    for ax, (v, frame) in zip(axes, confusion.items()):
        counts = confusion_matrix(frame, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = counts / counts.sum(axis=1, keepdims=True)
        image = ax.imshow(np.nan_to_num(share), cmap="Blues", vmin=0, vmax=1)
        if n <= 12:
            for (i, j), c in np.ndenumerate(counts):
                ax.text(j, i, str(c), ha="center", va="center", fontsize=7 if n > 5 else 9,
                        color="white" if share[i, j] > 0.6 else "black")
        _class_ticks(ax, class_names, axis="both")
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title(v)
    for ax in axes[k:]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[:k]), shrink=0.8, label="share of the actual class")
    fig.suptitle("Confusion matrices (test split)")
    return fig


def plot_grid(path: Path, class_names: Sequence[str], *, title: str) -> Figure:
    """A PNG with one row per class (the stages' sample grids), with class names on the rows."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise PipelineError(f"{path}: not a readable image ({e}); rerun `dvc repro`") from None
    h, w = pixels.shape[:2]
    width = min(9.0, w / 90, 11.0 * w / h)  # inches of image: about 1:1 pixels, at most 9 x 11
    width = max(width, min(9.0, 0.085 * len(title)))  # room for the whole title
    fig = Figure(figsize=(width + 0.9, width * h / w + 0.6), dpi=DPI)
    ax = fig.add_subplot()
    ax.imshow(pixels, interpolation="nearest")
    n = len(class_names)
    ax.set_yticks([(i + 0.5) * h / n for i in range(n)], list(class_names))
    ax.set_xticks([])
    ax.set_ylabel("class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _area(x: np.ndarray, y: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule (NaN for fewer than two points)."""
    if len(x) < 2:
        return float("nan")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def confusion_matrix(frame: pd.DataFrame, n_classes: int) -> np.ndarray:
    """(K, K) counts from one row per test image: [actual, predicted]."""
    actual = frame["actual"].to_numpy(dtype=np.int64)
    predicted = frame["predicted"].to_numpy(dtype=np.int64)
    ok = (actual >= 0) & (actual < n_classes) & (predicted >= 0) & (predicted < n_classes)
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (actual[ok], predicted[ok]), 1)
    return counts


def _class_ticks(ax: Any, class_names: Sequence[str], *, axis: str) -> None:
    ticks = np.arange(len(class_names))
    # rotate only when the names would run into each other
    long = len(class_names) * max((len(c) for c in class_names), default=0) > 40
    if axis in ("x", "both"):
        ax.set_xticks(ticks, list(class_names), rotation=45 if long else 0,
                      ha="right" if long else "center")
    if axis in ("y", "both"):
        ax.set_yticks(ticks, list(class_names))


# --- the page -------------------------------------------------------------------------------------

def build_report(
    inputs: ReportInputs, *, out_dir: str | Path, mlflow_table: pd.DataFrame | None = None,
    mlflow_note: str = "",
) -> Path:
    """Write `out_dir/index.html` and `out_dir/figures/*.png` (replacing `out_dir` as a whole,
    atomically). `mlflow_table`: one row per variant run (column `variant` + metrics), or
    None/empty, in which case the page says why (`mlflow_note`). Returns the HTML path."""
    out_dir = Path(out_dir)
    names = inputs.class_names
    with atomic_dir(out_dir) as tmp:
        figures = tmp / "figures"
        figures.mkdir()
        made = _save_figures(inputs, figures, names)
        body = _page_body(inputs, names, made, mlflow_table, mlflow_note)
        (tmp / "index.html").write_text(_page(body), encoding="utf-8")
    return out_dir / "index.html"


def _save_figures(inputs: ReportInputs, figures: Path, names: Sequence[str]) -> dict[str, str]:
    """Draw every figure the inputs allow; returns key -> relative path (figures/<key>.png)."""
    minority = _minority(inputs.evaluate)
    builders = {
        "class_counts": lambda: plot_class_counts(
            inputs.generate.get("counts_before") or _counts(inputs.prepare, "train"),
            inputs.generate.get("synthetic_per_class") or {}, names),
        "balanced_accuracy": lambda: plot_balanced_accuracy(inputs.evaluate),
        "recall": lambda: plot_recall(inputs.evaluate, names),
    }
    if inputs.losses is not None and len(inputs.losses):
        builders["gan_losses"] = lambda: plot_losses(inputs.losses)
    if inputs.roc:
        builders["roc"] = lambda: plot_roc(inputs.roc,
                                           minority_name=_class_label(minority, names))
    if inputs.confusion:
        builders["confusion"] = lambda: plot_confusions(inputs.confusion, names)
    titles = {"samples": "Generator samples (EMA), one row per class",
              "real_vs_synthetic": "Real training images (left) | synthetic (right)",
              "closest_pairs": "Synthetic images nearest to a training image, nearest first",
              "selection": "Shipped synthetic images: best-scored (left) | worst-scored (right)"}
    rows = {"closest_pairs": ["synthetic", "nearest real"]}
    for key, path in inputs.grids.items():
        shutil.copyfile(path, figures / f"{key}_original.png")
        builders[key] = lambda path=path, key=key: plot_grid(path, rows.get(key, names),
                                                             title=titles[key])
    made = {}
    for key, build in builders.items():
        build().savefig(figures / f"{key}.png", dpi=DPI)
        made[key] = f"figures/{key}.png"
    return made


def _page_body(inputs: ReportInputs, names: Sequence[str], figs: Mapping[str, str],
               mlflow_table: pd.DataFrame | None, mlflow_note: str) -> str:
    ev = inputs.evaluate
    test_counts = _counts(inputs.prepare, "test")
    summary = verdict(ev, class_names=names, test_counts=test_counts,
                      headline=inputs.headline)
    parts = [
        "<h1>Does GAN augmentation help? Pipeline report</h1>",
        _glance_html(inputs, names) + _data_changes_html(inputs.prepare),
        _section("Summary", f'<p class="verdict">{_e(summary)}</p>' + _legend_html(ev)
                 + _figure(figs, "balanced_accuracy", "Balanced accuracy (the mean of the "
                           "per-class recalls; higher is better) on the test split: dot = mean "
                           "over classifier seeds, bar = 95% CI, dashed line = no balancing.")),
        _section("Dataset and class balance", _dataset_html(inputs, names)
                 + _figure(figs, "class_counts", "Training images per class.")),
        _section("Real vs synthetic images", _figure(
            figs, "real_vs_synthetic", "Per class: real training images, then synthetic ones "
            "(none for a class already at the balance target).",
            original="figures/real_vs_synthetic_original.png")
            + _figure(figs, "samples", "Generator samples at the end of training.",
                      original="figures/samples_original.png")),
        _section("Synthetic image quality and privacy", _quality_html(inputs)
                 + _figure(figs, "closest_pairs", "Top: the synthetic images closest to a real "
                           "training image (in feature space); bottom: that training image. "
                           "Near-identical pairs would be copies of patients' images.",
                           original="figures/closest_pairs_original.png")
                 + _figure(figs, "selection", "Per class, the shipped synthetic images with the "
                           "highest selection score (left) and the lowest (right): the score is "
                           "the real-data classifier's probability of the intended class times "
                           "the image's realism against that class's real training images.",
                           original="figures/selection_original.png")),
        _section("GAN training", _kv_table(_flat(inputs.train_gan))
                 + _figure(figs, "gan_losses", "Losses by training step.")),
        _section("Variants on the test split",
                 _selection_html(inputs.selection)
                 + _variant_tables(ev) + _mlflow_html(mlflow_table, mlflow_note, order=list(ev))),
        _section("Per-class recall", _recall_table(ev, names, test_counts)
                 + _figure(figs, "recall", "Per-class recall by variant.")),
        _section("ROC of the minority class", _figure(
            figs, "roc", "The minority class against all others. The AUC in the legend is that of this curve; the tables' ROC AUC is the macro "
            "one-vs-rest AUC over all classes (the same number for two classes).")),
        _section("Confusion matrices", _figure(
            figs, "confusion", "First seed. Rows: actual class; cells: test images; colour: "
            "share of the row (the recall along the diagonal).")),
        _section("How to read this", HOW_TO_READ.format(
            n_seeds=_e(str(next(iter(ev.values())).get("n_seeds", "?"))))),
    ]
    if inputs.missing:
        items = "".join(f"<li><code>{_e(m)}</code></li>" for m in inputs.missing)
        parts.append(_section("Inputs not found", f"<ul>{items}</ul>"))
    return "\n".join(parts)


# What each variant family means, in a clinician's words (shown under the verdict).
VARIANT_WORDS = {
    "real": "the training images as they are, no balancing",
    "real_noaug": "the same without the classifier's own augmentation (shifts, brightness)",
    "class_weight": "rare classes weighted up in the classifier's loss",
    "oversample": "rare-class images repeated",
    "smote": "SMOTE: new rare-class images interpolated between real ones",
    "gan": "real images plus the best-scored GAN-generated (synthetic) ones; @r adds r times "
           "each rare class's count, @balance fills it up to the largest class",
    "gan_random": "the same share of synthetic images, taken without selection",
    "gan_class_weight": "real + synthetic images, with class weights",
    "gan_pretrain": "first trained on synthetic images only, then on the real ones",
}

def _glance_html(inputs: ReportInputs, names: Sequence[str]) -> str:
    """One line above the verdict: which data, how many images per class, how big the test set."""
    p = inputs.prepare
    train, test = _counts(p, "train"), _counts(p, "test")
    if not train:
        return ""
    per_class = ", ".join(f"{_e(n)}: {train.get(str(c), 0)}" for c, n in enumerate(names))
    shape = p.get("image_shape") or []
    size = f"; images {shape[1]}×{shape[0]} px" if len(shape) >= 2 else ""
    tested = f"; test split {sum(test.values())} images" if test else ""
    return (f'<p class="glance"><b>Data</b>: {_e(str(p.get("source", "?")))}, {len(names)} '
            f"classes; training images per class: {per_class}{tested}{_e(size)}.</p>")


def _data_changes_html(prepare: Mapping[str, Any]) -> str:
    """What `prepare` did to the data (simulated imbalance, resizing, ...): never small print."""
    changes = prepare.get("data_changes") or []
    if not changes:
        return ""
    items = "".join(f"<li>{_e(c)}</li>" for c in changes)
    return (f'<div class="notice"><b>The pipeline changed the data before training</b>'
            f"<ul>{items}</ul></div>")


def _legend_html(ev: Mapping[str, Any]) -> str:
    families = dict.fromkeys(str(m.get("variant", v)) for v, m in ev.items())  # in table order
    words = [f"<b>{_e(f)}</b>: {_e(VARIANT_WORDS[f])}" for f in families if f in VARIANT_WORDS]
    return f'<p class="legend">{"; ".join(words)}.</p>' if words else ""


HOW_TO_READ = """<ul>
<li>Every number is the mean over {n_seeds} classifier seeds, measured on the untouched test
split, which keeps the natural class balance.</li>
<li><b>95% CI</b> [lo, hi]: the range the seed mean moves within when the test images are
resampled (bootstrap). A small test set, or few test images of the minority class, gives wide
intervals.</li>
<li><b>Δ vs real</b>: the difference against training on the imbalanced data as it is, with a
paired interval (the same resamples for both variants). If it contains 0 (plain cells), the
difference is not distinguishable from no balancing at this test-set size; green cells exclude 0
upwards, red cells downwards.</li>
<li>Two variants whose own intervals overlap can still differ clearly in a paired comparison:
judge differences against <code>real</code> by the Δ columns, not by overlapping bars.</li>
<li>Differences between two balancing methods (e.g. gan vs smote) have no paired interval here;
treat those smaller than the intervals as unsettled.</li>
<li><b>Bold</b>: the best value of a column.</li>
</ul>"""


def _quality_html(inputs: ReportInputs) -> str:
    docs = {"train_gan": inputs.train_gan, "generate": inputs.generate}
    rows = {label: docs[doc][key] for doc, key, label in QUALITY_ROWS if key in docs[doc]}
    if not rows:
        return "<p>No quality metrics in these metrics files (rerun <code>dvc repro</code>).</p>"
    return _kv_table(rows)


def _dataset_html(inputs: ReportInputs, names: Sequence[str]) -> str:
    p, g = inputs.prepare, inputs.generate
    resized, removed = p.get("resized"), p.get("simulated_imbalance")
    shape = p.get("image_shape") or []
    facts = {"source": p.get("source"), "classes": len(names),
             "image size": f"{shape[1]}×{shape[0]} px" if len(shape) >= 2 else None,
             "resized": (f"{resized['count']} images to {resized['to']} px" if resized
                         else "no" if "resized" in p else None),
             "removed to simulate imbalance": (f"{removed['count']} of {removed['of']} training "
                                               f"images ({removed['method']})" if removed
                                               else "none" if "simulated_imbalance" in p
                                               else None),
             "imbalance ratio (train, largest / smallest)": p.get("imbalance_ratio"),
             "synthetic images": g.get("n_synthetic"), "balance target": g.get("target")}
    columns = {
        "train before imbalancing": p.get("train_counts_before_imbalance") or {},
        "train (real)": g.get("counts_before") or _counts(p, "train"),
        "synthetic added": g.get("synthetic_per_class") or {},
        "train after balancing": g.get("counts_after") or {},
        "val": _counts(p, "val"), "test": _counts(p, "test"),
    }
    columns = {k: v for k, v in columns.items() if v}
    head = "<tr><th>class</th>" + "".join(f"<th>{_e(k)}</th>" for k in columns) + "</tr>"
    rows = []
    for c, name in enumerate(names):
        cells = "".join(f'<td class="num">{_e(str(col.get(str(c), "—")))}</td>'
                        for col in columns.values())
        rows.append(f"<tr><th>{_e(name)}</th>{cells}</tr>")
    return (_kv_table({k: v for k, v in facts.items() if v is not None})
            + f"<table>{head}{''.join(rows)}</table>")


# (column title, metric key, interval key or None)
METRIC_COLUMNS = [
    ("validation balanced accuracy (selection)", "val_balanced_accuracy", None),
    ("accuracy", "accuracy", None),
    ("balanced accuracy", "balanced_accuracy", "balanced_accuracy_ci95"),
    ("macro F1", "macro_f1", None),
    ("ROC AUC", "roc_auc", None),
    ("minority recall", "minority_recall", "minority_recall_ci95"),
    ("minority precision", "minority_precision", None),
    ("sensitivity", "sensitivity", None),
    ("specificity", "specificity", None),
]
DELTA_COLUMNS = [
    ("Δ balanced accuracy", "balanced_accuracy_delta", "balanced_accuracy_delta_ci95"),
    ("Δ minority recall", "minority_recall_delta", "minority_recall_delta_ci95"),
    ("Δ ROC AUC", "roc_auc_delta", None),
]


def _selection_html(selection: Mapping[str, Any]) -> str:
    if not selection.get("gan") and not selection.get("baseline"):
        return ""
    return (f"<p>Chosen by <code>{_e(str(selection.get('by')))}</code> on the validation split: "
            f"GAN configuration <b>{_e(str(selection.get('gan')))}</b>, baseline "
            f"<b>{_e(str(selection.get('baseline')))}</b>. The test columns below are reported, "
            "never used to choose.</p>")


def _variant_tables(ev: Mapping[str, Mapping[str, Any]]) -> str:
    cols = [c for c in METRIC_COLUMNS if any(_is_number(m.get(c[1])) for m in ev.values())]
    head = ("<tr><th>variant</th><th>training images</th>"
            + "".join(f"<th>{_e(t)}</th>" for t, _, _ in cols)
            + "<th>seed std of bal. acc.</th></tr>")
    bold = {key: _bold(ev, key) for _, key, _ in cols}
    rows = []
    for v, m in ev.items():
        cells = [f'<td class="num">{_e(str(m.get("n_train", "—")))}</td>']
        for _, key, ci_key in cols:
            cells.append(_value_cell(m.get(key), m.get(ci_key) if ci_key else None,
                                     bold=v in bold[key]))
        cells.append(f'<td class="num">{_f(m.get("balanced_accuracy_seed_std"))}</td>')
        rows.append(f"<tr><th>{_e(v)}</th>{''.join(cells)}</tr>")
    table = f"<table>{head}{''.join(rows)}</table>"
    deltas = {v: m["vs_real"] for v, m in ev.items() if isinstance(m.get("vs_real"), dict)}
    if not deltas:
        return table + ("<p>No differences against <code>real</code>: "
                        + ("there is no real variant." if "real" not in ev else
                           "evaluate.json has no <code>vs_real</code> entries.") + "</p>")
    head = ("<tr><th>variant vs real</th>"
            + "".join(f"<th>{_e(t)}</th>" for t, _, _ in DELTA_COLUMNS) + "</tr>")
    bold = {key: _bold(deltas, key) for _, key, _ in DELTA_COLUMNS}
    rows = []
    for v, d in deltas.items():
        cells = [_value_cell(d.get(key), d.get(ci_key) if ci_key else None, signed=True,
                             bold=v in bold[key])
                 for _, key, ci_key in DELTA_COLUMNS]
        rows.append(f"<tr><th>{_e(v)}</th>{''.join(cells)}</tr>")
    return table + "<h3>Difference against real (paired)</h3>" + \
        f"<table>{head}{''.join(rows)}</table>"


def _value_cell(value: Any, ci: Any, *, bold: bool = False, signed: bool = False) -> str:
    fmt = _signed if signed else _f
    text = _e(fmt(value))
    if bold:
        text = f"<b>{text}</b>"
    css = "num"
    if _is_interval(ci):
        text += f'<br><span class="ci">[{_e(fmt(ci[0]))}, {_e(fmt(ci[1]))}]</span>'
        if signed and ci[0] > 0:
            css += " up"
        elif signed and ci[1] < 0:
            css += " down"
    return f'<td class="{css}">{text}</td>'


def _recall_table(ev: Mapping[str, Mapping[str, Any]], names: Sequence[str],
                  test_counts: Mapping[str, int]) -> str:
    variants = list(ev)
    head = ("<tr><th>class</th><th>test images</th>"
            + "".join(f"<th>{_e(v)}</th>" for v in variants) + "</tr>")
    minority = _minority(ev)
    rows = []
    for c, name in enumerate(names):
        per = {v: {"r": _num((ev[v].get("recall") or {}).get(str(c)))} for v in variants}
        bold = _bold(per, "r")
        cells = "".join(_value_cell(per[v]["r"], None, bold=v in bold) for v in variants)
        label = _e(name) + (" (minority)" if c == minority else "")
        rows.append(f"<tr><th>{label}</th><td class=\"num\">"
                    f"{_e(str(test_counts.get(str(c), '—')))}</td>{cells}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _mlflow_html(table: pd.DataFrame | None, note: str, *, order: Sequence[str] = ()) -> str:
    """The MLflow variant runs, transposed (one row per metric, one column per variant, in
    `order` first): MLflow holds ~30 flat metrics per run, too many columns for a page."""
    if table is None or table.empty or "variant" not in table.columns:
        reason = f" ({_e(note)})" if note else ""
        return (f"<h3>MLflow comparison</h3><p>MLflow table unavailable{reason}; the tables above "
                "come from <code>metrics/evaluate.json</code>.</p>")
    rank = {v: i for i, v in enumerate(order)}
    table = table.iloc[sorted(range(len(table)),
                              key=lambda i: rank.get(table["variant"].iloc[i], len(rank)))]
    head = "<tr><th>metric</th>" + "".join(f"<th>{_e(str(v))}</th>"
                                          for v in table["variant"]) + "</tr>"
    rows = []
    for col in sorted(c for c in table.columns if c != "variant"):
        fmt = _count if col in COUNT_METRICS else _f
        cells = "".join(f'<td class="num">{_e(fmt(x))}</td>' for x in table[col])
        rows.append(f"<tr><th>{_e(str(col))}</th>{cells}</tr>")
    return ("<h3>MLflow comparison (variant runs of this pipeline execution)</h3>"
            f'<table class="mlflow">{head}{"".join(rows)}</table>')


# metrics that are counts or class indices: shown without decimals
COUNT_METRICS = ("n_train", "n_seeds", "minority_class")


def _count(x: Any) -> str:
    return str(int(x)) if _is_number(x) else "—"


def _kv_table(items: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(str(k))}</th><td>{_e(_show(v))}</td></tr>"
                   for k, v in items.items())
    return f'<table class="kv">{rows}</table>'


def _figure(figs: Mapping[str, str], key: str, caption: str, *, original: str | None = None
            ) -> str:
    if key not in figs:
        return '<p class="missing">Not available: the input for this figure was not found.</p>'
    link = f' <a href="{_e(original)}">original PNG</a>' if original else ""
    return (f'<figure><img src="{_e(figs[key])}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}{link}</figcaption></figure>")


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>\n{body}\n</section>"


def _page(body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imbalance-gan report</title>
<style>{CSS}</style></head>
<body><main>
{body}
</main></body></html>
"""


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933;
  background: #fff; line-height: 1.45; margin: 0; }
main { max-width: 1080px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.5rem; }
main > section:first-of-type h2 { margin-top: 1.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #d0d7de; padding-bottom: 0.25rem;
  margin-top: 2.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
.verdict { background: #f3f7fb; border-left: 4px solid #2f6fb0; padding: 0.8rem 1rem;
  font-size: 1.02rem; }
.glance { margin: 0.3rem 0; }
.legend { color: #57606a; font-size: 0.85rem; margin: 0.4rem 0; }
.notice { background: #fff8e1; border-left: 4px solid #c77700; padding: 0.5rem 1rem;
  margin: 0.6rem 0; }
.notice ul { margin: 0.3rem 0 0; padding-left: 1.2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; display: block;
  overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #c9d1d9; padding: 0.3rem 0.55rem; vertical-align: top; }
th { background: #f6f8fa; text-align: left; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.up { background: #e6f4ea; }
td.down { background: #fce8e6; }
.ci { color: #57606a; font-size: 0.8rem; }
table.kv th { width: 16rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; }
figcaption { color: #57606a; font-size: 0.85rem; }
.missing { color: #8a6d3b; background: #fcf8e3; padding: 0.4rem 0.7rem; }
code { background: #f6f8fa; padding: 0 0.2rem; }
"""


# --- small helpers --------------------------------------------------------------------------------

def _counts(prepare: Mapping[str, Any], split: str) -> dict[str, int]:
    return dict((prepare.get("counts") or {}).get(split) or {})


def _flat(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar entries of a metrics dict, nested keys joined with '.'."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, str)) or v is None:
            out[f"{prefix}{k}"] = v
    return out


def _class_label(c: int | None, names: Sequence[str]) -> str:
    if c is None:
        return "(unknown)"
    return f"'{names[c]}'" if 0 <= c < len(names) else f"'{c}'"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
        and math.isfinite(float(x))


def _is_interval(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) == 2 and all(_is_number(v) for v in x)


def _num(x: Any) -> float:
    return float(x) if _is_number(x) else float("nan")


def _f(x: Any, digits: int = 3) -> str:
    return f"{float(x):.{digits}f}" if _is_number(x) else "—"


def _ci_text(ci: Any) -> str:
    return f" (95% CI [{_f(ci[0])}, {_f(ci[1])}])" if _is_interval(ci) else ""


def _signed(x: Any) -> str:
    return f"{float(x):+.3f}" if _is_number(x) else "—"


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return "—" if v is None else str(v)


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _e(text: str) -> str:
    return html.escape(text, quote=True)
