"""The export stage (pipeline/export, stages/export.py): the augmented dataset in the user's format.

Tiny prepared splits, pool and metrics are built in tmp_path; the export is read back through the
pipeline's own source readers (pipeline/data/sources.py) and torchvision's ImageFolder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_images, stage_env, write_params
from pipeline.artifacts import save_csv, save_json, save_split
from pipeline.config import (
    EXPORT_FORMATS, DataConfig, EvaluateConfig, PrepareConfig, parse_config,
)
from pipeline.data.sources import SOURCES
from pipeline.errors import PipelineError
from pipeline.export.datasheet import SheetInputs, datasheet
from pipeline.export.rows import build_export
from pipeline.export.writers import FORMATS, MARKER, write_export, write_png
from pipeline.pool import SyntheticPool
from pipeline.variants import synthetic_counts

REPO = Path(__file__).resolve().parents[1]
NAMES = ["benign", "malignant", "normal"]
TRAIN = [12, 4, 6]  # class 1 is the minority
CHECKPOINT = "ab" * 32


# --- fixtures: what prepare, generate and evaluate write ---------------------------------------

def write_prepared(folder: Path, *, channels: int = 1, patients: bool = True) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i, (split, n) in enumerate((("train", TRAIN), ("val", [3, 3, 3]), ("test", [3, 3, 3]))):
        images, labels = make_images(n, channels=channels, seed=i)
        extra = {"patient_ids": np.array([f"{split}-p{j // 2}" for j in range(len(labels))])
                 } if patients else {}
        save_split(folder / f"{split}.npz", images, labels, **extra)
        counts[split] = {str(c): int(k) for c, k in enumerate(n)}
    return counts


def write_pool(folder: Path, *, per_class: int = 48, channels: int = 1) -> SyntheticPool:
    """A scored pool (images differ from every real one: noise 90) and generate's shipped set
    (the balance target: every class up to 12)."""
    images, labels = make_images([per_class] * 3, channels=channels, seed=7, noise=90)
    rng = np.random.default_rng(3)
    pool = SyntheticPool(images, labels, 1000 + np.arange(len(labels)), rng.random(len(labels)),
                         np.tile(np.arange(per_class), 3))
    folder.mkdir(parents=True, exist_ok=True)
    pool.save(folder / "pool.npz")
    idx = pool.take({0: 0, 1: 8, 2: 6})
    ship = pool.subset(idx)
    save_split(folder / "synthetic.npz", ship.images, ship.labels)
    save_csv(folder / "manifest.csv", pd.DataFrame({
        "index": np.arange(len(idx)), "label": ship.labels, "seed": ship.seeds,
        "score": ship.scores.round(6), "checkpoint_sha256": CHECKPOINT}))
    return pool


def headline(ci: tuple[float, float], *, resolves: bool) -> dict[str, Any]:
    return {"gan": "gan@0.5", "baseline": "real", "balanced_accuracy_delta": sum(ci) / 2,
            "balanced_accuracy_delta_ci95": list(ci), "minority_recall_delta": 0.05,
            "minority_recall_delta_ci95": [-0.1, 0.2], "roc_auc_delta": 0.01, "n_seeds": 3,
            "n_test": 9, "resolves_2_points": resolves}


def metrics_docs(counts: dict[str, Any], *, gan: str | None = "gan@0.5",
                 ci: tuple[float, float] = (-0.01, 0.012), resolves: bool = True
                 ) -> dict[str, Any]:
    variant = {"balanced_accuracy": 0.8, "minority_recall": 0.6, "roc_auc": 0.9,
               "recall": {"0": 0.9, "1": 0.6, "2": 0.9}, "minority_class": 1, "n_seeds": 3}
    evaluate = {"selection": {"gan": gan, "baseline": "real", "by": "val_balanced_accuracy"},
                "headline": headline(ci, resolves=resolves) if gan else {},
                "variants": {"real": {**variant, "synthetic": False},
                             "gan@0.5": {**variant, "synthetic": True, "balanced_accuracy": 0.81}}}
    return {
        "prepare": {"source": "folder", "n_classes": 3, "class_names": NAMES, "counts": counts,
                    "split_method": "patient_grouped_stratified", "imbalance": "none",
                    "imbalance_ratio": 3.0, "native_sizes": {"8x8": 39},
                    "data_changes": ["Converted 2 colour images to grayscale (prepare.channels: "
                                     "1); set prepare.channels: 3 to keep colour."]},
        "train_gan": {"method": "dcgan", "steps": 1500, "best_step": 1000,
                      "fid_domain": 0.7518763400396864},
        "generate": {"checkpoint_sha256": CHECKPOINT, "candidates": 4979,
                     "acceptance_rate": 0.9961839726852781, "score_mean_shipped": 0.9967185,
                     "memorization_rate": 0.0038306451612903224,
                     "memorization_threshold": 0.42490259309162065, "memorized_candidates": 19,
                     "rejected_memorized": 19, "memorization_rate_shipped": 0.0},
        "evaluate": evaluate,
    }


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Any]:
    counts = write_prepared(tmp_path / "prepared")
    pool = write_pool(tmp_path / "synthetic")
    return {"data": tmp_path / "prepared", "synthetic": tmp_path / "synthetic", "pool": pool,
            "docs": metrics_docs(counts), "counts": counts}


def export_of(inputs: dict[str, Any], *, evaluate: Any = "default",
              cfg: EvaluateConfig | None = None):
    ev = inputs["docs"]["evaluate"] if evaluate == "default" else evaluate
    return build_export(inputs["data"], inputs["synthetic"], evaluate=ev,
                        cfg=cfg or EvaluateConfig(), class_names=NAMES,
                        checkpoint_sha256=CHECKPOINT, seed=0)


def sheet_of(ex, docs: dict[str, Any], fmt: str = "folder") -> str:
    return datasheet(SheetInputs(ex, fmt, docs["prepare"], docs["train_gan"], docs["generate"],
                                 docs["evaluate"], source={"source": "folder", "path": "data/raw"},
                                 synthesizer_settings={"train_gan.steps": 1500}))


def read_back(out: Path, fmt: str, *, channels: int = 1):
    """The export read through the pipeline's source readers, as a user's params would."""
    path = {"folder": out, "csv": out / "dataset.csv", "npz": out / "dataset.npz"}[fmt]
    source = {"folder": "folder", "csv": "csv", "npz": "medmnist"}[fmt]
    data = DataConfig(source=source, path=str(path), classes=() if fmt == "npz" else tuple(NAMES),
                      workers=1)
    return SOURCES[source](data, PrepareConfig(channels=channels))


# --- the chosen training set ------------------------------------------------------------------

def test_class_counts_are_real_plus_the_chosen_shares_synthetic_counts(inputs) -> None:
    ex = export_of(inputs)
    train = ex.parts["train"]
    labels = np.repeat(np.arange(3), TRAIN)
    share = synthetic_counts(labels, 3, 0.5)  # the chosen gan@0.5: {0: 0, 1: 2, 2: 3}
    assert share == {0: 0, 1: 2, 2: 3}
    assert train.counts(3, synthetic=False) == dict(enumerate(TRAIN))
    assert train.counts(3, synthetic=True) == share
    assert train.counts(3) == {c: TRAIN[c] + share[c] for c in range(3)}
    assert ex.chosen == "gan@0.5"
    for s in ("val", "test"):  # unchanged: all real, the prepared split as it is
        assert ex.parts[s].counts(3) == {0: 3, 1: 3, 2: 3}
        assert not ex.parts[s].synthetic.any()


def test_synthetic_rows_are_the_best_scored_pool_images_with_their_seed_and_score(inputs) -> None:
    pool, train = inputs["pool"], export_of(inputs).parts["train"]
    rows = np.flatnonzero(train.synthetic)
    for r in rows:
        i = int(train.seeds[r] - 1000)  # the pool's seeds are 1000 + index
        assert np.array_equal(train.images[r], pool.images[i])
        assert train.scores[r] == pool.scores[i] and train.labels[r] == pool.labels[i]
    minority = rows[train.labels[rows] == 1]
    best = np.sort(pool.scores[pool.labels == 1])[::-1][:2]
    assert np.allclose(np.sort(train.scores[minority])[::-1], best)
    assert (train.seeds[~train.synthetic] == -1).all()
    assert list(train.patient_ids[rows]) == [""] * len(rows)  # synthetic rows: no patient
    assert train.patient_ids[0] == "train-p0"


def test_without_a_chosen_configuration_the_export_is_generates_shipped_set(inputs) -> None:
    for evaluate in (None, {**inputs["docs"]["evaluate"], "selection": {"gan": None}}):
        ex = export_of(inputs, evaluate=evaluate)
        assert ex.chosen is None
        assert ex.parts["train"].counts(3, synthetic=True) == {0: 0, 1: 8, 2: 6}
        sheet = sheet_of(ex, {**inputs["docs"], "evaluate": evaluate})
        assert "Warning: not validated" in sheet


def test_a_pretrain_choice_exports_its_pretraining_set(inputs) -> None:
    docs = inputs["docs"]["evaluate"]
    ex = export_of(inputs, evaluate={**docs, "selection": {"gan": "gan_pretrain"}})
    train = ex.parts["train"]
    assert ex.pretrain and ex.chosen == "gan_pretrain"
    assert train.counts(3, synthetic=True) == {0: 12, 1: 12, 2: 12}  # the majority's count each
    assert "pretrains on the synthetic rows" in sheet_of(ex, inputs["docs"])


def test_a_down_weighted_choice_exports_each_rows_loss_weight(inputs, tmp_path) -> None:
    docs = inputs["docs"]["evaluate"]
    cfg = EvaluateConfig(variants=("real", "gan_downweight"), synthetic_weight=0.25)
    ex = export_of(inputs, evaluate={**docs, "selection": {"gan": "gan_downweight@0.5"}}, cfg=cfg)
    train = ex.parts["train"]
    assert train.sample_weights.tolist() == [1.0] * sum(TRAIN) + [0.25] * 5
    write_export(ex, tmp_path / "out", fmt="csv", datasheet=sheet_of(ex, inputs["docs"]))
    table = pd.read_csv(tmp_path / "out" / "dataset.csv")
    train_rows = table[table["split"] == "train"]
    assert train_rows.groupby("synthetic")["sample_weight"].unique().to_dict() == {
        False: [1.0], True: [0.25]}
    assert "column `sample_weight`" in (tmp_path / "out" / "DATASHEET.md").read_text()


def test_a_choice_that_the_params_no_longer_list_is_refused(inputs) -> None:
    with pytest.raises(PipelineError, match=r"gan@0.5.*dvc repro evaluate"):
        export_of(inputs, cfg=EvaluateConfig(synthetic_ratios=(1.0,)))


# --- formats and round trips --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("channels", [1, 3])
def test_the_export_reads_back_through_the_source_readers_byte_for_byte(
        tmp_path: Path, fmt: str, channels: int) -> None:
    counts = write_prepared(tmp_path / "prepared", channels=channels)
    write_pool(tmp_path / "synthetic", channels=channels)
    ex = export_of({"data": tmp_path / "prepared", "synthetic": tmp_path / "synthetic",
                    "docs": metrics_docs(counts)})
    write_export(ex, tmp_path / "out", fmt=fmt, datasheet="# sheet\n")
    raw = read_back(tmp_path / "out", fmt, channels=channels)
    assert raw.class_names == (NAMES if fmt != "npz" else ["0", "1", "2"])
    for split, part in ex.parts.items():
        got = raw.split == split
        order = np.argsort(part.labels, kind="stable")  # folders group the rows by class
        want = part.images[order] if fmt == "folder" else part.images
        want_labels = part.labels[order] if fmt == "folder" else part.labels
        assert raw.images[got].dtype == np.uint8
        assert np.array_equal(raw.images[got], want), split
        assert np.array_equal(raw.labels[got], want_labels), split
    if fmt == "csv":  # the patient ids of the real rows come back; synthetic rows have none
        train = raw.split == "train"
        assert list(raw.patient_ids[train]) == list(ex.parts["train"].patient_ids)


@pytest.mark.slow  # importing torchvision takes seconds
def test_torchvision_imagefolder_reads_the_folder_export_with_the_class_counts(inputs,
                                                                              tmp_path) -> None:
    from torchvision.datasets import ImageFolder

    ex = export_of(inputs)
    write_export(ex, tmp_path / "out", fmt="folder", datasheet="x")
    for split, part in ex.parts.items():
        ds = ImageFolder(str(tmp_path / "out" / split))
        assert ds.classes == sorted(NAMES)
        found = np.bincount(ds.targets, minlength=3)
        assert {c: int(found[ds.class_to_idx[n]]) for c, n in enumerate(NAMES)} == part.counts(3)


def test_the_manifest_flags_every_row_and_carries_its_provenance(inputs, tmp_path) -> None:
    ex = export_of(inputs)
    write_export(ex, tmp_path / "out", fmt="npz", datasheet="x")
    table = pd.read_csv(tmp_path / "out" / "manifest.csv", keep_default_na=False)
    train = table[table["split"] == "train"]
    synth = train[train["synthetic"]]
    assert len(synth) == 5 and len(train) == sum(TRAIN) + 5
    assert (synth["checkpoint_sha256"] == CHECKPOINT).all()
    assert (synth["patient_id"] == "").all() and (train[~train["synthetic"]]["seed"] == "").all()
    assert synth["seed"].astype(int).tolist() == ex.parts["train"].seeds[-5:].tolist()
    with np.load(tmp_path / "out" / "dataset.npz") as z:
        assert z["train_synthetic"].sum() == 5 and z["train_labels"].shape == (sum(TRAIN) + 5, 1)


def test_format_same_writes_the_inputs_own_kind() -> None:
    from pipeline.export.writers import resolve_format

    assert [resolve_format("same", s) for s in ("folder", "csv", "medmnist", "digits")] == [
        "folder", "csv", "npz", "npz"]
    assert resolve_format("csv", "medmnist") == "csv"
    assert set(EXPORT_FORMATS) == {"same", *FORMATS}  # the params' choices are the writers


# --- bad input ------------------------------------------------------------------------------------

def test_an_unknown_format_is_refused_naming_the_choices(inputs, tmp_path) -> None:
    with pytest.raises(PipelineError, match=r"export.format.*same, folder, csv, npz"):
        parse_config({"export": {"format": "zip"}})
    with pytest.raises(PipelineError, match=r"'zip'.*same, folder, csv, npz"):
        write_export(export_of(inputs), tmp_path / "out", fmt="zip", datasheet="x")
    assert not (tmp_path / "out").exists()


def test_a_folder_holding_files_it_did_not_write_is_refused_and_kept(inputs, tmp_path) -> None:
    out, ex = tmp_path / "out", export_of(inputs)
    (out / "train").mkdir(parents=True)
    (out / "train" / "notes.txt").write_text("mine")
    with pytest.raises(PipelineError, match=r"1 file\(s\).*notes.txt.*move them"):
        write_export(ex, out, fmt="folder", datasheet="x")
    assert (out / "train" / "notes.txt").read_text() == "mine"
    (out / "train" / "notes.txt").unlink()
    write_export(ex, out, fmt="folder", datasheet="x")  # an empty folder may be replaced
    (out / "benign.png").write_bytes(b"user's")  # a file dropped into a previous export
    (out / "train" / "benign" / "copy of real_000001.png").write_bytes(b"user's")
    with pytest.raises(PipelineError, match=r"2 file\(s\).*benign.png.*copy of real_000001"):
        write_export(ex, out, fmt="npz", datasheet="x")
    assert (out / "benign.png").read_bytes() == b"user's" and (out / MARKER).is_file()


def test_a_full_disk_mid_write_leaves_the_previous_export_intact(inputs, tmp_path) -> None:
    out, ex = tmp_path / "out", export_of(inputs)
    write_export(ex, out, fmt="folder", datasheet="first\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    written = []

    def fills_up(path: Path, image: np.ndarray) -> None:
        if len(written) == 7:
            raise OSError(28, "No space left on device", str(path))
        written.append(path)
        write_png(path, image)

    with pytest.raises(PipelineError, match=r"No space left.*previous export.*Free disk space"):
        write_export(ex, out, fmt="csv", datasheet="second\n", writer=fills_up)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no half-written folder


def test_a_class_name_that_cannot_be_a_folder_is_refused(inputs, tmp_path) -> None:
    ex = export_of(inputs)
    ex.class_names[1] = "a/b"
    with pytest.raises(PipelineError, match=r"'a/b'.*data.classes"):
        write_export(ex, tmp_path / "out", fmt="folder", datasheet="x")


# --- the datasheet ------------------------------------------------------------------------------

def sheet_values(text: str) -> dict[str, str]:
    """The `| key | value |` rows of the datasheet's tables."""
    return {m[1].strip(): m[2].strip() for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \|$", text,
                                                             re.M)}


def test_the_datasheets_figures_equal_the_metrics(inputs) -> None:
    docs, ex = inputs["docs"], export_of(inputs)
    text = sheet_of(ex, docs)
    got, g, h = sheet_values(text), docs["generate"], docs["evaluate"]["headline"]
    assert got["memorization rate"] == f"{g['memorization_rate']:.4f}" == "0.0038"
    assert got["memorization threshold"] == f"{g['memorization_threshold']:.4f}"
    assert got["rejected as memorized"] == str(g["rejected_memorized"])
    assert got["checkpoint sha256"] == g["checkpoint_sha256"]
    assert got["fid_domain"] == f"{docs['train_gan']['fid_domain']:.4f}"
    assert got["training steps"] == "1500" and got["kept generator step"] == "1000"
    assert got["chosen configuration"] == "gan@0.5" and got["chosen baseline"] == "real"
    assert got["balanced accuracy difference (test)"] == f"{h['balanced_accuracy_delta']:.4f}"
    lo, hi = h["balanced_accuracy_delta_ci95"]
    assert got["its 95% interval"] == f"[{lo:.4f}, {hi:.4f}]"
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)
    table = {r[0]: list(map(int, r[1:])) for r in rows}
    counts = docs["prepare"]["counts"]
    for c, name in enumerate(NAMES):
        real, synth, total, val, test = table[name]
        assert real == counts["train"][str(c)] and val == counts["val"][str(c)]
        assert test == counts["test"][str(c)] and total == real + synth
    assert [table[n][1] for n in NAMES] == [0, 2, 3]
    assert docs["prepare"]["data_changes"][0] in text
    assert "DICOM went through its modality LUT and VOI LUT" in text  # the conversion, stated


@pytest.mark.parametrize("ci, resolves, warned", [
    ((-0.01, 0.012), True, "Warning: no benefit"),
    ((-0.08, 0.09), False, "Warning: cannot tell"),
    ((-0.09, -0.02), True, "Warning: the synthetic images did harm"),
    ((0.01, 0.05), True, None),
])
def test_the_datasheet_warns_unless_the_synthetic_images_helped(inputs, ci, resolves,
                                                                warned) -> None:
    docs = metrics_docs(inputs["counts"], ci=ci, resolves=resolves)
    text = sheet_of(export_of({**inputs, "docs": docs}), docs)
    head = text.split("## Motivation")[0]
    if warned:
        assert warned in head
    else:
        assert "Warning" not in text and "helped" in sheet_values(text)["outcome"]


# --- MLflow -------------------------------------------------------------------------------------

def test_datasets_are_logged_through_mlflow_data_and_the_experiment_is_model_training(
        tracking_env: str, tmp_path: Path) -> None:
    import mlflow
    import pandas as pd

    from pipeline.tracking import stage_run

    images, labels = make_images([5, 3])
    with stage_run("export", params_digest="d", root=tmp_path) as run:
        run.log_data(name="export-train", digest="f" * 64, source="data/export",
                     context="training", features=images, targets=labels)
        with run.child("gan@0.5", {"kind": "variant"}) as child:
            child.log_data(name="train:gan@0.5", digest="e" * 40, source="data/prepared/train.npz",
                           context="training", table=pd.DataFrame({"label": labels}))
        ids = run.run_id, child.run_id
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(tracking_env)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    got = [client.get_run(i).inputs.dataset_inputs for i in ids]
    assert [len(g) for g in got] == [1, 1]
    export, variant = got[0][0], got[1][0]
    assert (export.dataset.name, export.dataset.digest) == ("export-train", "f" * 36)
    assert json.loads(export.dataset.source) == {"uri": "data/export"}
    assert json.loads(export.dataset.profile)["features_shape"] == [8, 8, 8, 1]
    assert {t.key: t.value for t in export.tags} == {"mlflow.data.context": "training"}
    assert json.loads(variant.dataset.profile)["num_rows"] == 8


def test_an_existing_experiment_without_a_kind_is_marked_model_training(tracking_env: str,
                                                                       tmp_path: Path) -> None:
    import mlflow

    from pipeline.tracking import stage_run

    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    client.create_experiment(tracking_env)  # made by an older version of the pipeline
    with stage_run("prepare", params_digest="d", root=tmp_path):
        pass
    exp = client.get_experiment_by_name(tracking_env)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


# --- the stage, as DVC runs it ------------------------------------------------------------------

@pytest.mark.slow
def test_the_stage_writes_the_export_logs_it_and_refuses_a_foreign_folder(inputs,
                                                                         tmp_path) -> None:
    import mlflow

    metrics = tmp_path / "metrics"
    for name, doc in inputs["docs"].items():
        save_json(metrics / f"{name}.json", doc)
    torch.save({"config": {"train_gan": {"steps": 1500, "method": "dcgan"}}},
               tmp_path / "generator.pt")
    params = write_params(tmp_path / "params.yaml", data={"source": "csv",
                                                          "path": "data/raw/x.csv"})
    cmd = [sys.executable, "-m", "stages.export", "--params", str(params), "--data",
           str(inputs["data"]), "--synthetic", str(inputs["synthetic"]), "--checkpoint",
           str(tmp_path / "generator.pt"), "--metrics-dir", str(metrics), "--lock",
           str(tmp_path / "dvc.lock"), "--out", str(tmp_path / "export"), "--metrics",
           str(metrics / "export.json")]
    env = stage_env(tmp_path)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((metrics / "export.json").read_text())
    assert summary["format"] == "csv" and summary["synthetic_per_class"] == {"0": 0, "1": 2, "2": 3}
    sheet = (tmp_path / "export" / "DATASHEET.md").read_text()
    assert "train_gan.steps=1500" in sheet and "Warning: no benefit" in sheet
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    run = client.search_runs([client.get_experiment_by_name("imbalance-gan").experiment_id],
                             "tags.stage = 'export'")[0]
    inputs_logged = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs_logged) == {"export-train", "export-val", "export-test"}
    (tmp_path / "export" / "mine.txt").write_text("x")
    failed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1
    assert failed.stderr.startswith("export: error:") and "mine.txt" in failed.stderr
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1


def test_each_evaluate_variant_run_names_its_training_set(tracking_env: str,
                                                          tmp_path: Path) -> None:
    import mlflow

    from pipeline.evaluate import Comparison, VariantResult, log_variant_runs
    from pipeline.tracking import stage_run
    from pipeline.variants import Variant

    plots, results = tmp_path / "plots", {}
    plots.mkdir()
    for name, variant, labels in (("real", Variant("real"), [0, 0, 0, 1]),
                                  ("gan@0.5", Variant("gan", 0.5), [0, 0, 0, 1, 1])):
        for kind in ("confusion", "roc"):
            (plots / f"{kind}_{name}.csv").write_text("a,b\n0,0\n")
        results[name] = VariantResult(
            {"balanced_accuracy": 0.5, "n_train": len(labels), "synthetic_ratio": "0.5"},
            [{"balanced_accuracy": 0.5}], pd.DataFrame(), pd.DataFrame(), variant=variant,
            train_digest=f"{len(labels)}" * 32, train_labels=np.array(labels))
    with stage_run("evaluate", params_digest="d", root=tmp_path) as run:
        log_variant_runs(run, Comparison(results), {}, cfg=EvaluateConfig(), seed=0, plots=plots,
                         data_source="data/prepared/train.npz")
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(tracking_env)
    found = {r.data.tags["variant"]: client.get_run(r.info.run_id).inputs.dataset_inputs
             for r in client.search_runs([exp.experiment_id], "tags.kind = 'variant'")}
    assert set(found) == {"real", "gan@0.5"}
    for name, n in (("real", 4), ("gan@0.5", 5)):
        (logged,) = found[name]
        assert logged.dataset.name == f"train:{name}" and logged.dataset.digest == f"{n}" * 32
        assert json.loads(logged.dataset.profile)["num_rows"] == n
        assert json.loads(logged.dataset.source) == {"uri": "data/prepared/train.npz"}
