"""DVC stage `report`: the earlier stages' metrics and plots -> reports/index.html, one page that
says whether the synthetic images helped."""

from pathlib import Path

from pipeline.report import build_report, load_inputs
from pipeline.stage import Stage, run


def main(s: Stage) -> None:
    inputs = load_inputs(s.args.metrics, s.args.plots)
    # the params digest (no section) finds this execution's MLflow runs
    table, note = _mlflow_table(s.cfg.digest)
    s.open_run()  # the page is built inside the run: a failure marks it FAILED
    page = build_report(inputs, out_dir=s.args.out, mlflow_table=table, mlflow_note=note)
    figures = sorted((Path(s.args.out) / "figures").glob("*.png"))
    s.finish(None, [page, *((figure, "figures") for figure in figures)])
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
    run("report", main, {
        "metrics": "folder with prepare.json, train_gan.json, generate.json, evaluate.json",
        "plots": "folder with train_gan/, generate/ and evaluate/ plots",
        "out": "folder for index.html and figures/ (replaced as a whole)",
    })
