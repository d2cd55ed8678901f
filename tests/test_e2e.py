"""End to end: the real `dvc repro` on a temporary copy of the project with tiny params, checked
through its outputs and the MLflow store it logged to."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import (
    VENV_BIN, copy_project, files_under, new_mlflow_db, run, stage_env, write_params,
)
from report_fixtures import kv, png_size, section, table
from pipeline.artifacts import file_sha256, load_split
from pipeline.synthesize import quantize
from pipeline.synthesizers.base import load_synthesizer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DVC = str(VENV_BIN / "dvc")
STAGES = ["prepare", "features", "train_gan", "generate", "evaluate", "export", "report"]
OUTPUT_DIRS = ("data", "models", "metrics", "plots")
TINY = dict(
    features={"steps": 30, "width": 8, "device": "cpu"},
    train_gan={"steps": 20, "log_every": 5, "eval_every": 10, "checkpoint_every": 5,
               "device": "cpu"},
    dcgan={"width": 8, "batch_size": 32},
    generate={"device": "cpu"},
    evaluate={"steps": 20, "width": 8, "device": "cpu", "seeds": 2, "bootstrap": 100},
)


class Pipeline:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = root / "project"
        self.env = stage_env(root)

    def dvc(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = run([DVC, *args], cwd=self.project, env=self.env, timeout=420)
        assert result.returncode == 0, (
            f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def json(self, rel: str) -> dict:
        return json.loads((self.project / rel).read_text())

    def outputs(self) -> dict[str, bytes]:
        return {f"{d}/{name}": content for d in OUTPUT_DIRS
                for name, content in files_under(self.project / d).items()}

    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(self.env["MLFLOW_TRACKING_URI"])

    def runs(self, filter_string: str = "") -> list:
        exp = self.client().get_experiment_by_name("imbalance-gan")
        return self.client().search_runs([exp.experiment_id], filter_string=filter_string)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Pipeline:
    p = Pipeline(tmp_path_factory.mktemp("e2e"))
    new_mlflow_db(p.root / "mlflow.db", pytestconfig)
    copy_project(p.project)
    write_params(p.project / "params.yaml", **TINY)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "tiny pipeline"]):
        assert run(["git", *cmd], cwd=p.project, env=p.env).returncode == 0
    p.first = p.dvc("repro")
    p.snapshot = p.outputs()
    return p


def test_every_stage_ran_once(pipeline: Pipeline) -> None:
    out = pipeline.first.stdout
    assert [s for s in STAGES if f"Running stage '{s}'" in out] == STAGES
    assert (pipeline.project / "dvc.lock").is_file()


def test_prepared_splits(pipeline: Pipeline) -> None:
    report = pipeline.json("metrics/prepare.json")
    sizes = {}
    for split in ("train", "val", "test"):
        images, labels = load_split(pipeline.project / f"data/prepared/{split}.npz")
        assert images.shape == (len(labels), 8, 8, 1) and images.dtype == np.uint8
        assert labels.dtype == np.int64 and labels.min() == 0 and labels.max() == 9
        counts = np.bincount(labels, minlength=10)
        assert {str(c): int(n) for c, n in enumerate(counts)} == report["counts"][split]
        sizes[split] = len(labels)
    assert sizes["val"] == sizes["test"] == 269  # per class round(0.15 * n_c) of 1,797 digits
    train_counts = list(report["counts"]["train"].values())
    assert train_counts[0] > 10 * train_counts[9]  # long-tailed as configured


def test_synthetic_images_fill_every_class_to_the_majority(pipeline: Pipeline) -> None:
    g = pipeline.json("metrics/generate.json")
    _, train_labels = load_split(pipeline.project / "data/prepared/train.npz")
    images, labels = load_split(pipeline.project / "data/synthetic/synthetic.npz")
    assert images.shape == (len(labels), 8, 8, 1) and images.dtype == np.uint8
    before = np.bincount(train_labels, minlength=10)
    added = np.bincount(labels, minlength=10)
    after = before + added
    assert np.all(after == before.max())
    assert added[np.argmax(before)] == 0
    assert g["target"] == "majority"
    assert g["n_synthetic"] == len(labels)
    assert g["counts_before"] == {str(c): int(n) for c, n in enumerate(before)}
    assert g["synthetic_per_class"] == {str(c): int(n) for c, n in enumerate(added)}
    assert g["counts_after"] == {str(c): int(n) for c, n in enumerate(after)}


def test_manifest_lets_each_synthetic_image_be_regenerated(pipeline: Pipeline) -> None:
    project = pipeline.project
    manifest = pd.read_csv(project / "data/synthetic/manifest.csv")
    images, labels = load_split(project / "data/synthetic/synthetic.npz")
    assert list(manifest.columns) == ["index", "label", "seed", "score", "checkpoint_sha256"]
    assert len(manifest) == len(labels)
    assert manifest["score"].between(0, 1).all()
    assert manifest["index"].tolist() == list(range(len(labels)))
    np.testing.assert_array_equal(manifest["label"].to_numpy(), labels)
    assert manifest["seed"].is_unique
    sha = file_sha256(project / "models/generator.pt")
    assert set(manifest["checkpoint_sha256"]) == {sha}
    assert pipeline.json("metrics/generate.json")["checkpoint_sha256"] == sha
    # any row, on its own: sample(label, seed) from the recorded checkpoint, quantised to the
    # digits' grey levels recorded in generate.json
    synthesizer = load_synthesizer(project / "models/generator.pt", device=torch.device("cpu"))
    rows = manifest.sample(5, random_state=0)
    levels = pipeline.json("metrics/generate.json")["grey_levels"]
    assert len(levels) == 17  # the digits' 0..16 scaled to 0..255
    again = quantize(synthesizer.sample(rows["label"].to_numpy().copy(),
                                        rows["seed"].to_numpy().copy()), levels)
    np.testing.assert_array_equal(again, images[rows["index"].to_numpy()])


def test_generator_checkpoint_and_training_curves(pipeline: Pipeline) -> None:
    project = pipeline.project
    ckpt = torch.load(project / "models/generator.pt", weights_only=True)
    assert (ckpt["step"], ckpt["method"], ckpt["arch"], ckpt["seed"]) == (20, "dcgan", "dcgan", 0)
    assert ckpt["model_kwargs"]["n_classes"] == 10 and ckpt["model_kwargs"]["width"] == 8
    m = pipeline.json("metrics/train_gan.json")
    assert (m["steps"], m["n_classes"], m["device"]) == (20, 10, "cpu")
    losses = pd.read_csv(project / "plots/train_gan/losses.csv")
    assert losses["step"].tolist() == [5, 10, 15, 20]
    assert np.isfinite(losses[["d_loss", "g_loss"]].to_numpy()).all()
    assert m["final_d_loss"] == pytest.approx(losses["d_loss"].iloc[-1])
    # quality at steps 10 and 20; the generator kept is the one with the lower fid_domain
    quality = pd.read_csv(project / "plots/train_gan/quality.csv")
    assert quality["step"].tolist() == [10, 20]
    best = quality.loc[quality["fid_domain"].idxmin()]
    assert m["best_step"] == ckpt["best_step"] == best["step"]
    assert m["fid_domain"] == pytest.approx(best["fid_domain"])
    for key in ("precision", "recall", "density", "coverage", "tstr_balanced_accuracy"):
        assert 0.0 <= m[key] <= (10.0 if key == "density" else 1.0), key
    assert m["fid_domain"] > 0 and "fid_domain/class_9" in m
    features = pipeline.json("metrics/features.json")
    assert m["trtr_balanced_accuracy"] == features["val_balanced_accuracy"]
    assert "test_balanced_accuracy" not in features  # the test split is evaluate's alone
    # the resumable state sits outside DVC's outputs and holds the finished run
    state = torch.load(project / "checkpoints/train_gan.pt", weights_only=True)
    assert state["step"] == 20 and len(state["history"]) == 4


def test_generate_audits_memorization(pipeline: Pipeline) -> None:
    g = pipeline.json("metrics/generate.json")
    assert g["candidates"] >= g["accepted"] >= g["n_synthetic"]
    assert 0.0 <= g["memorization_rate"] <= 1.0 and g["memorization_threshold"] > 0
    assert g["memorization_rate_shipped"] == 0.0  # reject_memorized is on by default
    assert g["rejected_memorized"] == g["memorized_candidates"]
    assert (pipeline.project / "plots/generate/closest_pairs.png").stat().st_size > 0
    # the pool: 4 candidates per image of the largest of plan and majority, every class alike
    majority = max(g["counts_before"].values())
    assert set(g["pool_per_class"].values()) == {4 * majority} and g["accepted"] == 40 * majority
    pool = np.load(pipeline.project / "data/synthetic/pool.npz")
    _, shipped = load_split(pipeline.project / "data/synthetic/synthetic.npz")
    manifest = pd.read_csv(pipeline.project / "data/synthetic/manifest.csv")
    assert len(pool["labels"]) == g["accepted"] and len(manifest) == len(shipped)
    assert list(manifest.columns) == ["index", "label", "seed", "score", "checkpoint_sha256"]
    for c, n in g["synthetic_per_class"].items():  # each class ships its best-scored n
        scores = np.sort(pool["scores"][pool["labels"] == int(c)])[::-1]
        shipped_c = manifest.loc[manifest["label"] == int(c), "score"].to_numpy()
        assert len(shipped_c) == n
        np.testing.assert_allclose(shipped_c, scores[:n], atol=1e-6)
    assert g["score_mean_shipped"] >= g["score_mean_pool"]


VARIANTS = ["class_weight", "gan@0.5", "gan@balance", "gan_mix@0.5", "gan_pretrain", "oversample",
            "real", "smote"]


def test_evaluate_scores_every_variant(pipeline: Pipeline) -> None:
    project = pipeline.project
    doc = pipeline.json("metrics/evaluate.json")
    m = doc["variants"]
    _, train = load_split(project / "data/prepared/train.npz")
    _, synthetic = load_split(project / "data/synthetic/synthetic.npz")
    _, test = load_split(project / "data/prepared/test.npz")
    assert sorted(m) == VARIANTS
    # chosen on validation, reported on test
    val = {v: res["val_balanced_accuracy"] for v, res in m.items()}
    gans = [v for v in m if m[v]["synthetic"]]
    assert sorted(gans) == ["gan@0.5", "gan@balance", "gan_mix@0.5", "gan_pretrain"]
    sel = doc["selection"]
    assert sel["highest"] == {"gan": max(gans, key=val.get),
                              "baseline": max((v for v in m if v not in gans), key=val.get)}
    assert (sel["by"], sel["rule"]) == ("val_balanced_accuracy", "one_se")
    for group in ("gan", "baseline"):  # one_se: the simplest within one SE of the highest
        assert val[sel[group]] <= val[sel["highest"][group]]
    assert 0 <= sel["stability"]["one_se"] <= 1
    h = doc["headline"]
    assert (h["gan"], h["baseline"]) == (doc["selection"]["gan"], doc["selection"]["baseline"])
    assert h["balanced_accuracy_delta"] == pytest.approx(
        m[h["gan"]]["balanced_accuracy"] - m[h["baseline"]]["balanced_accuracy"])
    for variant, res in m.items():
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "minority_recall",
                    "minority_precision"):
            assert 0.0 <= res[key] <= 1.0, (variant, key)
        lo, hi = res["balanced_accuracy_ci95"]
        assert 0.0 <= lo <= hi <= 1.0 and res["n_seeds"] == 2
        assert sorted(res["recall"], key=int) == [str(c) for c in range(10)]
        assert all(0.0 <= r <= 1.0 for r in res["recall"].values())
        assert ("vs_real" in res) == (variant != "real")
        confusion = pd.read_csv(project / f"plots/evaluate/confusion_{variant}.csv")
        assert list(confusion.columns) == ["actual", "predicted"]
        assert len(confusion) == len(test)
        np.testing.assert_array_equal(confusion["actual"].to_numpy(), test)
        roc = pd.read_csv(project / f"plots/evaluate/roc_{variant}.csv")
        assert (np.diff(roc["fpr"]) >= 0).all() and roc["tpr"].iloc[-1] == 1.0
    majority = np.bincount(train).max()
    assert m["real"]["n_train"] == m["class_weight"]["n_train"] == len(train)
    assert m["gan@balance"]["n_train"] == len(train) + len(synthetic)
    assert m["gan@0.5"]["n_synthetic"] == sum(
        min(majority - n, round(0.5 * n)) for n in np.bincount(train))
    # label-free mixing: every class, the majority too, gets half its count again
    assert m["gan_mix@0.5"]["n_synthetic"] == sum(round(0.5 * n) for n in np.bincount(train))
    assert m["oversample"]["n_train"] == m["smote"]["n_train"] == 10 * majority
    recall = pd.read_csv(project / "plots/evaluate/recall.csv")
    assert len(recall) == 10 and sorted(recall.columns) == sorted(["class", *VARIANTS])


def test_the_export_is_the_chosen_training_set_with_its_datasheet(pipeline: Pipeline) -> None:
    from pipeline.variants import synthetic_counts

    project, ev = pipeline.project, pipeline.json("metrics/evaluate.json")
    chosen, summary = ev["selection"]["gan"], pipeline.json("metrics/export.json")
    _, train = load_split(project / "data/prepared/train.npz")
    with np.load(project / "data/export/dataset.npz") as z:  # digits: `same` is MedMNIST keys
        labels, synthetic = z["train_labels"].ravel(), z["train_synthetic"]
        assert len(z["test_labels"]) == len(load_split(project / "data/prepared/test.npz")[1])
    assert summary["chosen"] == chosen and summary["format"] == "npz"
    if "@" in chosen:  # a share: real + that share's synthetic counts, class by class
        ratio = chosen.split("@")[1]
        share = synthetic_counts(train, 10, ratio if ratio == "balance" else float(ratio))
        assert np.bincount(labels[synthetic], minlength=10).tolist() == list(share.values())
    assert np.array_equal(labels[~synthetic], train)
    assert int(synthetic.sum()) == summary["n_synthetic"]
    sheet = (project / "data/export/DATASHEET.md").read_text()
    gen = pipeline.json("metrics/generate.json")
    assert f"| memorization rate | {gen['memorization_rate']:.4f} |" in sheet
    assert f"| checkpoint sha256 | {gen['checkpoint_sha256']} |" in sheet
    assert f"| chosen configuration | {chosen} |" in sheet
    (export,) = pipeline.runs("tags.stage = 'export'")
    assert {d.dataset.name for d in pipeline.client().get_run(export.info.run_id)
            .inputs.dataset_inputs} == {"export-train", "export-val", "export-test"}


def test_mlflow_has_one_finished_run_per_stage_under_one_pipeline_parent(
    pipeline: Pipeline,
) -> None:
    stage_runs = {}
    for stage in STAGES:
        found = [r for r in pipeline.runs(f"tags.stage = '{stage}'")
                 if "augmentation" not in r.data.tags]
        assert len(found) == 1, stage
        assert found[0].info.status == "FINISHED" and found[0].info.run_name == stage
        stage_runs[stage] = found[0]
    parents = {r.data.tags["mlflow.parentRunId"] for r in stage_runs.values()}
    assert len(parents) == 1
    parent = pipeline.client().get_run(parents.pop())
    assert parent.data.tags["kind"] == "pipeline"
    assert {r.data.tags["pipeline_run"] for r in stage_runs.values()} == {
        parent.data.tags["pipeline_run"]}
    assert len(pipeline.runs("tags.kind = 'pipeline'")) == 1

    prepare, train_gan = stage_runs["prepare"], stage_runs["train_gan"]
    assert prepare.data.params["prepare.image_size"] == "None"  # the digits' native 8x8
    assert prepare.data.params["prepare.imbalance"] == "auto"
    assert prepare.data.tags["data_changes"].startswith("Removed ")  # the demo's long tail
    assert prepare.data.metrics["simulated_imbalance.removed.0"] == 0
    assert prepare.data.metrics["n_images.test"] == 269
    assert train_gan.data.params["train_gan.steps"] == "20"
    assert train_gan.data.metrics["steps"] == 20
    history = pipeline.client().get_metric_history(train_gan.info.run_id, "d_loss")
    assert [h.step for h in history] == [5, 10, 15, 20]
    fid = pipeline.client().get_metric_history(train_gan.info.run_id, "fid_domain")
    assert sorted(h.step for h in fid) == [10, 20, 20]  # the history, then the kept value
    kept = pipeline.json("metrics/train_gan.json")
    assert train_gan.data.metrics["fid_domain"] == pytest.approx(kept["fid_domain"])
    assert train_gan.data.metrics["best_step"] == kept["best_step"]
    assert "step" not in train_gan.data.metrics
    per_class = pipeline.client().get_metric_history(train_gan.info.run_id, "fid_domain/class_9")
    assert sorted(h.step for h in per_class) == [10, 20, 20]
    generate = stage_runs["generate"]
    n_synthetic = pipeline.json("metrics/generate.json")["n_synthetic"]
    assert generate.data.metrics["n_synthetic"] == n_synthetic
    assert generate.data.params["generate.target"] == "majority"
    assert stage_runs["evaluate"].data.params["evaluate.steps"] == "20"


def test_mlflow_evaluate_has_one_child_run_per_variant(pipeline: Pipeline) -> None:
    evaluate = next(r for r in pipeline.runs("tags.stage = 'evaluate'")
                    if "augmentation" not in r.data.tags)
    metrics = pipeline.json("metrics/evaluate.json")["variants"]
    children = pipeline.runs(f"tags.mlflow.parentRunId = '{evaluate.info.run_id}'")
    assert sorted(r.data.tags["variant"] for r in children) == VARIANTS
    assert sorted(r.data.tags["augmentation"] for r in children) == [
        "class_weight", "gan", "gan", "gan_mix", "gan_pretrain", "oversample", "real", "smote"]
    assert sorted(r.data.tags.get("synthetic_ratio", "") for r in children
                  if r.data.tags["augmentation"] == "gan") == ["0.5", "balance"]
    for child in children:
        variant = child.data.tags["variant"]
        assert child.info.status == "FINISHED" and child.data.tags["kind"] == "variant"
        assert child.data.params["variant"] == variant
        assert child.data.params["n_train"] == str(metrics[variant]["n_train"])
        assert child.data.metrics["balanced_accuracy"] == pytest.approx(
            metrics[variant]["balanced_accuracy"])
        assert child.data.metrics["balanced_accuracy_ci95_lo"] == pytest.approx(
            metrics[variant]["balanced_accuracy_ci95"][0])
        assert child.data.metrics["recall.9"] == pytest.approx(metrics[variant]["recall"]["9"])
        seeds = pipeline.runs(f"tags.mlflow.parentRunId = '{child.info.run_id}'")
        assert sorted(r.data.tags["seed"] for r in seeds) == ["0", "1"]
        mean = np.mean([r.data.metrics["balanced_accuracy"] for r in seeds])
        assert mean == pytest.approx(metrics[variant]["balanced_accuracy"])


def test_a_second_repro_runs_nothing_and_changes_nothing(pipeline: Pipeline) -> None:
    n_runs = len(pipeline.runs())
    again = pipeline.dvc("repro")
    assert "Running stage" not in again.stdout
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in again.stdout
    assert "Data and pipelines are up to date." in pipeline.dvc("status").stdout
    assert pipeline.outputs() == pipeline.snapshot
    assert len(pipeline.runs()) == n_runs


def test_a_fresh_clone_reruns_every_stage_and_logs_each_to_mlflow(
    pipeline: Pipeline, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    # The finished run committed as the project ships it (dvc.lock, metrics; DVC-cached outputs
    # ignored by git), then cloned: no DVC cache, a new MLflow store, the README's `dvc repro`.
    origin = tmp_path / "origin"
    shutil.copytree(pipeline.project, origin, symlinks=True)
    for cmd in (["add", "-A"], ["commit", "-q", "-m", "pipeline run"]):
        assert run(["git", *cmd], cwd=origin, env=pipeline.env).returncode == 0
    clone = Pipeline(tmp_path / "fresh")
    clone.project.parent.mkdir()
    new_mlflow_db(clone.root / "mlflow.db", pytestconfig)  # a new, empty store
    assert run(["git", "clone", "-q", str(origin), str(clone.project)], cwd=tmp_path,
               env=clone.env).returncode == 0
    first = clone.dvc("repro")
    assert [s for s in STAGES if f"Running stage '{s}'" in first.stdout] == STAGES
    # the regenerated inputs of evaluate hash exactly as committed (the pipeline is
    # deterministic): only its missing cached output made DVC run it
    locks = [yaml.safe_load(git_show(origin, "HEAD:dvc.lock")),
             yaml.safe_load((clone.project / "dvc.lock").read_text())]
    deps = [{d["path"]: d["md5"] for d in lock["stages"]["evaluate"]["deps"]} for lock in locks]
    assert deps[0] == deps[1]
    for stage in STAGES:
        assert clone.runs(f"tags.stage = '{stage}'"), stage
    variants = clone.runs("tags.kind = 'variant'")
    assert sorted(r.data.tags["variant"] for r in variants) == VARIANTS
    again = clone.dvc("repro")
    assert "Running stage" not in again.stdout


def git_show(repo: Path, spec: str) -> str:
    return subprocess.run(["git", "show", spec], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


def descendants(dot: str, stage: str) -> set[str]:
    """Stages downstream of `stage` in `dvc dag --dot` output."""
    edges = [tuple(part.strip().strip('";') for part in line.split("->"))
             for line in dot.splitlines() if "->" in line]
    found, frontier = set(), {stage}
    while frontier:
        frontier = {b for a, b in edges if a in frontier} - found
        found |= frontier
    return found


def test_changing_train_gan_steps_invalidates_it_and_what_follows_but_not_prepare(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # on a copy (git history, DVC cache and outputs included): the other tests keep the original
    other = Pipeline(tmp_path)
    shutil.copytree(pipeline.project, other.project, symlinks=True)
    write_params(other.project / "params.yaml",
                 **{**TINY, "train_gan": {**TINY["train_gan"], "steps": 10}})
    status = json.loads(other.dvc("status", "--json").stdout)
    # dvc status names the stages whose own inputs changed: train_gan's params, not prepare's
    assert status == {"train_gan": [{"changed deps": {"params.yaml": {"train_gan": "modified"}}}]}
    # `dvc repro` reruns a changed stage and everything downstream of it
    downstream = descendants(other.dvc("dag", "--dot").stdout, "train_gan")
    assert downstream == {"generate", "evaluate", "export", "report"}  # and so not prepare


def test_a_killed_train_gan_resumes_on_the_next_repro(
    pipeline: Pipeline, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    other = Pipeline(tmp_path)
    new_mlflow_db(tmp_path / "mlflow.db", pytestconfig)
    shutil.copytree(pipeline.project, other.project, symlinks=True)
    (other.project / "checkpoints/train_gan.pt").unlink()
    write_params(other.project / "params.yaml",
                 **{**TINY, "train_gan": {**TINY["train_gan"], "steps": 400, "eval_every": 0,
                                          "checkpoint_every": 10}})
    state = other.project / "checkpoints/train_gan.pt"
    proc = subprocess.Popen([DVC, "repro", "train_gan"], cwd=other.project, env=other.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage process, mid-training
        proc.wait()
    step = torch.load(state, weights_only=True)["step"]
    assert 10 <= step < 400
    again = other.dvc("repro", "train_gan")
    assert f"resuming from step {step} " in again.stdout + again.stderr
    assert other.json("metrics/train_gan.json")["steps"] == 400


# --- every other synthesis method, through the whole pipeline -------------------------------------
# As a user switches methods: `dvc exp run -S train_gan.method=...` in the finished (dcgan) project,
# with -S overrides that make the method tiny. The resumable state is written every 2 steps and
# quality is measured at the end only, so that a kill lands mid-training (cyclegan trains 9 class
# pairs at about 1.5 s a step on one CPU core, stylegan at about 0.1 s).
METHODS = {
    "stylegan": {"train_gan.steps": 40, "stylegan.width": 8, "stylegan.batch_size": 32,
                 "stylegan.ada_p": 0.2},  # augmenting from step 1: ADA's state must resume too
    "cyclegan": {"train_gan.steps": 6, "cyclegan.width": 4, "cyclegan.n_res": 1,
                 "cyclegan.batch_size": 4},
    "diffusion": {"train_gan.steps": 6, "diffusion.width": 8, "diffusion.sampling_steps": 4},
}
METHOD_COMMON = {"train_gan.eval_every": 0, "train_gan.checkpoint_every": 2,
                 # the baselines do not depend on the method; the synthetic variants do
                 "evaluate.variants": "[real,gan,gan_pretrain]"}
METHOD_VARIANTS = ["gan@0.5", "gan@balance", "gan_pretrain", "real"]


@pytest.fixture(scope="module", params=list(METHODS))
def method_run(request: pytest.FixtureRequest, pipeline: Pipeline,
               tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Pipeline:
    """A copy of the finished tiny project (git history, DVC cache and outputs) after `dvc exp
    run -S train_gan.method=<method>`; its own MLflow store. The experiment runs in the workspace
    of the copy as it is (uncommitted outputs and dvc.lock are fine) and leaves its params and
    outputs there; DVC also commits it to a git ref of its own, with stage_env's git identity."""
    method = request.param
    p = Pipeline(tmp_path_factory.mktemp(f"exp-{method}"))
    new_mlflow_db(p.root / "mlflow.db", pytestconfig)
    shutil.copytree(pipeline.project, p.project, symlinks=True)
    p.method = method
    p.settings = {**METHOD_COMMON, "train_gan.method": method, **METHODS[method]}
    overrides = [arg for key, value in p.settings.items() for arg in ("-S", f"{key}={value}")]
    p.first = p.dvc("exp", "run", *overrides)
    p.generator_sha256 = file_sha256(p.project / "models/generator.pt")
    return p


def test_each_method_runs_through_the_whole_pipeline(method_run: Pipeline) -> None:
    p, method = method_run, method_run.method
    steps = p.settings["train_gan.steps"]
    out = p.first.stdout
    assert [s for s in STAGES if f"Running stage '{s}'" in out] == STAGES[2:]
    assert all(f"Stage '{s}' didn't change, skipping" in out for s in ("prepare", "features"))
    # train_gan: the method, its step count, the quality of the kept (here: the last) generator
    m = p.json("metrics/train_gan.json")
    assert (m["method"], m["steps"], m["best_step"], m["n_classes"]) == (method, steps, steps, 10)
    assert m["fid_domain"] > 0 and 0.0 <= m["tstr_balanced_accuracy"] <= 1.0
    for key in ("precision", "recall", "coverage"):
        assert 0.0 <= m[key] <= 1.0, key
    ckpt = torch.load(p.project / "models/generator.pt", weights_only=True)
    assert (ckpt["method"], ckpt["step"]) == (method, steps)
    width = f"{method}.width"
    assert ckpt["config"][method]["width"] == p.settings[width]
    losses = pd.read_csv(p.project / "plots/train_gan/losses.csv")
    assert losses["step"].tolist() == list(range(5, steps + 1, 5)) + ([steps] * (steps % 5 > 0))
    assert np.isfinite(losses.drop(columns="step").to_numpy()).all()
    if method == "stylegan":  # ADA's p, moving from the 0.2 it started at
        assert losses["ada_p"].between(0.0, 1.0).all() and losses["ada_p"].nunique() > 1
        assert m["final_ada_p"] == pytest.approx(losses["ada_p"].iloc[-1])
    elif method == "cyclegan":
        assert {"cycle_loss", "identity_loss"} <= set(losses.columns)
    else:  # diffusion: one loss column, the denoising MSE
        assert list(losses.columns) == ["step", "loss"] and m["final_loss"] > 0
    # generate: the audit, every class to the majority, distinct images within each class
    g = p.json("metrics/generate.json")
    assert g["checkpoint_sha256"] == p.generator_sha256
    assert g["candidates"] >= g["accepted"] >= g["n_synthetic"] > 0
    assert 0.0 <= g["memorization_rate"] <= 1.0 and g["memorization_threshold"] > 0
    assert g["memorization_rate_shipped"] == 0.0
    majority = max(g["counts_before"].values())
    assert set(g["counts_after"].values()) == {majority}
    images, labels = load_split(p.project / "data/synthetic/synthetic.npz")
    for c in np.unique(labels):  # cyclegan draws each translation ~4 times; one of each ships
        flat = images[labels == c].reshape(int((labels == c).sum()), -1)
        assert len(np.unique(flat, axis=0)) == len(flat), c
    manifest = pd.read_csv(p.project / "data/synthetic/manifest.csv")
    synthesizer = load_synthesizer(p.project / "models/generator.pt", device=torch.device("cpu"))
    rows = manifest.sample(5, random_state=0)
    again = quantize(synthesizer.sample(rows["label"].to_numpy().copy(),
                                        rows["seed"].to_numpy().copy()), g["grey_levels"])
    np.testing.assert_array_equal(again, images[rows["index"].to_numpy()])
    if method == "cyclegan":  # each minority image is a translation of a majority training image
        _, train_labels = load_split(p.project / "data/prepared/train.npz")
        source = manifest["source_index"].to_numpy()
        assert (train_labels[source] == np.argmax(np.bincount(train_labels))).all()
        assert not manifest.duplicated(["label", "source_index"]).any()
    else:
        assert "source_index" not in manifest.columns
    # the grids: one row of 8x8 tiles (scaled x6, 1 px gaps) per class
    sizes = {name: png_size(p.project / "plots" / name) for name in (
        "train_gan/samples.png", "generate/real_vs_synthetic.png", "generate/selection.png",
        "generate/closest_pairs.png")}
    assert sizes == {"train_gan/samples.png": (546, 546),  # 10 x 10 samples
                     "generate/real_vs_synthetic.png": (924, 546),  # 8 real, gap, 8 synthetic
                     "generate/selection.png": (924, 546),  # 8 best, gap, 8 worst
                     "generate/closest_pairs.png": (438, 114)}  # 8 pairs
    # evaluate: the synthetic variants scored on the test split
    variants = p.json("metrics/evaluate.json")["variants"]
    assert sorted(variants) == METHOD_VARIANTS
    for variant, res in variants.items():
        assert res["synthetic"] == (variant != "real") and res["n_seeds"] == 2
        for key in ("balanced_accuracy", "macro_f1", "roc_auc", "minority_recall"):
            assert 0.0 <= res[key] <= 1.0, (variant, key)
    # the report names the method in its GAN training table
    page = (p.project / "reports/index.html").read_text()
    facts = kv(section(page, "GAN training"))
    assert (facts["method"], facts["steps"]) == (method, str(steps))
    assert list(table(page, "variant"))[1:] == list(variants)  # one row each, in file order
    # MLflow: the stages that ran, with the method's settings
    train_gan = p.runs("tags.stage = 'train_gan'")
    assert len(train_gan) == 1 and train_gan[0].info.status == "FINISHED"
    assert train_gan[0].data.params["train_gan.method"] == method
    assert train_gan[0].data.params[width] == str(p.settings[width])
    assert not p.runs("tags.stage = 'prepare'")


def test_a_killed_train_gan_of_each_method_resumes_bit_identical(
    method_run: Pipeline, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    other = Pipeline(tmp_path)
    new_mlflow_db(tmp_path / "mlflow.db", pytestconfig)
    shutil.copytree(method_run.project, other.project, symlinks=True)
    state = other.project / "checkpoints/train_gan.pt"
    state.unlink()  # train again from scratch, with the settings of the finished run
    # --force: dvc.lock (and the run cache) already hold this very run, so a plain `dvc repro`
    # would check its outputs out of the cache, killed or not; --single-item: prepare and
    # features as they are
    repro = [DVC, "repro", "--force", "--single-item", "train_gan"]
    proc = subprocess.Popen(repro, cwd=other.project, env=other.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):  # dvc and the stage, mid-training
            os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0]
    steps = method_run.settings["train_gan.steps"]
    assert state.exists(), output
    step = torch.load(state, weights_only=True)["step"]
    assert 2 <= step < steps, output
    again = other.dvc(*repro[1:])
    assert f"resuming from step {step} " in again.stdout + again.stderr
    assert other.json("metrics/train_gan.json")["steps"] == steps
    # exact on CPU: the same bytes as the uninterrupted run's, and the same loss curves
    assert file_sha256(other.project / "models/generator.pt") == method_run.generator_sha256
    for name in ("losses.csv", "samples.png"):
        assert (other.project / "plots/train_gan" / name).read_bytes() == (
            method_run.project / "plots/train_gan" / name).read_bytes(), name
