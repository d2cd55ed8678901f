"""bench/regime.py end to end: two tiny points of the minority-count grid through the real
`dvc exp run` in a temporary copy of the project, plus one that fails, collected into the page."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pytest

from conftest import REPO, VENV_BIN, copy_project, new_mlflow_db, run, stage_env, write_params



TINY = dict(
    features={"steps": 20, "width": 8, "device": "cpu"},
    train_gan={"steps": 10, "log_every": 5, "eval_every": 10, "checkpoint_every": 10,
               "device": "cpu"},
    dcgan={"width": 8, "batch_size": 32},
    generate={"device": "cpu", "candidates_per_image": 1},
    evaluate={"steps": 10, "width": 8, "device": "cpu", "seeds": 2, "bootstrap": 50,
              "variants": ["real", "class_weight", "gan"], "synthetic_ratios": ["balance"]},
)


@pytest.mark.e2e
def test_the_study_runs_dvc_experiments_and_collects_them(tmp_path: Path,
                                                          pytestconfig: pytest.Config) -> None:
    project = copy_project(tmp_path / "project")
    env = stage_env(tmp_path)
    new_mlflow_db(tmp_path / "mlflow.db", pytestconfig)
    write_params(project / "params.yaml", **TINY)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "tiny"]):
        assert run(["git", *cmd], cwd=project, env=env).returncode == 0
    # class "9" of the digits demo: 8 and 5 training images, and one count it does not have
    result = run([sys.executable, str(REPO / "bench" / "regime.py"), "--class", "9",
                  "--counts", "8", "5", "9999", "--methods", "dcgan", "--prefix", "t",
                  "--project", str(project)], cwd=project, env=env, timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr  # one point failed
    doc = json.loads((project / "regime" / "regime.json").read_text())
    rows = {r["count"]: r for r in doc["rows"]}
    assert [rows[c]["status"] for c in (8, 5, 9999)] == ["ok", "ok", "failed"]
    assert "class '9' (label 9) has only" in rows[9999]["error"]
    for c in (8, 5):
        r = rows[c]
        assert r["gan"] == "gan@balance" and r["name"] == f"t-9{c}-dcgan"
        lo, hi = r["balanced_accuracy_vs_class_weight_ci95"]
        assert -1 <= lo <= r["balanced_accuracy_vs_class_weight"] <= hi <= 1
        assert r["balanced_accuracy_vs_real_ci95"] is not None and r["mdd80"] > 0
    (sentence,) = doc["sentences"]
    assert sentence.startswith("dcgan: against class weighting, by minority training images, "
                               "the validation-chosen synthetic configuration ")
    assert sentence.endswith("; the run failed at 9999.")
    page = (project / "regime" / "regime.html").read_text()
    assert "data:image/png;base64," in page and sentence.split(":")[0] in page
    # every experiment stays in DVC, with its count
    shown = run([str(VENV_BIN / "dvc"), "exp", "show", "--json"], cwd=project, env=env)
    names = {rev["name"]: rev["data"]["params"]["params.yaml"]["data"]["prepare"]["keep_counts"]
             for b in json.loads(shown.stdout) for e in b.get("experiments") or []
             for rev in e["revs"]}
    assert names == {"t-98-dcgan": {"9": 8}, "t-95-dcgan": {"9": 5}} or \
        names == {"t-98-dcgan": {9: 8}, "t-95-dcgan": {9: 5}}
    # the MLflow runs of each point carry its count and method (nested runs too)
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("imbalance-gan")
    for c in (8, 5):
        tagged = client.search_runs([exp.experiment_id], filter_string=(
            f"tags.`prepare.keep_counts` = '9={c}' and tags.`train_gan.method` = 'dcgan'"))
        stages = {r.data.tags.get("stage") for r in tagged}
        assert {"prepare", "train_gan", "evaluate"} <= stages
        assert any(r.data.tags.get("kind") == "variant" for r in tagged)
    # a second call reruns nothing: the points exist, only the page is rebuilt
    again = run([sys.executable, str(REPO / "bench" / "regime.py"), "--class", "9", "--counts",
                 "8", "5", "--methods", "dcgan", "--prefix", "t", "--project", str(project)],
                cwd=project, env=env, timeout=300)
    assert again.returncode == 0 and "t-98-dcgan ..." not in again.stdout


def test_sentences_say_helped_hurt_cannot_tell_and_failed_per_method() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("regime", REPO / "bench" / "regime.py")
    regime = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regime)

    def row(method: str, count: int, ci: list[float] | None, status: str = "ok") -> dict:
        return {"method": method, "count": count, "status": status, "mdd80": 0.071,
                "balanced_accuracy_vs_class_weight_ci95": ci}

    rows = [row("dcgan", 10, [0.01, 0.08]), row("dcgan", 25, [-0.03, 0.04]),
            row("dcgan", 50, [-0.09, -0.01]), row("dcgan", 147, None, status="failed"),
            row("stylegan", 10, [-0.02, 0.05])]
    assert regime.sentences(rows) == [
        "dcgan: against class weighting, by minority training images, the validation-chosen "
        "synthetic configuration helped at 10; hurt at 50; could not be told apart from it at 25 "
        "(no difference larger than 7.1 points of balanced accuracy detectable at 80% power); "
        "the run failed at 147.",
        "stylegan: against class weighting, by minority training images, the validation-chosen "
        "synthetic configuration could not be told apart from it at 10 (no difference larger "
        "than 7.1 points of balanced accuracy detectable at 80% power)."]
