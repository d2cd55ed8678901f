"""The frame every DVC stage runs in, written once: a `stages/*.py` script holds only its own work.

    def main(s: Stage) -> None:
        cfg = s.cfg
        ...                                       # the stage's work, on s.device
        s.log_params("features", n_train=...)     # seed + its sections, as MLflow params
        s.finish(metrics, [plot, ...])            # metrics JSON, MLflow metrics and artifacts

    if __name__ == "__main__":
        run("features", main, {"data": "...", "metrics": "..."}, device="features")

`run` parses `--params` and the stage's path arguments, loads the config, resolves the device of
the named section and (`distributed=True`) joins the torchrun process group; a `PipelineError`
anywhere becomes one line `<stage>: error: ...` on stderr and exit status 1 (pipeline/cli.py).
The stage's MLflow run opens on first use of `s.run` (so a stage can fail on its inputs, or fork
its workers, before any tracking exists) and closes when the stage ends: FINISHED, or FAILED when
it raised. It is closed before the process group is left.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline.artifacts import save_json
from pipeline.cli import run_stage
from pipeline.config import Config, load_config
from pipeline.device import resolve_device
from pipeline.distributed import Dist, process_group
from pipeline.schema import as_flat_dict

if TYPE_CHECKING:
    from pipeline.tracking import StageRun

# An artifact to log: a path, or (path, folder in the run's artifacts).
Artifact = str | Path | tuple[str | Path, str]


def n_classes_of(*labels: np.ndarray) -> int:
    """The number of classes the label arrays of one dataset span: labels are 0..K-1.
    >>> n_classes_of(np.array([0, 2]), np.array([1, 3]))
    4
    """
    return int(max(int(y.max()) for y in labels)) + 1


def setting_tags(cfg: Config) -> dict[str, str]:
    """MLflow tags on every stage run naming the settings a study compares (bench/regime.py
    filters on them): the training-split scarcity and the synthesis method. Tags, not params:
    they describe the pipeline execution, whichever sections the stage reads.
    >>> setting_tags(Config())["train_gan.method"]
    'dcgan'
    """
    tags = {"prepare.imbalance": cfg.prepare.imbalance, "train_gan.method": cfg.train_gan.method}
    if cfg.prepare.imbalance == "counts":  # e.g. "malignant=25"
        tags["prepare.keep_counts"] = ",".join(
            f"{c}={n}" for c, n in sorted(cfg.prepare.keep_counts.items(), key=lambda kv: str(kv[0])))
    return tags


@dataclass
class Stage:
    """One stage execution: its name, path arguments, config, process group and MLflow run."""

    name: str
    args: argparse.Namespace  # --params and the stage's paths, as dvc.yaml passes them
    cfg: Config
    world: Dist  # rank and world size under torchrun; rank 0 of 1 otherwise
    _exits: contextlib.ExitStack = field(repr=False)
    _run: StageRun | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return self.world.device

    @property
    def run(self) -> StageRun:
        """The stage's MLflow run (named after the stage), opened on first use."""
        return self.open_run()

    def open_run(self) -> StageRun:
        """Open the MLflow run now, if not yet open: it then spans (and fails with) what follows."""
        if self._run is None:
            from pipeline.tracking import stage_run

            self._run = self._exits.enter_context(
                stage_run(self.name, params_digest=self.cfg.digest,
                          tags=setting_tags(self.cfg)))
        return self._run

    def log_params(self, *sections: str, **extra: Any) -> None:
        """MLflow params: `seed`, every key of the named params sections as `<section>.<key>`,
        then `extra` (values the stage derived, e.g. the device it ran on)."""
        params: dict[str, Any] = {"seed": self.cfg.seed}
        for name in dict.fromkeys(sections):
            params.update(as_flat_dict(getattr(self.cfg, name), f"{name}."))
        self.run.log_params({**params, **extra})

    def finish(self, metrics: Mapping[str, Any] | None, artifacts: Iterable[Artifact] = (), *,
               step: int | None = None, tracked: Mapping[str, Any] | None = None) -> None:
        """Write `metrics` atomically to `--metrics` (key order kept), log them as MLflow metrics
        (numbers only; `tracked` instead when the run should get less, at `step`), then log the
        metrics file and `artifacts`."""
        if metrics is not None:
            save_json(self.args.metrics, metrics)
        logged = metrics if tracked is None else tracked
        if logged is not None:
            self.run.log_metrics(logged, step=step)
        for artifact in ([self.args.metrics] if metrics is not None else []) + list(artifacts):
            path, folder = artifact if isinstance(artifact, tuple) else (artifact, None)
            self.run.log_artifact(path, folder)


@contextlib.contextmanager
def stage(name: str, args: argparse.Namespace, *, device: str | None = None,
          distributed: bool = False) -> Iterator[Stage]:
    """The frame of stage `name`: config from `args.params`, the device of params section
    `device` (CPU when None), the torchrun process group when `distributed`, and the MLflow run
    (see the module docstring) closed on the way out."""
    cfg = load_config(args.params)
    dev = resolve_device(getattr(cfg, device).device) if device else torch.device("cpu")
    with contextlib.ExitStack() as exits:
        world = exits.enter_context(process_group(dev)) if distributed else Dist(device=dev)
        # the MLflow run, entered later on the same stack, is closed before the group is left
        yield Stage(name, args, cfg, world, exits)


def run(name: str, main: Callable[[Stage], None], paths: dict[str, str], *,
        device: str | None = None, distributed: bool = False) -> None:
    """The command line of stage `name`: `--params` and one required `--<path>` per entry of
    `paths` (flag -> help), `main` inside the frame, a PipelineError as one line and exit 1."""
    def framed(args: argparse.Namespace) -> None:
        with stage(name, args, device=device, distributed=distributed) as s:
            main(s)

    run_stage(name, framed, paths)
