"""What the report reads: the earlier stages' metrics JSONs, the CSVs behind its figures and the
stages' image grids."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.report.fmt import is_number, split_counts

# metrics/<file> -> the stage that writes it (for "run `dvc repro <stage>`" messages)
REQUIRED_METRICS = {"prepare.json": "prepare", "train_gan.json": "train_gan",
                    "generate.json": "generate", "evaluate.json": "evaluate"}
GRIDS = {"samples": "train_gan/samples.png", "real_vs_synthetic": "generate/real_vs_synthetic.png",
         "closest_pairs": "generate/closest_pairs.png", "selection": "generate/selection.png",
         "shortcut": "generate/shortcut.png"}


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
    losses: pd.DataFrame | None = None  # step, the method's *_loss columns[, d_real, d_fake]
    roc: Mapping[str, pd.DataFrame] = field(default_factory=dict)  # variant -> fpr, tpr
    # variant -> one row per test image: actual, predicted
    confusion: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    grids: Mapping[str, Path] = field(default_factory=dict)  # GRIDS key -> PNG file
    missing: tuple[str, ...] = ()  # optional inputs that were not there

    @property
    def class_names(self) -> list[str]:
        n = int(self.prepare.get("n_classes") or len(split_counts(self.prepare, "train")))
        names = list(self.prepare.get("class_names") or [])
        return names if len(names) == n else [str(c) for c in range(n)]


def load_inputs(metrics_dir: str | Path, plots_dir: str | Path) -> ReportInputs:
    """Read the earlier stages' outputs. A missing or broken metrics file, or a broken optional
    file, raises PipelineError; a missing optional file (a variant without its ROC CSV) is
    listed in `missing` and its part of the report says so."""
    metrics_dir, plots_dir = Path(metrics_dir), Path(plots_dir)
    docs = {name: read_json(metrics_dir / name, stage) for name, stage in REQUIRED_METRICS.items()}
    doc = docs["evaluate.json"]
    evaluate = doc.get("variants")
    _check_evaluate(evaluate, metrics_dir / "evaluate.json")
    missing: list[str] = []

    def optional_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame | None:
        if not path.is_file():
            missing.append(str(path))
            return None
        return _read_csv(path, columns)

    losses = optional_csv(plots_dir / "train_gan/losses.csv", ["step"])
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


def read_json(path: Path, stage: str) -> dict[str, Any]:
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
    """Every variant has its balanced accuracy and says whether it trained on synthetic images
    (the verdict groups variants by that flag, never by their names)."""
    if not isinstance(evaluate, dict) or not evaluate:
        raise PipelineError(f"{path}: no variants in it; rerun `dvc repro evaluate`")
    for name, m in evaluate.items():
        if not isinstance(m, dict) or not is_number(m.get("balanced_accuracy")):
            raise PipelineError(f"{path}: variant {name!r} has no balanced_accuracy; rerun "
                                "`dvc repro evaluate`")
        if not isinstance(m.get("synthetic"), bool):
            raise PipelineError(f"{path}: variant {name!r} does not say whether it used "
                                "synthetic images (no true/false `synthetic`); rerun "
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
