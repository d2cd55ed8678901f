"""Time the default pipeline end to end: `dvc repro` from scratch, then a no-op `dvc repro`.

Runs in a temporary copy of the project (its own git repo, DVC cache and MLflow store), so the
checkout's outputs are untouched. Prints a table and the evaluate.json headline.

    python bench/pipeline_timing.py [--set train_gan.steps=3000 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from overrides import with_overrides

ROOT = Path(__file__).resolve().parents[1]
COPY = ["pipeline", "stages", "params.yaml", "dvc.yaml", "pyproject.toml", ".dvc/config", "data/raw",
        ".dvcignore"]


def make_copy(dest: Path, overrides: list[str]) -> None:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    params = with_overrides(yaml.safe_load((dest / "params.yaml").read_text()), overrides)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                 "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="*", default=[], help="params overrides key=value")
    args = parser.parse_args()
    dvc = str(Path(sys.executable).with_name("dvc"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_copy(work, args.set)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
               # dvc.yaml says `python`: make it this interpreter, venv or not
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        full = timed([dvc, "repro"], work, env)
        noop = timed([dvc, "repro"], work, env)
        metrics = {s: json.loads((work / "metrics" / f"{s}.json").read_text())
                   for s in ("train_gan", "evaluate")}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"overrides: {args.set or 'none (default params.yaml)'}")
    print("| measurement                 | seconds |\n|---|---|")
    print(f"| dvc repro (from scratch)    | {full:7.1f} |")
    print(f"|   of which train_gan loop   | {metrics['train_gan']['seconds']:7.1f} |")
    print(f"| dvc repro (no-op)           | {noop:7.1f} |")
    print("| variant | accuracy | balanced_accuracy | macro_f1 | roc_auc | minority_recall |")
    print("|---|---|---|---|---|---|")
    for name, m in metrics["evaluate"].items():
        print(f"| {name} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | "
              f"{m['macro_f1']:.3f} | {m['roc_auc']:.3f} | {m['minority_recall']:.3f} |")


if __name__ == "__main__":
    main()
