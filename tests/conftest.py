"""Shared fixtures: tiny image datasets, a temporary copy of the project, an isolated MLflow store.

Nothing here downloads anything or reads outside the repository: datasets are built from numpy
arrays (or scikit-learn's bundled digits), and every file a test writes lands in `tmp_path`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# What a stage needs to run in a copy of the project (never .venv, data/, models/ or mlflow.db).
PROJECT_FILES = ("pipeline", "stages", "params.yaml", "dvc.yaml", "pyproject.toml", ".dvcignore",
                 ".gitignore", ".dvc/config")


# --- the inner loop: `pytest -m "not slow"` -------------------------------------------------------
# Slow: a test that starts a process (a stage, dvc, torchrun, an MLflow server, Chromium) or takes
# 2 s or more on two shared cores. Files may mark their own tests; this rule marks the rest by
# their markers, by the fixtures they use, or by name (tests/test_markers.py checks the names).
SLOW_MARKERS = {"e2e", "browser"}
SLOW_FIXTURES = {
    "process_results",  # test_stages_cli: every stage started as `python -m stages.<name>`
    "comparison",  # test_classify_evaluate: one evaluate run of every variant
    "binary_report",  # test_report: a whole report, every figure drawn
    "marked_run",  # test_shortcut: generate's synthesize twice on a planted artifact
}
SLOW_TESTS = {  # file::test, every parametrisation
    "test_remedies.py::test_a_near_zero_weight_makes_the_classifier_ignore_those_images",
    "test_report.py::test_ten_classes_without_mlflow",
    "test_report_stage.py::test_stage_writes_the_report_and_logs_it",
    "test_report.py::test_the_page_says_what_prepare_did_to_the_data_before_the_verdict",
    "test_report.py::test_the_page_names_the_selection_and_shows_the_selection_grid",
    "test_report.py::test_no_notice_when_prepare_changed_nothing",
    "test_stages_cli.py::test_a_failure_inside_a_stage_marks_its_mlflow_run_failed",
    "test_stylegan.py::test_ada_p_rises_from_zero_when_d_overfits_a_tiny_set",
    "test_stylegan.py::test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one",
    "test_stylegan.py::test_train_gan_and_generate_stages_run_the_stylegan_method",
    "test_cyclegan.py::test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one",
    "test_cyclegan.py::test_a_translation_is_scored_as_the_minority_and_keeps_its_lesion",
    "test_diffusion.py::test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one",
    "test_diffusion.py::test_a_model_overfit_on_a_handful_of_images_is_flagged_by_the_memorization_audit",
    "test_diffusion.py::test_train_gan_and_generate_stages_run_the_diffusion_method",
    "test_classify_evaluate.py::test_selection_never_reads_the_test_split",
    "test_selection_rule.py::test_flipping_every_test_label_does_not_move_the_choice_or_its_stability",
    "test_classify_evaluate.py::test_resnet18_classifier_trains_on_small_inputs",
    "test_quality.py::test_probe_scores_a_copying_generator_far_above_a_collapsed_one",
    "test_quality.py::test_tstr_of_a_generator_that_swaps_the_classes_is_near_zero",
    "test_quality.py::test_probe_is_deterministic_for_the_same_generator",
}


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if (SLOW_MARKERS.intersection(m.name for m in item.iter_markers())
                or SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                or f"{item.path.name}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    # CI boxes have 2 cores that other jobs share: torch's default thread pool then spins against
    # them and a 30 ms GAN step takes 800 ms. One thread keeps the suite fast and deterministic.
    torch.set_num_threads(1)


def make_images(
    counts: list[int] | dict[int, int], *, size: int = 8, channels: int = 1, seed: int = 0,
    noise: int = 30,
) -> tuple[np.ndarray, np.ndarray]:
    """Easily separable uint8 images (N, size, size, channels) and int64 labels (N,).

    Class c is a bright square in quadrant c % 4 on a dark, noisy background (classes 0-3 are
    distinguishable at a glance; more classes reuse the quadrants).
    """
    if isinstance(counts, dict):
        counts = [counts.get(c, 0) for c in range(max(counts) + 1)]
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    images = rng.integers(0, noise, (len(labels), size, size, channels)).astype(np.uint8)
    half = size // 2
    for i, c in enumerate(labels):
        y0, x0 = ((c // 2) % 2) * half, (c % 2) * half
        bright = 255 - rng.integers(0, noise, (half, half, channels))
        images[i, y0 : y0 + half, x0 : x0 + half] = bright
    return images, labels


@pytest.fixture
def make_dataset() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return make_images


def write_params(path: Path, **sections: dict[str, Any] | int) -> Path:
    """The repository's params.yaml with some sections' keys overridden, written to `path`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(params.get(name), dict):
            params[name].update(value)
        else:
            params[name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def copy_project(dest: Path) -> Path:
    """Copy the project's code, params and pipeline to dest (no outputs, models or MLflow store).

    Files that git tracks under data/ come along: they are inputs (e.g. data/raw, the default
    `data.path` that dvc.yaml lists as a dependency of prepare), never pipeline outputs.
    """
    tracked = subprocess.run(["git", "ls-files", "data"], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    for name in [*PROJECT_FILES, *tracked]:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A copy of the project in tmp_path/project; its MLflow store would be tmp_path/mlflow.db."""
    return copy_project(tmp_path / "project")


def stage_env(store_dir: Path) -> dict[str, str]:
    """Environment for stage and dvc subprocesses: the venv's python first, an MLflow store and
    DVC's per-machine state in store_dir, one torch thread."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIPELINE_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "PYTHONPATH")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        MLFLOW_TRACKING_URI=f"sqlite:///{store_dir / 'mlflow.db'}",
        OMP_NUM_THREADS="1",  # see _one_torch_thread
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(store_dir / "dvc-site-cache"),  # not /var/tmp/dvc
        GIT_AUTHOR_NAME="tests", GIT_AUTHOR_EMAIL="tests@example.com",
        GIT_COMMITTER_NAME="tests", GIT_COMMITTER_EMAIL="tests@example.com",
    )
    return env


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below root (relative path -> content), ignoring caches."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """One SQLite store (mlflow.db in the returned folder) for the in-process tracking tests;
    tests stay apart by using their own experiment name."""
    store = tmp_path_factory.mktemp("mlflow")
    new_mlflow_db(store / "mlflow.db", pytestconfig)
    return store


def new_mlflow_db(path: Path, config: pytest.Config) -> None:
    """Put an empty MLflow database at `path` (e.g. the mlflow.db of `stage_env`), copied from
    pytest's cache; without a cache (-p no:cacheprovider) MLflow creates it on first use."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        shutil.copyfile(empty_mlflow_db(cache), path)


def empty_mlflow_db(cache: pytest.Cache) -> Path:
    """An empty MLflow database, kept in pytest's cache per MLflow version: creating one runs
    every schema migration, seconds that each new store would otherwise pay."""
    import mlflow

    folder = cache.mkdir(f"mlflow-{mlflow.__version__}")
    db = folder / "empty.db"
    if not db.exists():
        tmp = folder / f"empty.{os.getpid()}.db"
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(folder)  # where the Default experiment's (never used) artifact folder points
            mlflow.MlflowClient(f"sqlite:///{tmp}").search_experiments()
        os.replace(tmp, db)  # whole, even with another session doing the same
    return db


@pytest.fixture
def tracking_env(mlflow_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 request: pytest.FixtureRequest) -> str:
    """Point pipeline.tracking at the test store, in an experiment of this test's own; returns
    the experiment name. The working directory moves to tmp_path so that MLflow's default
    artifact folder (./mlruns) never lands in the repository."""
    uri = f"sqlite:///{mlflow_store / 'mlflow.db'}"
    experiment = f"test-{request.node.name}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    monkeypatch.delenv("PIPELINE_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    return experiment


def write_extractor(path: Path, images: np.ndarray, labels: np.ndarray, *, steps: int = 10) -> Path:
    """A tiny feature-extractor checkpoint (what the features stage writes), trained on CPU."""
    from pipeline.config import FeaturesConfig
    from pipeline.features import save_extractor, train_extractor

    cfg = FeaturesConfig(width=4, steps=steps, batch_size=8)
    n_classes = int(labels.max()) + 1
    model = train_extractor(images, labels, cfg, n_classes=n_classes, seed=0,
                            device=torch.device("cpu"))
    kwargs = dict(channels=images.shape[3], n_classes=n_classes, image_size=images.shape[1],
                  width=cfg.width)
    save_extractor(path, model, cfg, model_kwargs=kwargs, seed=0,
                   metrics={"val_balanced_accuracy": 0.5})
    return path
