"""DATASHEET.md: the export described under the headings of Gebru et al. 2021, "Datasheets for
Datasets", that apply to an augmented dataset made by this pipeline.

Every figure comes from the stages' metrics JSONs (prepare, train_gan, generate, evaluate) or from
the export's own rows, in `| key | value |` tables (tests/test_export.py reads them back and
compares them with metrics/*.json). The test verdict is the report's (pipeline/report/verdict.py),
so the datasheet and the report never disagree; a plain warning leads when it is not "helped".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.export.rows import ExportSet
from pipeline.report.verdict import outcome, verdict

CITATION = ("Gebru, T. et al. (2021). Datasheets for Datasets. Communications of the ACM 64(12), "
            "86-92.")
FILES = {"folder": "`<split>/<class>/*.png` (torchvision `ImageFolder` on `train/`) and "
                   "`manifest.csv` (one row per image, its provenance)",
         "csv": "`images/<split>/*.png` and `dataset.csv` (path,label,split[,patient_id] and the "
                "provenance columns)",
         "npz": "`dataset.npz` (MedMNIST keys `<split>_images`, `<split>_labels`, and "
                "`<split>_synthetic`) and `manifest.csv` (one row per image, its provenance)"}


@dataclass(frozen=True)
class SheetInputs:
    """What the datasheet describes: the export, the stages' metrics and the settings used."""

    export: ExportSet
    fmt: str
    prepare: Mapping[str, Any]
    train_gan: Mapping[str, Any]
    generate: Mapping[str, Any]
    evaluate: Mapping[str, Any] | None  # None: evaluate is not in the pipeline
    source: Mapping[str, str]  # data.source, data.path, and the hashes of the data
    synthesizer_settings: Mapping[str, Any] = field(default_factory=dict)  # params, flattened


def f4(x: Any) -> str:
    return "n/a" if not isinstance(x, (int, float)) or x != x else f"{x:.4f}"


def table(rows: Iterable[tuple[str, Any]], head: tuple[str, str] = ("", "")) -> list[str]:
    return [f"| {head[0]} | {head[1]} |", "|---|---|",
            *(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows), ""]


def datasheet(d: SheetInputs) -> str:
    sections = [_title(d), _motivation(d), _composition(d), _collection(d), _preprocessing(d),
                _audit(d), _validation(d), _uses(d), _maintenance(d)]
    return "\n".join(line for s in sections for line in s)


def warning(d: SheetInputs) -> str | None:
    """The plain warning atop the datasheet, or None when the synthetic images helped."""
    sel = (d.evaluate or {}).get("selection") or {}
    h = (d.evaluate or {}).get("headline") or {}
    if d.export.chosen is None:
        why = ("evaluate is not in the pipeline" if d.evaluate is None
               else "evaluate chose no synthetic configuration (no gan variant was evaluated)")
        return (f"**Warning: not validated.** {why[0].upper() + why[1:]}, so the synthetic rows "
                "are generate's balance-target set, and nothing has shown that they help a "
                "classifier.")
    result = outcome(h) if h else "cannot tell"
    base = sel.get("baseline") or "the best variant without synthetic images"
    return {
        "helped": None,
        "worse": (f"**Warning: the synthetic images did harm.** On the test split, a classifier "
                  f"trained on this set did worse than {base}, beyond test-set and seed noise. "
                  f"Prefer {base}."),
        "no benefit": (f"**Warning: no benefit.** On the test split, training on this set was "
                       f"not distinguishable from {base}, and the interval is narrow enough to "
                       "rule out a gain of 2 points: the synthetic images are not worth using."),
        "cannot tell": (f"**Warning: cannot tell.** This run cannot say whether the synthetic "
                        f"images help: on the test split the difference from {base} is within "
                        "noise, and the interval is too wide to rule out a gain or a loss."),
    }[result]


def _title(d: SheetInputs) -> list[str]:
    what = (f"the training set of `{d.export.chosen}`, chosen on validation"
            if d.export.chosen else "generate's balance-target set (no validated choice)")
    lines = ["# Datasheet: augmented dataset", "",
             f"Real images plus synthetic images ({what}), with the validation and test splits "
             "unchanged. Written by the pipeline's `export` stage; headings after "
             f"{CITATION}", ""]
    w = warning(d)
    return lines + ([f"> {w}", ""] if w else [])


def _motivation(d: SheetInputs) -> list[str]:
    return ["## Motivation", "",
            "Made to train image classifiers on a class-imbalanced dataset: the minority classes "
            "are topped up with images from a generative model trained on the real training "
            "split, at the share that a validation split chose (never the test split).", ""]


def _composition(d: SheetInputs) -> list[str]:
    ex, names = d.export, d.export.class_names
    k = len(names)
    train = ex.parts["train"]
    real, synth = train.counts(k, synthetic=False), train.counts(k, synthetic=True)
    val, test = ex.parts["val"].counts(k), ex.parts["test"].counts(k)
    rows = ["| class | real train | synthetic train | train | val | test |",
            "|---|---|---|---|---|---|"]
    rows += [f"| {names[c]} | {real[c]} | {synth[c]} | {real[c] + synth[c]} | {val[c]} | "
             f"{test[c]} |" for c in range(k)]
    rows.append(f"| total | {sum(real.values())} | {sum(synth.values())} | {len(train.labels)} "
                f"| {len(ex.parts['val'].labels)} | {len(ex.parts['test'].labels)} |")
    shape = "x".join(map(str, train.images.shape[1:]))
    patients = ("kept for real rows (column `patient_id`); synthetic rows have none"
                if train.patient_ids is not None else "none (the input had no patient ids)")
    return ["## Composition", "", "Images per class and split (each row of the export is "
            "flagged `synthetic` true or false):", "", *rows, "",
            *table([("format", d.fmt), ("files", FILES[d.fmt]), ("image shape (H x W x C)", shape),
                    ("pixel type", "uint8 (8-bit)"), ("patient ids", patients),
                    ("synthetic rows", int(train.synthetic.sum()))], ("item", "value"))]


def _collection(d: SheetInputs) -> list[str]:
    tg, gen = d.train_gan, d.generate
    settings = ", ".join(f"{k}={v}" for k, v in d.synthesizer_settings.items()) or "n/a"
    return ["## Collection process", "",
            "Real images: read from the source below by the `prepare` stage. Synthetic images: "
            "drawn from the generator, each from its own seed, audited for memorisation and "
            "scored (the real-data classifier's probability of the intended class x k-NN "
            "realism); the best-scored are used.", "",
            *table([("data.source", d.source.get("source", "")),
                    ("data.path", d.source.get("path", "") or "n/a"),
                    *((k, v) for k, v in d.source.items() if k not in ("source", "path")),
                    ("synthesis method", tg.get("method", "n/a")),
                    ("synthesizer settings", settings),
                    ("training steps", tg.get("steps", "n/a")),
                    ("kept generator step", tg.get("best_step", "n/a")),
                    ("fid_domain", f4(tg.get("fid_domain"))),
                    ("checkpoint sha256", gen.get("checkpoint_sha256", d.export.checkpoint_sha256)),
                    ("candidates drawn", gen.get("candidates", "n/a")),
                    ("acceptance rate", f4(gen.get("acceptance_rate"))),
                    ("mean score of generate's shipped set", f4(gen.get("score_mean_shipped"))),
                    ], ("item", "value")),
            "`fid_domain` is measured in the project's own feature space (a small CNN trained on "
            "the real training split), not Inception's: compare it only between runs of this "
            "pipeline on the same data.", ""]


def _preprocessing(d: SheetInputs) -> list[str]:
    p = d.prepare
    changes = list(p.get("data_changes") or []) or ["None: the images are as read."]
    return ["## Preprocessing", "",
            "What `prepare` changed (metrics/prepare.json):", "",
            *(f"- {c}" for c in changes), "",
            *table([("split method", p.get("split_method", "n/a")),
                    ("imbalance", p.get("imbalance", "n/a")),
                    ("imbalance ratio (train)", p.get("imbalance_ratio", "n/a")),
                    ("native sizes", ", ".join(f"{n} at {s}" for s, n in
                                               (p.get("native_sizes") or {}).items()) or "n/a")],
                   ("item", "value")),
            "Pixels: the export holds the images the pipeline trained on, as 8-bit. 16-bit and "
            "other deep images were scaled by `prepare` by each image's own range (min..max to "
            "0..255); DICOM went through its modality LUT and VOI LUT (window), MONOCHROME1 "
            "inverted, then the same scaling; everything is written as 8-bit PNG (or uint8 "
            "arrays). The original files at `data.path` are untouched.", ""]


def _audit(d: SheetInputs) -> list[str]:
    g = d.generate
    return ["## Memorisation audit", "",
            "A synthetic image is flagged as memorised when it lies closer (in the feature space "
            "above) to a real training image than 99% of real validation images do: the "
            "threshold is the 1st percentile of the validation images' nearest-training "
            "distances (the test split is never looked at).", "",
            *table([("memorization rate", f4(g.get("memorization_rate"))),
                    ("memorization threshold", f4(g.get("memorization_threshold"))),
                    ("memorized candidates", g.get("memorized_candidates", "n/a")),
                    ("rejected as memorized", g.get("rejected_memorized", "n/a")),
                    ("memorization rate of generate's shipped set",
                     f4(g.get("memorization_rate_shipped")))], ("item", "value"))]


def _validation(d: SheetInputs) -> list[str]:
    ev = d.evaluate or {}
    sel, h = ev.get("selection") or {}, ev.get("headline") or {}
    if not d.export.chosen:
        return ["## Validation and test", "", warning(d) or "", ""]
    ci = h.get("balanced_accuracy_delta_ci95") or [None, None]
    rows = [("chosen configuration", sel.get("gan")), ("chosen baseline", sel.get("baseline")),
            ("chosen by", sel.get("by")), ("outcome", outcome(h) if h else "cannot tell"),
            ("balanced accuracy difference (test)", f4(h.get("balanced_accuracy_delta"))),
            ("its 95% interval", f"[{f4(ci[0])}, {f4(ci[1])}]"),
            ("minority recall difference (test)", f4(h.get("minority_recall_delta"))),
            ("test images", h.get("n_test", "n/a")), ("seeds", h.get("n_seeds", "n/a"))]
    text = verdict(ev.get("variants") or {}, class_names=d.export.class_names,
                   test_counts={str(c): n for c, n in
                                d.export.parts["test"].counts(len(d.export.class_names)).items()},
                   headline=h)
    return ["## Validation and test", "",
            "The synthetic share was chosen on the validation split; the test split was scored "
            "once (metrics/evaluate.json).", "", *table(rows, ("item", "value")),
            f"Verdict (as in the report): {text}", ""]


def _uses(d: SheetInputs) -> list[str]:
    ex = d.export
    notes = ["Train on `train`, choose settings on `val`, and score `test` once; the synthetic "
             "rows must never be moved into `val` or `test`.",
             "A research dataset: not validated for clinical use."]
    if ex.pretrain:
        notes.insert(0, f"`{ex.chosen}` pretrains on the synthetic rows and then fine-tunes on "
                     "the real rows: use the two groups in that order, not mixed.")
    if ex.parts["train"].sample_weights is not None:
        notes.insert(0, f"`{ex.chosen}` weights each row's loss: column `sample_weight` (real "
                     "rows 1, synthetic rows less); use it as a per-sample loss weight.")
    if ex.class_weights is not None:
        weights = ", ".join(f"{n}: {w:.4f}" for n, w in zip(ex.class_names, ex.class_weights))
        notes.insert(0, f"`{ex.chosen}` trains with these loss weights per class: {weights}.")
    return ["## Uses", "", *(f"- {n}" for n in notes), ""]


def _maintenance(d: SheetInputs) -> list[str]:
    return ["## Distribution and maintenance", "",
            "A DVC output (`data/export`): `dvc repro` rewrites it, with this datasheet, whenever "
            "the data, the settings or the code change; every synthetic row can be redrawn from "
            "its seed and the checkpoint above. Nothing here is for hand editing.", ""]

