"""stages/report.py through its command line, in-process, with MLflow faked."""

from __future__ import annotations

import contextlib
import runpy
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from report_fixtures import BINARY, REPO, binary_evaluate, table, visible, write_outputs

import pipeline.report.page
import pipeline.tracking

ARGS = ["--metrics", "metrics", "--plots", "plots", "--out", "reports"]


class FakeRun:
    def __init__(self) -> None:
        self.artifacts: list[tuple[str, str | None]] = []

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        assert Path(path).is_file()
        self.artifacts.append((Path(path).name, artifact_path))


@pytest.fixture
def fake_tracking(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """stage_run and variant_table replaced: records what the stage logs and which digest it
    asked for."""
    seen: dict[str, Any] = {"runs": [], "table": pd.DataFrame()}

    @contextlib.contextmanager
    def stage_run(stage: str, *, params_digest: str, root: str | Path = ".", tags=None):
        run = FakeRun()
        seen["runs"].append((stage, params_digest, run))
        yield run

    def variant_table(params_digest: str, root: str | Path = ".") -> pd.DataFrame:
        seen["digest"] = params_digest
        if isinstance(seen["table"], Exception):
            raise seen["table"]
        return seen["table"]

    monkeypatch.setattr(pipeline.tracking, "stage_run", stage_run)
    monkeypatch.setattr(pipeline.tracking, "variant_table", variant_table, raising=False)
    return seen


def run_stage_here(root: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    (root / "params.yaml").write_text("seed: 0\n")
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["stages/report.py", *ARGS])
    code = 0
    try:
        runpy.run_path(str(REPO / "stages/report.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stage_writes_the_report_and_logs_it(
    tmp_path: Path, fake_tracking: dict, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate())
    fake_tracking["table"] = pd.DataFrame({"variant": ["gan"], "minority_recall": [0.7654]})
    code, out, err = run_stage_here(root, monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert out == "report: wrote reports/index.html\n"
    (stage, digest, run), = fake_tracking["runs"]
    assert stage == "report" and digest == fake_tracking["digest"] and len(digest) == 64
    assert ("index.html", None) in run.artifacts
    logged = sorted(name for name, where in run.artifacts if where == "figures")
    assert logged == sorted(p.name for p in (root / "reports/figures").glob("*.png"))
    assert len(logged) == 16  # 11 figures + the 5 original grids
    assert table((root / "reports/index.html").read_text(), "metric")["minority_recall"] == \
        ["0.765"]


def test_stage_falls_back_to_evaluate_json_when_mlflow_cannot_answer(
    tmp_path: Path, fake_tracking: dict, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate())
    monkeypatch.setattr(pipeline.report.page, "save_figures", lambda *args: {})  # tested above
    fake_tracking["table"] = ConnectionError("server down\nmore detail")
    code, out, _ = run_stage_here(root, monkeypatch, capsys)
    assert code == 0
    assert "MLflow query failed: ConnectionError: server down" in out
    text = visible((root / "reports/index.html").read_text())
    assert "MLflow table unavailable (MLflow query failed: ConnectionError: server down)" in text
    assert "Summary gan has the highest balanced accuracy" in text


def test_stage_without_evaluate_json_fails_with_one_line(
    tmp_path: Path, fake_tracking: dict, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate(),
                         skip=("evaluate.json",))
    code, out, err = run_stage_here(root, monkeypatch, capsys)
    assert code == 1 and out == ""
    assert err == ("report: error: metrics/evaluate.json: not found; run the stage that writes it "
                   "(`dvc repro evaluate`)\n")
    assert not (root / "reports").exists()
    assert fake_tracking["runs"] == []  # failed before opening an MLflow run
