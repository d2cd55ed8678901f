"""The report's HTML tables: the dataset, image quality, the variants on the test split with
their paired differences against `real`, per-class recall and the MLflow comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.report.fmt import (
    bold_variants, count, esc, f3, is_interval, is_number, minority_class, num, show, signed,
    split_counts,
)
from pipeline.report.inputs import ReportInputs

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
    ("train_gan", "trtr_balanced_accuracy",
     "the same classifier trained on the real training split"),
    ("train_gan", "best_step", "generator kept: the training step with the lowest FID"),
    ("generate", "memorization_rate", "memorization rate: share of drawn synthetic images closer "
                                      "to a training image than 99% of real validation images are"),
    ("generate", "memorization_threshold_source", "where the memorization threshold came from "
                                                  "(validation, or the near-copy fallback)"),
    ("generate", "memorization_calibration_excluded",
     "validation images left out of the calibration as copies of training images"),
    ("generate", "memorization_rate_shipped", "memorization rate of the images shipped"),
    ("generate", "score_mean_shipped", "mean selection score of the images shipped (0-1: real-data "
                                       "classifier's confidence x realism)"),
    ("generate", "score_mean_pool", "mean selection score of all candidates drawn"),
    ("generate", "acceptance_rate", "acceptance rate of the memorization filter and quality gate"),
    ("generate", "rejected_memorized", "drawn images replaced as memorized"),
    ("generate", "rejected_quality_gate", "drawn images replaced by the quality gate"),
]


def quality_table(inputs: ReportInputs) -> str:
    """Generator quality (FID, KID, PRDC, TSTR) and privacy (memorization) rows that exist."""
    docs = {"train_gan": inputs.train_gan, "generate": inputs.generate}
    rows = {label: docs[doc][key] for doc, key, label in QUALITY_ROWS if key in docs[doc]}
    if not rows:
        return "<p>No quality metrics in these metrics files (rerun <code>dvc repro</code>).</p>"
    return kv_table(rows)


def dataset_tables(inputs: ReportInputs, names: Sequence[str]) -> str:
    """Facts about the data, then images per class at each step (before imbalancing, real,
    synthetic added, after balancing, val, test)."""
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
        "train (real)": g.get("counts_before") or split_counts(p, "train"),
        "synthetic added": g.get("synthetic_per_class") or {},
        "train after balancing": g.get("counts_after") or {},
        "val": split_counts(p, "val"), "test": split_counts(p, "test"),
    }
    columns = {k: v for k, v in columns.items() if v}
    head = "<tr><th>class</th>" + "".join(f"<th>{esc(k)}</th>" for k in columns) + "</tr>"
    rows = []
    for c, name in enumerate(names):
        cells = "".join(f'<td class="num">{esc(str(col.get(str(c), "—")))}</td>'
                        for col in columns.values())
        rows.append(f"<tr><th>{esc(name)}</th>{cells}</tr>")
    return (kv_table({k: v for k, v in facts.items() if v is not None})
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


def selection_html(selection: Mapping[str, Any]) -> str:
    """Which GAN configuration and baseline validation chose (empty when evaluate chose none)."""
    if not selection.get("gan") and not selection.get("baseline"):
        return ""
    return (f"<p>Chosen by <code>{esc(str(selection.get('by')))}</code> on the validation split: "
            f"GAN configuration <b>{esc(str(selection.get('gan')))}</b>, baseline "
            f"<b>{esc(str(selection.get('baseline')))}</b>{_rule_text(selection)}. The test "
            "columns below are reported, never used to choose.</p>")


def _rule_text(selection: Mapping[str, Any]) -> str:
    """The selection rule and how often it picks the same pair in validation resamples."""
    rule, stable = selection.get("rule"), (selection.get("stability") or {}).get(
        selection.get("rule"))
    if not rule:
        return ""
    text = f", by the <code>{esc(str(rule))}</code> rule ({esc(str(selection.get('rule_text')))})"
    if is_number(stable):
        text += (f"; the same pair in {100 * stable:.0f}% of "
                 f"{selection.get('stability_resamples')} validation resamples")
    return text


def variant_tables(ev: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per variant (test metrics, intervals beneath), then the paired differences
    against `real`."""
    cols = [c for c in METRIC_COLUMNS if any(is_number(m.get(c[1])) for m in ev.values())]
    head = ("<tr><th>variant</th><th>training images</th>"
            + "".join(f"<th>{esc(t)}</th>" for t, _, _ in cols)
            + "<th>seed std of bal. acc.</th></tr>")
    bold = {key: bold_variants(ev, key) for _, key, _ in cols}
    rows = []
    for v, m in ev.items():
        cells = [f'<td class="num">{esc(str(m.get("n_train", "—")))}</td>']
        for _, key, ci_key in cols:
            cells.append(_value_cell(m.get(key), m.get(ci_key) if ci_key else None,
                                     bold=v in bold[key]))
        cells.append(f'<td class="num">{f3(m.get("balanced_accuracy_seed_std"))}</td>')
        rows.append(f"<tr><th>{esc(v)}</th>{''.join(cells)}</tr>")
    table = f"<table>{head}{''.join(rows)}</table>"
    deltas = {v: m["vs_real"] for v, m in ev.items() if isinstance(m.get("vs_real"), dict)}
    if not deltas:
        return table + ("<p>No differences against <code>real</code>: "
                        + ("there is no real variant." if "real" not in ev else
                           "evaluate.json has no <code>vs_real</code> entries.") + "</p>")
    head = ("<tr><th>variant vs real</th>"
            + "".join(f"<th>{esc(t)}</th>" for t, _, _ in DELTA_COLUMNS) + "</tr>")
    bold = {key: bold_variants(deltas, key) for _, key, _ in DELTA_COLUMNS}
    rows = []
    for v, d in deltas.items():
        cells = [_value_cell(d.get(key), d.get(ci_key) if ci_key else None, delta=True,
                             bold=v in bold[key])
                 for _, key, ci_key in DELTA_COLUMNS]
        rows.append(f"<tr><th>{esc(v)}</th>{''.join(cells)}</tr>")
    return table + "<h3>Difference against real (paired)</h3>" + \
        f"<table>{head}{''.join(rows)}</table>"


def _value_cell(value: Any, ci: Any, *, bold: bool = False, delta: bool = False) -> str:
    """A number with its interval beneath; a difference (`delta`) is green when its interval
    lies above 0 and red when below."""
    fmt = signed if delta else f3
    text = esc(fmt(value))
    if bold:
        text = f"<b>{text}</b>"
    css = "num"
    if is_interval(ci):
        text += f'<br><span class="ci">[{esc(fmt(ci[0]))}, {esc(fmt(ci[1]))}]</span>'
        if delta and ci[0] > 0:
            css += " up"
        elif delta and ci[1] < 0:
            css += " down"
    return f'<td class="{css}">{text}</td>'


def recall_table(ev: Mapping[str, Mapping[str, Any]], names: Sequence[str],
                  test_counts: Mapping[str, int]) -> str:
    variants = list(ev)
    head = ("<tr><th>class</th><th>test images</th>"
            + "".join(f"<th>{esc(v)}</th>" for v in variants) + "</tr>")
    minority = minority_class(ev)
    rows = []
    for c, name in enumerate(names):
        per = {v: {"r": num((ev[v].get("recall") or {}).get(str(c)))} for v in variants}
        bold = bold_variants(per, "r")
        cells = "".join(_value_cell(per[v]["r"], None, bold=v in bold) for v in variants)
        label = esc(name) + (" (minority)" if c == minority else "")
        rows.append(f"<tr><th>{label}</th><td class=\"num\">"
                    f"{esc(str(test_counts.get(str(c), '—')))}</td>{cells}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def mlflow_tables(table: pd.DataFrame | None, note: str, *, order: Sequence[str] = ()) -> str:
    """The MLflow variant runs, transposed (one row per metric, one column per variant, in
    `order` first): MLflow holds ~30 flat metrics per run, too many columns for a page."""
    if table is None or table.empty or "variant" not in table.columns:
        reason = f" ({esc(note)})" if note else ""
        return (f"<h3>MLflow comparison</h3><p>MLflow table unavailable{reason}; the tables above "
                "come from <code>metrics/evaluate.json</code>.</p>")
    rank = {v: i for i, v in enumerate(order)}
    table = table.iloc[sorted(range(len(table)),
                              key=lambda i: rank.get(table["variant"].iloc[i], len(rank)))]
    head = "<tr><th>metric</th>" + "".join(f"<th>{esc(str(v))}</th>"
                                          for v in table["variant"]) + "</tr>"
    rows = []
    for col in sorted(c for c in table.columns if c != "variant"):
        fmt = count if col in COUNT_METRICS else f3
        cells = "".join(f'<td class="num">{esc(fmt(x))}</td>' for x in table[col])
        rows.append(f"<tr><th>{esc(str(col))}</th>{cells}</tr>")
    return ("<h3>MLflow comparison (variant runs of this pipeline execution)</h3>"
            f'<table class="mlflow">{head}{"".join(rows)}</table>')


# metrics that are counts or class indices: shown without decimals
COUNT_METRICS = ("n_train", "n_seeds", "minority_class")


def kv_table(items: Mapping[str, Any]) -> str:
    """A two-column table: key, value."""
    rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(show(v))}</td></tr>"
                   for k, v in items.items())
    return f'<table class="kv">{rows}</table>'
