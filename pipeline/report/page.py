"""The report page: sections in reading order, assembled from the verdict, the tables and the
figures, written atomically with its figures. The page skeleton, its CSS and the reading guide
are package files (page.html, style.css, how_to_read.html)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from pipeline.artifacts import atomic_dir
from pipeline.report.figures import save_figures
from pipeline.report.fmt import esc, split_counts
from pipeline.report.inputs import ReportInputs
from pipeline.report.tables import (
    dataset_tables, kv_table, mlflow_tables, quality_table, recall_table, selection_html,
    variant_tables,
)
from pipeline.report.shortcut import shortcut_guard, shortcut_html
from pipeline.report.verdict import verdict
from pipeline.tracking import flatten

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
    "gan_real": "the same share of synthetic images, those a real-vs-synthetic classifier found "
                "most real-looking first",
    "gan_mix": "every class, the largest too, gets synthetic images (r times its own count), with "
               "class weights: being synthetic says nothing about the class",
    "gan_downweight": "real + synthetic images, each synthetic one counting less in the loss",
}


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
        made = save_figures(inputs, figures, names)
        body = _page_body(inputs, names, made, mlflow_table, mlflow_note)
        page = _template("page.html").substitute(style=_resource("style.css"), body=body)
        (tmp / "index.html").write_text(page + "\n", encoding="utf-8")
    return out_dir / "index.html"


def _page_body(inputs: ReportInputs, names: Sequence[str], figs: Mapping[str, str],
               mlflow_table: pd.DataFrame | None, mlflow_note: str) -> str:
    ev = inputs.evaluate
    test_counts = split_counts(inputs.prepare, "test")
    summary = " ".join(filter(None, [
        verdict(ev, class_names=names, test_counts=test_counts, headline=inputs.headline),
        shortcut_guard(ev, inputs.generate, names)]))
    parts = [
        "<h1>Does GAN augmentation help? Pipeline report</h1>",
        _glance_html(inputs, names) + _data_changes_html(inputs.prepare),
        _section("Summary", f'<p class="verdict">{esc(summary)}</p>' + _legend_html(ev)
                 + _figure(figs, "balanced_accuracy", "Balanced accuracy (the mean of the "
                           "per-class recalls; higher is better) on the test split: dot = mean "
                           "over classifier seeds, bar = 95% CI, dashed line = no balancing.")),
        _section("Dataset and class balance", dataset_tables(inputs, names)
                 + _figure(figs, "class_counts", "Training images per class.")),
        _section("Real vs synthetic images", _figure(
            figs, "real_vs_synthetic", "Per class: real training images, then synthetic ones "
            "(none for a class already at the balance target).",
            original="figures/real_vs_synthetic_original.png")
            + _figure(figs, "samples", "Generator samples at the end of training.",
                      original="figures/samples_original.png")),
        _section("Synthetic image quality and privacy", _audit_warning_html(inputs.generate)
                 + quality_table(inputs)
                 + _figure(figs, "closest_pairs", "Top: the synthetic images closest to a real "
                           "training image (in feature space); bottom: that training image. "
                           "Near-identical pairs would be copies of patients' images.",
                           original="figures/closest_pairs_original.png")
                 + _figure(figs, "selection", "Per class, the shipped synthetic images with the "
                           "highest selection score (left) and the lowest (right): the score is "
                           "the real-data classifier's probability of the intended class times "
                           "the image's realism against that class's real training images.",
                           original="figures/selection_original.png")),
        _section("Can a classifier tell the synthetic images from real ones?", (
            "<p>Per class, a small classifier is trained to tell real training images from half "
            "of that class's synthetic images and scored (ROC AUC, 95% CI) on real validation "
            "images against the other half: on pixels (gradient-boosted trees) and in the "
            "feature extractor's space (logistic regression). 0.5: it cannot tell them apart; "
            "near 1: it can, and a downstream classifier can use the difference as a shortcut "
            "instead of the anatomy.</p>") + shortcut_html(inputs.generate, names)
            + _figure(figs, "shortcut", "Per class, among each class's real count of its "
                      "best-scored candidates: the most synthetic-looking to a cross-fitted "
                      "real-vs-synthetic classifier (left), the most real-looking (right).",
                      original="figures/shortcut_original.png")),
        _section("GAN training", kv_table(_scalars(inputs.train_gan))
                 + _figure(figs, "gan_losses", "Losses by training step.")),
        _section("Variants on the test split",
                 selection_html(inputs.selection)
                 + variant_tables(ev) + mlflow_tables(mlflow_table, mlflow_note, order=list(ev))),
        _section("Per-class recall", recall_table(ev, names, test_counts)
                 + _figure(figs, "recall", "Per-class recall by variant.")),
        _section("ROC of the minority class", _figure(
            figs, "roc", "The minority class against all others. The AUC in the legend is that "
            "of this curve; the tables' ROC AUC is the macro "
            "one-vs-rest AUC over all classes (the same number for two classes).")),
        _section("Confusion matrices", _figure(
            figs, "confusion", "First seed. Rows: actual class; cells: test images; colour: "
            "share of the row (the recall along the diagonal).")),
        _section("How to read this", _template("how_to_read.html").substitute(
            n_seeds=esc(str(next(iter(ev.values())).get("n_seeds", "?"))))),
    ]
    if inputs.missing:
        items = "".join(f"<li><code>{esc(m)}</code></li>" for m in inputs.missing)
        parts.append(_section("Inputs not found", f"<ul>{items}</ul>"))
    return "\n".join(parts)


def _glance_html(inputs: ReportInputs, names: Sequence[str]) -> str:
    """One line above the verdict: which data, how many images per class, how big the test set."""
    p = inputs.prepare
    train, test = split_counts(p, "train"), split_counts(p, "test")
    if not train:
        return ""
    per_class = ", ".join(f"{esc(n)}: {train.get(str(c), 0)}" for c, n in enumerate(names))
    shape = p.get("image_shape") or []
    size = f"; images {shape[1]}×{shape[0]} px" if len(shape) >= 2 else ""
    tested = f"; test split {sum(test.values())} images" if test else ""
    return (f'<p class="glance"><b>Data</b>: {esc(str(p.get("source", "?")))}, {len(names)} '
            f"classes; training images per class: {per_class}{tested}{esc(size)}.</p>")


def _data_changes_html(prepare: Mapping[str, Any]) -> str:
    """What `prepare` did to the data (simulated imbalance, resizing, ...): never small print."""
    changes = prepare.get("data_changes") or []
    if not changes:
        return ""
    items = "".join(f"<li>{esc(c)}</li>" for c in changes)
    return (f'<div class="notice"><b>The pipeline changed the data before training</b>'
            f"<ul>{items}</ul></div>")


def _audit_warning_html(generate: Mapping[str, Any]) -> str:
    """generate's memorization audit could not calibrate its threshold: said, never small print."""
    warning = generate.get("memorization_warning")
    if not warning:
        return ""
    return (f'<div class="notice"><b>The memorization audit fell back to flagging copies only'
            f"</b><p>{esc(warning)}</p></div>")


def _legend_html(ev: Mapping[str, Any]) -> str:
    families = dict.fromkeys(str(m.get("variant", v)) for v, m in ev.items())  # in table order
    words = [f"<b>{esc(f)}</b>: {esc(VARIANT_WORDS[f])}" for f in families if f in VARIANT_WORDS]
    return f'<p class="legend">{"; ".join(words)}.</p>' if words else ""


def _figure(figs: Mapping[str, str], key: str, caption: str, *, original: str | None = None
            ) -> str:
    if key not in figs:
        return '<p class="missing">Not available: the input for this figure was not found.</p>'
    link = f' <a href="{esc(original)}">original PNG</a>' if original else ""
    return (f'<figure><img src="{esc(figs[key])}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}{link}</figcaption></figure>")


def _section(title: str, body: str) -> str:
    return f"<section><h2>{esc(title)}</h2>\n{body}\n</section>"


def _scalars(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A metrics file's entries as key-value rows: text and numbers as they are, nested metrics
    flattened the way MLflow names them (`a.b`, intervals as `<key>_lo`, `<key>_hi`)."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, prefix=f"{k}."))
        elif isinstance(v, (int, float, str)) or v is None:
            out[k] = v
    return out


def _resource(name: str) -> str:
    return (files("pipeline.report") / name).read_text(encoding="utf-8")


def _template(name: str) -> Template:
    """A package file with $placeholders, without the file's final newline."""
    return Template(_resource(name).rstrip("\n"))
