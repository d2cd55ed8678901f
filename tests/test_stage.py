"""pipeline/stage.py: the frame every stage runs in (config, device, MLflow run, metrics JSON,
one-line errors), through a real MLflow store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from conftest import write_params
from pipeline.errors import PipelineError
from pipeline.stage import Stage, n_classes_of, run, stage


def stage_args(tmp_path: Path, **sections) -> argparse.Namespace:
    params = write_params(tmp_path / "params.yaml", **sections)
    return argparse.Namespace(params=str(params), metrics=str(tmp_path / "out" / "m.json"))


def runs(experiment: str) -> list:
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id],
                                                     "tags.stage != ''")


def test_n_classes_of_spans_every_label_array() -> None:
    assert n_classes_of(np.array([0, 1, 1])) == 2
    assert n_classes_of(np.array([0, 2]), np.array([4, 1])) == 5


def test_finish_writes_the_metrics_in_order_and_logs_params_metrics_and_artifacts(
    tracking_env: str, tmp_path: Path,
) -> None:
    args = stage_args(tmp_path, seed=3, features={"steps": 7, "device": "cpu"})
    extra = tmp_path / "plot.csv"
    extra.write_text("a,b\n1,2\n")
    with stage("features", args, device="features") as s:
        assert (s.cfg.seed, s.cfg.features.steps, s.device.type) == (3, 7, "cpu")
        assert s.world.world_size == 1 and s.world.is_main
        s.log_params("features", "features", device_used="cpu")
        s.finish({"zeta": 1, "alpha": {"x": 2.5}, "device": "cpu", "ci": [0.1, 0.2]},
                 [extra, (extra, "tables")], step=4)
    text = Path(args.metrics).read_text()
    assert list(json.loads(text)) == ["zeta", "alpha", "device", "ci"]  # key order kept
    (found,) = runs(tracking_env)
    assert (found.info.run_name, found.info.status) == ("features", "FINISHED")
    assert found.data.tags["stage"] == "features"
    params = found.data.params
    assert (params["seed"], params["features.steps"], params["device_used"]) == ("3", "7", "cpu")
    assert not any(k.startswith("train_gan.") for k in params)  # only the sections named
    assert found.data.metrics == {"zeta": 1.0, "alpha.x": 2.5, "ci_lo": 0.1, "ci_hi": 0.2}
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    history = client.get_metric_history(found.info.run_id, "zeta")
    assert [m.step for m in history] == [4]
    assert {a.path for a in client.list_artifacts(found.info.run_id)} == {
        "m.json", "plot.csv", "tables"}


def test_tracked_logs_less_than_the_file_holds(tracking_env: str, tmp_path: Path) -> None:
    args = stage_args(tmp_path)
    with stage("evaluate", args) as s:
        s.finish({"headline": {"delta": 0.5}, "variants": {"real": {"acc": 0.9}}},
                 tracked={"headline": {"delta": 0.5}})
    assert json.loads(Path(args.metrics).read_text())["variants"] == {"real": {"acc": 0.9}}
    (found,) = runs(tracking_env)
    assert found.data.metrics == {"headline.delta": 0.5}


def test_the_run_opens_on_first_use_and_fails_with_the_stage(
    tracking_env: str, tmp_path: Path,
) -> None:
    args = stage_args(tmp_path)
    with pytest.raises(PipelineError, match="bad input"):  # before any use: no run at all
        with stage("prepare", args):
            raise PipelineError("bad input")
    assert runs(tracking_env) == []
    with pytest.raises(PipelineError, match="diverged"):
        with stage("prepare", args) as s:
            s.log_params("data")
            raise PipelineError("diverged")
    (found,) = runs(tracking_env)
    assert (found.info.run_name, found.info.status) == ("prepare", "FAILED")
    assert found.data.params["seed"] == "0"
    assert not Path(args.metrics).exists()


def test_run_turns_a_pipeline_error_into_one_line_and_exit_1(
    tracking_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    params = write_params(tmp_path / "params.yaml")
    seen: list[Stage] = []

    def main(s: Stage) -> None:
        seen.append(s)
        s.log_params()
        raise PipelineError("data/prepared/train.npz: not found; run `dvc repro prepare`")

    monkeypatch.setattr(sys, "argv", ["stages/demo.py", "--params", str(params), "--out", "x"])
    with pytest.raises(SystemExit) as e:
        run("demo", main, {"out": "an output"})
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err == "demo: error: data/prepared/train.npz: not found; run `dvc repro prepare`\n"
    assert seen[0].args.out == "x" and seen[0].name == "demo"
    (found,) = runs(tracking_env)
    assert (found.info.run_name, found.info.status) == ("demo", "FAILED")


def test_an_unknown_device_section_value_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:
    params = write_params(tmp_path / "params.yaml", generate={"device": "cuda"})
    monkeypatch.setattr(sys, "argv", ["stages/generate.py", "--params", str(params)])
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        run("generate", lambda s: None, {}, device="generate")
    assert e.value.code == 1
    assert capsys.readouterr().err.startswith("generate: error: device: cuda was asked for")
