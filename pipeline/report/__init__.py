"""The report stage's work: one self-contained HTML page that says, from the numbers, whether the
synthetic images helped.

- `inputs`: `load_inputs` reads what the earlier stages wrote into a `ReportInputs`.
- `verdict`: the plain-language summary, computed from the numbers.
- `figures`: matplotlib figures built on `Figure` objects (no pyplot state, no display needed).
- `tables`: the HTML tables; `page`: `build_report` assembles the page (templates and CSS are
  package files) and writes it with its figures, atomically.

Nothing here talks to MLflow: the stage passes the MLflow comparison table in.
"""

import importlib
from typing import Any

from pipeline.report.verdict import verdict  # eager: the name is also its module's (light)

# name -> its module; loaded on first use (PEP 562), so that a stage needing only the verdict
# (export's datasheet) does not import matplotlib
_WHERE = {
    "plot_balanced_accuracy": "figures", "plot_class_counts": "figures",
    "plot_confusions": "figures", "plot_grid": "figures", "plot_losses": "figures",
    "plot_recall": "figures", "plot_roc": "figures", "ReportInputs": "inputs",
    "load_inputs": "inputs", "build_report": "page",
}
__all__ = [
    "ReportInputs", "build_report", "load_inputs", "plot_balanced_accuracy", "plot_class_counts",
    "plot_confusions", "plot_grid", "plot_losses", "plot_recall", "plot_roc", "verdict",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pipeline.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pipeline.report.{_WHERE[name]}"), name)
