"""The stage scripts through their real command line (`python -m stages.<name>`, as dvc.yaml runs
them) in a temporary copy of the project, and dvc.yaml's bookkeeping of what each stage reads."""

from __future__ import annotations

import ast
import os
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from conftest import (
    REPO, copy_project, files_under, make_images, stage_env, write_extractor, write_params,
)
from pipeline.artifacts import save_split
from pipeline.gan.losses import LOSSES, GanLoss
from pipeline.synthesizers.registry import METHODS, method_module

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = list(DVC["stages"])
# Modules that shape no output: error type, argument parsing, MLflow logging, device choice.
OUTPUT_NEUTRAL = {"pipeline/__init__.py", "pipeline/errors.py", "pipeline/cli.py",
                  "pipeline/tracking.py", "pipeline/device.py"}


def stage_cmd(stage: str, *extra: str) -> list[str]:
    """The stage's command exactly as dvc.yaml writes it, run by this interpreter."""
    cmd = shlex.split(DVC["stages"][stage]["cmd"])
    assert cmd[0] == "python"
    return [sys.executable, *cmd[1:], *extra]


def assert_one_line_error(code: int, stderr: str, stage: str, *fragments: str) -> None:
    assert code == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{stage}: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# --- through a real process: one clean line on stderr, exit 1, nothing written ------------------

# name -> (stage, params overrides, expected fragments of the one stderr line)
PROCESS_CASES = {
    # prepare and evaluate: the lightest and the heaviest imports (sklearn; torch, pandas, sklearn)
    **{f"unknown-key-{stage}": (stage, {"train_gan": {"stepz": 3}},
                                ["params.yaml: train_gan.stepz: unknown key", "allowed keys here:"])
       for stage in ("prepare", "evaluate")},
    # the copy has no data/prepared/train.npz, train_gan's input
    "missing-input-train_gan": ("train_gan", {},
                                ["data/prepared/train.npz: not found", "dvc repro"]),
}


@pytest.fixture(scope="module")
def process_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run every PROCESS_CASE at once (each stage start imports torch: seconds apiece)."""
    started = {}
    for name, (stage, sections, _) in PROCESS_CASES.items():
        root = tmp_path_factory.mktemp(name)
        project = copy_project(root / "project")
        write_params(project / "params.yaml", **sections)
        before = files_under(project)
        proc = subprocess.Popen(stage_cmd(stage), cwd=project, env=stage_env(root),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[name] = (project, before, proc)
    results = {}
    for name, (project, before, proc) in started.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (project, before, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("case", list(PROCESS_CASES))
def test_user_errors_fail_cleanly_from_the_command_line(process_results: dict, case: str) -> None:
    stage, _, fragments = PROCESS_CASES[case]
    project, before, code, out, err = process_results[case]
    assert_one_line_error(code, err, stage, *fragments)
    assert out == ""
    assert files_under(project) == before  # no outputs written
    assert not (project.parent / "mlflow.db").exists()  # failed before opening an MLflow run


# --- the same entry points in-process (fast): more error paths -----------------------------------

def run_in_process(project: Path, stage: str, *extra: str, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """`python -m stages.<stage>` with dvc.yaml's arguments, run in this process: (code, stderr)."""
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "argv", [f"stages/{stage}.py", *stage_cmd(stage)[3:], *extra])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(project / "stages" / f"{stage}.py"), run_name="__main__")
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("stage", STAGES)
def test_unknown_keys_fail_cleanly_before_any_work(
    project_copy: Path, stage: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:
    write_params(project_copy / "params.yaml", evaluate={"lrate": 0.1})
    before = files_under(project_copy)
    code, err = run_in_process(project_copy, stage, monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line_error(code, err, stage, "params.yaml: evaluate.lrate: unknown key")
    assert files_under(project_copy) == before


@pytest.mark.parametrize(("stage", "section", "fragment"), [
    ("prepare", {"prepare": {"image_size": "big"}}, "prepare.image_size: expected int, got 'big'"),
    ("train_gan", {"dcgan": {"arch": "gan"}},
     "dcgan.arch: 'gan' (str) is not allowed; choose one of: dcgan, mlp"),
    ("train_gan", {"train_gan": {"arch": "dcgan"}},
     "train_gan.arch: unknown key; allowed keys here: checkpoint_every, device, ema_decay"),
    ("train_gan", {"train_gan": {"method": "gan2"}},
     f"train_gan.method: 'gan2' (str) is not allowed; choose one of: {', '.join(METHODS)}"),
    ("train_gan", {"stylegan": {"ada_kimg": 0}}, "stylegan.ada_kimg: must be > 0"),
    ("generate", {"generate": {"ratio": [1]}}, "generate.ratio: expected float, got [1] (list)"),
    ("evaluate", {"evaluate": {"steps": True}}, "evaluate.steps: expected int, got True (bool)"),
    ("evaluate", {"seed": "zero"}, "seed: expected int, got 'zero' (str)"),
])
def test_wrong_types_fail_cleanly_before_any_work(
    project_copy: Path, stage: str, section: dict, fragment: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:
    write_params(project_copy / "params.yaml", **section)
    before = files_under(project_copy)
    code, err = run_in_process(project_copy, stage, monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line_error(code, err, stage, fragment)
    assert files_under(project_copy) == before


def test_a_missing_params_file_fails_cleanly(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    code, err = run_in_process(project_copy, "prepare", "--params", "nope.yaml",
                               monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line_error(code, err, "prepare", "nope.yaml: params file not found")


def test_a_missing_path_argument_is_a_usage_error(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(project_copy)
    monkeypatch.setattr(sys, "argv", ["stages/prepare.py", "--out", "x"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(project_copy / "stages" / "prepare.py"), run_name="__main__")
    assert e.value.code == 2
    assert "the following arguments are required: --metrics" in capsys.readouterr().err


def test_generate_without_a_checkpoint_says_what_to_run(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for split in ("train", "val", "test"):
        save_split(project_copy / f"data/prepared/{split}.npz", *make_images([3, 3]))
    before = files_under(project_copy)
    code, err = run_in_process(project_copy, "generate", monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line_error(code, err, "generate", "models/generator.pt: checkpoint not found",
                          "dvc repro train_gan")
    assert files_under(project_copy) == before


def test_generate_with_a_corrupt_checkpoint_fails_cleanly(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for split in ("train", "val", "test"):
        save_split(project_copy / f"data/prepared/{split}.npz", *make_images([3, 3]))
    (project_copy / "models").mkdir()
    (project_copy / "models/generator.pt").write_bytes(b"\x00garbage")
    code, err = run_in_process(project_copy, "generate", monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line_error(code, err, "generate", "models/generator.pt: not a loadable checkpoint")


def test_evaluate_without_synthetic_data_says_what_to_run(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for split in ("train", "val", "test"):
        save_split(project_copy / f"data/prepared/{split}.npz", *make_images([3, 3]))
    before = files_under(project_copy)
    code, err = run_in_process(project_copy, "evaluate", monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line_error(code, err, "evaluate", "data/synthetic/pool.npz: synthetic pool not "
                          "found; run `dvc repro generate`")
    assert files_under(project_copy) == before


def test_a_failing_prepare_writes_nothing(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:
    # valid params that the library rejects once it sees the data (10 digit classes)
    write_params(project_copy / "params.yaml",
                 prepare={"imbalance": "fractions", "keep_fractions": {12: 0.5}})
    before = files_under(project_copy)
    code, err = run_in_process(project_copy, "prepare", monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line_error(code, err, "prepare", "prepare.keep_fractions: class 12 does not exist")
    assert files_under(project_copy) == before


def test_a_failure_inside_a_stage_marks_its_mlflow_run_failed(
    tracking_env: str, project_copy: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    # train_gan's losses go NaN while its MLflow run is open
    write_params(project_copy / "params.yaml",
                 train_gan={"steps": 4, "log_every": 2, "device": "cpu"},
                 dcgan={"width": 8, "batch_size": 8, "loss": "hinge"})
    for split in ("train", "val", "test"):
        save_split(project_copy / f"data/prepared/{split}.npz", *make_images([6, 6]))
    (project_copy / "models").mkdir()
    write_extractor(project_copy / "models/features.pt", *make_images([6, 6]))
    hinge = LOSSES["hinge"]
    monkeypatch.setitem(LOSSES, "hinge", GanLoss(lambda r, f: hinge.d(r, f) * float("nan"),
                                                 hinge.g))
    before = files_under(project_copy)
    code, err = run_in_process(project_copy, "train_gan", monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line_error(code, err, "train_gan", "losses became non-finite by step 2")
    assert {k for k in files_under(project_copy) if not k.startswith("mlruns/")} == set(before)
    store = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = store.get_experiment_by_name(tracking_env)
    found = store.search_runs([exp.experiment_id], "tags.stage = 'train_gan'")
    assert [(r.info.run_name, r.info.status) for r in found] == [("train_gan", "FAILED")]
    assert found[0].data.params["train_gan.steps"] == "4"


# --- dvc.yaml bookkeeping -------------------------------------------------------------------------

def test_each_stage_runs_the_script_of_its_own_name() -> None:
    for stage, spec in DVC["stages"].items():
        cmd = shlex.split(spec["cmd"])
        assert cmd[:3] == ["python", "-m", f"stages.{stage}"]
        assert f"stages/{stage}.py" in spec["deps"]
        assert (REPO / "stages" / f"{stage}.py").is_file()


def config_sections_read(path: Path) -> set[str]:
    """The params sections a stage script reads: `cfg.<section>`, the sections it names to the
    frame (pipeline/stage.py) in `s.log_params("<section>", ...)` (which also logs the seed) and
    in `run(..., device="<section>")`."""
    read = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "cfg"):
            read.add(node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            called = getattr(node.func, "attr", getattr(node.func, "id", ""))
            named = [a for a in node.args if called == "log_params"]
            named += [k.value for k in node.keywords if called == "run" and k.arg == "device"]
            read |= {a.value for a in named if isinstance(a, ast.Constant)}
            read |= {"seed"} if called == "log_params" else set()
    return read - {"digest"}


def test_config_sections_read_sees_what_the_frame_is_told(tmp_path: Path) -> None:
    script = tmp_path / "demo.py"
    script.write_text("def main(s):\n    cfg = s.cfg\n    s.log_params('generate', n=cfg.data)\n"
                      "run('demo', main, {}, device='features')\n")
    assert config_sections_read(script) == {"seed", "generate", "data", "features"}


@pytest.mark.parametrize("stage", STAGES)
def test_params_lists_exactly_the_sections_the_stage_reads(stage: str) -> None:
    listed = set(DVC["stages"][stage]["params"])
    read = config_sections_read(REPO / "stages" / f"{stage}.py")
    if stage == "train_gan":  # the stage hands cfg to the method, which reads its own sections
        read |= {s for name in METHODS for s in method_module(name).SECTIONS}
    assert read == listed


def pipeline_modules(path: Path, seen: set[str] | None = None) -> set[str]:
    """Repository-relative files of every `pipeline` module a script imports, transitively
    (a package's __init__.py counts: importing a submodule runs it)."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "pipeline":
                continue
            for i in range(1, len(parts) + 1):
                base = Path(*parts[:i])
                for candidate in (base / "__init__.py", base.with_suffix(".py")):
                    rel = str(candidate)
                    if (REPO / candidate).is_file() and rel not in seen:
                        seen.add(rel)
                        pipeline_modules(REPO / candidate, seen)
    return seen


@pytest.mark.parametrize("stage", STAGES)
def test_deps_cover_every_pipeline_module_the_stage_runs(stage: str) -> None:
    deps = DVC["stages"][stage]["deps"]
    imported = pipeline_modules(REPO / "stages" / f"{stage}.py") - OUTPUT_NEUTRAL
    uncovered = sorted(m for m in imported
                       if not any(m == d or m.startswith(d.rstrip("/") + "/") for d in deps))
    assert uncovered == []


def test_pipeline_modules_finds_transitive_imports() -> None:
    found = pipeline_modules(REPO / "stages" / "evaluate.py")
    assert {"pipeline/evaluate.py", "pipeline/classify.py", "pipeline/pixels.py",
            "pipeline/models/classifier.py", "pipeline/metrics/classification.py"} <= found
    assert all(not m.startswith("stages/") for m in found)


def test_stage_outputs_chain_into_the_next_stage() -> None:
    stages = DVC["stages"]
    outs = {s: {next(iter(o)) if isinstance(o, dict) else o for o in spec.get("outs", [])}
            for s, spec in stages.items()}
    produced = lambda s: outs[s]  # noqa: E731
    covered = lambda dep, s: any(dep == o or dep.startswith(o.rstrip("/") + "/")  # noqa: E731
                                 for o in produced(s))
    assert any(covered(d, "prepare") for d in stages["features"]["deps"])
    assert any(covered(d, "features") for d in stages["train_gan"]["deps"])
    assert any(covered(d, "features") for d in stages["generate"]["deps"])
    assert any(covered(d, "prepare") for d in stages["train_gan"]["deps"])
    assert any(covered(d, "train_gan") for d in stages["generate"]["deps"])
    assert any(covered(d, "generate") for d in stages["evaluate"]["deps"])
    assert not any(covered(d, "train_gan") for d in stages["prepare"]["deps"])


def _declared(spec: dict, kind: str) -> dict[str, bool]:
    """path -> cached? for a stage's outs / metrics / plots in dvc.yaml (DVC caches by default)."""
    found = {}
    for entry in spec.get(kind, []):
        path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        found[path] = (opts or {}).get("cache", True)
    return found


def test_every_stage_has_a_cached_output_and_metrics_stay_committed() -> None:
    # A fresh clone has no DVC cache: a stage reruns (and logs to MLflow) only if one of its
    # outputs is missing there. So every stage has at least one DVC-cached output, never one that
    # git holds; metrics JSONs are committed (cache: false) for `dvc metrics diff` against git.
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    for name, spec in DVC["stages"].items():
        cached = [p for kind in ("outs", "metrics", "plots")
                  for p, is_cached in _declared(spec, kind).items() if is_cached]
        assert cached, f"{name}: no DVC-cached output, so a fresh clone would skip it"
        for path in cached:
            assert not [f for f in tracked if f == path or f.startswith(path.rstrip("/") + "/")
                        ], f"{name}: {path} is DVC-cached but committed to git"
        assert all(not c for c in _declared(spec, "metrics").values()), name
        for path in _declared(spec, "metrics"):
            assert path in tracked, f"{name}: {path} should be committed"


def test_evaluate_plots_draw_one_series_per_variant_the_params_evaluate() -> None:
    """dvc.yaml cannot read the variant registry: its evaluate plots name the variants that the
    shipped params.yaml expands to (evaluate.variants x synthetic_ratios), no more, no fewer."""
    from pipeline.config import load_config
    from pipeline.evaluate import expand_variants

    expected = sorted(v.name for v in expand_variants(load_config(REPO / "params.yaml").evaluate))
    plots = {next(iter(p)): p[next(iter(p))] for p in DVC["plots"] if isinstance(p, dict)}
    series = {title: spec["y"] for title, spec in plots.items()
              if any(str(f).startswith("plots/evaluate/") for f in spec["y"])}
    assert len(series) == 3  # recall by variant, ROC, confusion
    for title, y in series.items():
        if "plots/evaluate/recall.csv" in y:
            names = y["plots/evaluate/recall.csv"]
        else:
            names = [f.split("/")[-1].split("_", 1)[1].removesuffix(".csv") for f in y]
        assert sorted(names) == expected, title
