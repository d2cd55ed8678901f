"""pipeline/tracking.py against a real (SQLite) MLflow store, queried with MlflowClient."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pipeline.tracking import flatten, pipeline_key, stage_run, tracking_uri


def client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def runs(experiment: str, filter_string: str = "") -> list:
    exp = client().get_experiment_by_name(experiment)
    return client().search_runs([exp.experiment_id], filter_string=filter_string) if exp else []


def test_stage_run_is_tagged_and_nested_under_a_pipeline_parent(
    tracking_env: str, tmp_path: Path
) -> None:
    with stage_run("prepare", params_digest="d1", root=tmp_path) as run:
        run.log_params({"seed": 0, "prepare.image_size": 8, "train_gan.betas": "0.5,0.999"})
        run.log_metrics({"n_images": {"train": 483, "val": 270}, "ratio": 12.4, "name": "x"})
        run_id = run.run_id
    stage = client().get_run(run_id)
    key = hashlib.sha256(b"d1:no-git").hexdigest()[:12]  # tmp_path is not a git checkout
    assert stage.info.run_name == "prepare"
    assert stage.info.status == "FINISHED"
    assert stage.data.tags["stage"] == "prepare"
    assert stage.data.tags["pipeline_run"] == key
    assert stage.data.tags["params_digest"] == "d1"
    assert stage.data.params == {"seed": "0", "prepare.image_size": "8",
                                 "train_gan.betas": "0.5,0.999"}
    assert stage.data.metrics == {"n_images.train": 483.0, "n_images.val": 270.0, "ratio": 12.4}
    parent = client().get_run(stage.data.tags["mlflow.parentRunId"])
    assert parent.info.run_name == f"pipeline-{key}"
    assert parent.data.tags["kind"] == "pipeline"
    assert parent.data.tags["pipeline_run"] == key
    assert parent.info.status == "FINISHED"
    assert stage.info.experiment_id == parent.info.experiment_id
    assert client().get_experiment(stage.info.experiment_id).name == tracking_env


def test_stage_runs_of_one_params_file_share_one_parent(tracking_env: str, tmp_path: Path) -> None:
    ids = {}
    for stage in ("prepare", "train_gan"):
        with stage_run(stage, params_digest="same", root=tmp_path) as run:
            ids[stage] = run.run_id
    with stage_run("prepare", params_digest="changed", root=tmp_path) as run:
        ids["prepare-2"] = run.run_id
    parents = {k: client().get_run(v).data.tags["mlflow.parentRunId"] for k, v in ids.items()}
    assert parents["prepare"] == parents["train_gan"]
    assert parents["prepare-2"] != parents["prepare"]
    assert len(runs(tracking_env, "tags.kind = 'pipeline'")) == 2
    assert len(runs(tracking_env, "tags.stage = 'prepare'")) == 2


def test_the_git_commit_is_part_of_the_pipeline_key(
    tracking_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    first = pipeline_key("abc", repo)
    assert first == hashlib.sha256(f"abc:{head}".encode()).hexdigest()[:12]
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "two"], cwd=repo, check=True)
    assert pipeline_key("abc", repo) != first
    monkeypatch.setenv("PIPELINE_RUN_ID", "nightly-42")
    assert pipeline_key("abc", repo) == "nightly-42"


def test_pipeline_run_id_overrides_the_key(
    tracking_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_RUN_ID", "ci-7")
    with stage_run("evaluate", params_digest="x", root=tmp_path) as run:
        run_id = run.run_id
    tags = client().get_run(run_id).data.tags
    assert tags["pipeline_run"] == "ci-7"
    assert client().get_run(tags["mlflow.parentRunId"]).info.run_name == "pipeline-ci-7"


def test_a_raised_exception_marks_the_run_failed(tracking_env: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="boom"), stage_run("train_gan", params_digest="f",
                                                           root=tmp_path) as run:
        run_id = run.run_id
        raise ValueError("boom")
    assert client().get_run(run_id).info.status == "FAILED"
    assert [r.info.status for r in runs(tracking_env, "tags.stage = 'train_gan'")] == ["FAILED"]


def test_child_runs_carry_the_augmentation_tag(tracking_env: str, tmp_path: Path) -> None:
    children = {}
    with stage_run("evaluate", params_digest="c", root=tmp_path) as run:
        for variant in ("real", "gan"):
            with run.child(variant, {"stage": "evaluate", "augmentation": variant}) as child:
                child.log_params({"variant": variant, "n_train": 20})
                child.log_history([(100, {"train_loss": 0.5}), (200, {"train_loss": 0.25})])
                child.log_metrics({"accuracy": 0.9, "roc_auc": float("nan"), "recall": {0: 1.0}})
                children[variant] = child.run_id
        parent_id = run.run_id
    stage_tags = client().get_run(parent_id).data.tags
    for variant, run_id in children.items():
        r = client().get_run(run_id)
        assert r.info.run_name == variant
        assert r.info.status == "FINISHED"
        assert r.data.tags["augmentation"] == variant
        assert r.data.tags["mlflow.parentRunId"] == parent_id
        assert r.data.tags["pipeline_run"] == stage_tags["pipeline_run"]
        assert r.data.params == {"variant": variant, "n_train": "20"}
        # latest value per metric; the NaN roc_auc is left out
        assert r.data.metrics == {"accuracy": 0.9, "recall.0": 1.0, "train_loss": 0.25}
        history = client().get_metric_history(run_id, "train_loss")
        assert [(m.step, m.value) for m in history] == [(100, 0.5), (200, 0.25)]
    found = runs(tracking_env, "tags.augmentation = 'gan'")
    assert [r.info.run_id for r in found] == [children["gan"]]


def test_log_artifact_and_dataset(tracking_env: str, tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"a": 1}')
    with stage_run("prepare", params_digest="a", root=tmp_path) as run:
        run.log_artifact(tmp_path / "m.json")
        run.log_dataset(name="digits-train", digest="f" * 64, source="data/prepared/train.npz",
                        context="train")
        run_id = run.run_id
    assert [a.path for a in client().list_artifacts(run_id)] == ["m.json"]
    inputs = client().get_run(run_id).inputs.dataset_inputs
    assert [(d.dataset.name, d.dataset.digest) for d in inputs] == [("digits-train", "f" * 36)]
    assert inputs[0].tags[0].value == "train"


def test_many_params_are_logged_in_batches(tracking_env: str, tmp_path: Path) -> None:
    params = {f"p{i:03d}": i for i in range(250)}  # MLflow takes at most 100 per call
    with stage_run("prepare", params_digest="b", root=tmp_path) as run:
        run.log_params(params)
        run_id = run.run_id
    assert client().get_run(run_id).data.params == {k: str(v) for k, v in params.items()}


def test_tracking_uri_defaults_to_a_sqlite_file_in_the_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri(tmp_path) == "http://mlflow.example:5000"


def test_flatten_gives_dotted_numeric_leaves() -> None:
    nested = {"a": {"b": {"c": 1}, "d": 2.5}, "e": 3, "name": "x", "flag": True,
              "nan": float("nan"), "inf": float("inf"), "ci95": [0.25, 0.75], "list": [1, 2, 3], "none": None,
              "recall": {0: 0.5, 1: 1}}
    flat = flatten(nested)
    assert flat == {"a.b.c": 1.0, "a.d": 2.5, "e": 3.0, "inf": math.inf,
                    "recall.0": 0.5, "recall.1": 1.0, "ci95_lo": 0.25, "ci95_hi": 0.75}
    assert all(isinstance(v, float) for v in flat.values())
    assert flatten({"x": 1}, prefix="train.") == {"train.x": 1.0}


def test_flatten_keeps_numpy_numbers() -> None:
    assert flatten({"n": np.int64(3), "f": np.float32(0.5)}) == {"n": 3.0, "f": 0.5}


def test_setting_tags_name_the_scarcity_and_method_and_children_inherit_them(
        tracking_env: str, tmp_path: Path) -> None:
    from pipeline.config import parse_config
    from pipeline.stage import setting_tags

    cfg = parse_config({"prepare": {"imbalance": "counts", "keep_counts": {"malignant": 25, 0: 9}},
                        "train_gan": {"method": "stylegan"}})
    tags = setting_tags(cfg)
    assert tags == {"prepare.imbalance": "counts", "prepare.keep_counts": "0=9,malignant=25",
                    "train_gan.method": "stylegan"}
    assert "prepare.keep_counts" not in setting_tags(parse_config({}))
    with stage_run("evaluate", params_digest="t", root=tmp_path, tags=tags) as run:
        with run.child("real", {"stage": "evaluate"}) as child:
            child_id = run_id = child.run_id
        run_id = run.run_id
    for rid in (run_id, child_id):
        got = client().get_run(rid).data.tags
        assert {k: got.get(k) for k in tags} == tags
    assert client().get_run(run_id).data.tags["stage"] == "evaluate"
