"""Tracking against a real MLflow tracking server on loopback (the team set-up in the README)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import new_mlflow_db
from pipeline.tracking import stage_run, variant_table

pytestmark = pytest.mark.slow  # starts `mlflow server`


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, pytestconfig):
    root = tmp_path_factory.mktemp("mlflow_server")
    new_mlflow_db(root / "server.db", pytestconfig)
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    # Without its job runner (seven huey consumer processes, for GenAI jobs the pipeline never
    # submits) the server starts in half the time and stops on SIGTERM at once.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root}/server.db",
         "--artifacts-destination", (root / "artifacts").as_uri(), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,  # its own process group: stopped with every worker below
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("mlflow server did not become healthy within 90 s")
    yield url, root
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_stage_runs_land_on_the_server(server, tmp_path, monkeypatch):
    url, root = server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("PIPELINE_RUN_ID", "server-test")
    report = tmp_path / "evaluate.json"
    report.write_text('{"real": {"balanced_accuracy": 0.5}}\n')
    with stage_run("evaluate", params_digest="d1", root=tmp_path) as run:
        run.log_params({"evaluate.steps": 10})
        run.log_metrics({"n": 3})
        run.log_artifact(report)
        for variant, score in (("real", 0.61), ("gan", 0.72)):
            with run.child(variant, {"augmentation": variant, "kind": "variant"}) as child:
                child.log_metrics({"balanced_accuracy": score,
                                   "balanced_accuracy_ci95": [score - 0.1, score + 0.1]})

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name("imbalance-gan")
    stage = client.search_runs([exp.experiment_id], "tags.stage = 'evaluate'")
    assert len(stage) == 1 and stage[0].info.status == "FINISHED"
    assert stage[0].data.params["evaluate.steps"] == "10" and stage[0].data.metrics["n"] == 3
    assert stage[0].data.tags["pipeline_run"] == "server-test"
    # the artifact went through the server into its artifact store, not to a local folder
    assert [f.path for f in client.list_artifacts(stage[0].info.run_id)] == ["evaluate.json"]
    assert list((root / "artifacts").rglob("evaluate.json"))
    assert not (tmp_path / "mlartifacts").exists() and not (tmp_path / "mlflow.db").exists()

    table = variant_table("d1", root=tmp_path)
    assert sorted(table["variant"]) == ["gan", "real"]
    row = table.set_index("variant").loc["gan"]
    assert row["balanced_accuracy"] == pytest.approx(0.72)
    assert row["balanced_accuracy_ci95_lo"] == pytest.approx(0.62)
