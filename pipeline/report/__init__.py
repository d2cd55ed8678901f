"""The report stage's work: one self-contained HTML page that says, from the numbers, whether the
synthetic images helped.

- `inputs`: `load_inputs` reads what the earlier stages wrote into a `ReportInputs`.
- `verdict`: the plain-language summary, computed from the numbers.
- `figures`: matplotlib figures built on `Figure` objects (no pyplot state, no display needed).
- `tables`: the HTML tables; `page`: `build_report` assembles the page (templates and CSS are
  package files) and writes it with its figures, atomically.

Nothing here talks to MLflow: the stage passes the MLflow comparison table in.
"""

from pipeline.report.figures import (
    plot_balanced_accuracy, plot_class_counts, plot_confusions, plot_grid, plot_losses,
    plot_recall, plot_roc,
)
from pipeline.report.inputs import ReportInputs, load_inputs
from pipeline.report.page import build_report
from pipeline.report.verdict import verdict

__all__ = [
    "ReportInputs", "build_report", "load_inputs", "plot_balanced_accuracy", "plot_class_counts",
    "plot_confusions", "plot_grid", "plot_losses", "plot_recall", "plot_roc", "verdict",
]
