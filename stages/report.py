"""DVC stage `report`: the earlier stages' metrics and plots -> reports/index.html, one page that
says whether the synthetic images helped."""

import argparse
from pathlib import Path

from pipeline.cli import run_stage
from pipeline.config import load_config
from pipeline.report import build_report, load_inputs


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)  # only for the digest that finds this execution's MLflow runs
    inputs = load_inputs(args.metrics, args.plots)
    table, note = _mlflow_table(cfg.digest)
    from pipeline.tracking import stage_run

    with stage_run("report", params_digest=cfg.digest) as run:
        page = build_report(inputs, out_dir=args.out, mlflow_table=table, mlflow_note=note)
        run.log_artifact(page)
        for figure in sorted((Path(args.out) / "figures").glob("*.png")):
            run.log_artifact(figure, "figures")
    print(f"report: wrote {page}" + ("" if table is not None else f" ({note})"))


def _mlflow_table(digest: str):  # -> (DataFrame | None, why it is None)
    """The evaluate variant runs of this pipeline execution, or None and the reason: the report
    then falls back to metrics/evaluate.json, which holds the same numbers."""
    try:
        from pipeline.tracking import variant_table

        table = variant_table(digest)
    except ImportError as e:
        return None, f"tracking not available: {e}"
    except Exception as e:  # noqa: BLE001 - a store that cannot answer must not block the page
        first_line = (str(e).splitlines() or [""])[0][:200]
        return None, f"MLflow query failed: {type(e).__name__}: {first_line}"
    if table is None or table.empty:
        return None, "no evaluate variant runs of this pipeline execution in the MLflow store"
    return table, ""


if __name__ == "__main__":
    run_stage("report", main, {
        "metrics": "folder with prepare.json, train_gan.json, generate.json, evaluate.json",
        "plots": "folder with train_gan/, generate/ and evaluate/ plots",
        "out": "folder for index.html and figures/ (replaced as a whole)",
    })
