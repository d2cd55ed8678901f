"""The one training loop every method shares; each method supplies its own update.

`train_loop` counts steps, keeps the EMA model, logs the mean of each column over every
`log_every` steps (the one host sync per interval, so the device never waits on the host inside
a step), evaluates every `eval_every` steps and keeps the EMA model with the lowest fid_domain,
writes the resumable training state every `checkpoint_every` steps and resumes from it exactly,
and stops on non-finite losses before they reach the logger or overwrite a good state. Its parts
come in as arguments: the update (`Update`), the evaluator (`quality`), the state file
(pipeline/training/state_file.py `TrainingStateFile`) and the logger.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline import LogFn
from pipeline.config import TrainGanConfig
from pipeline.distributed import gather_objects, local, mean_over_ranks
from pipeline.errors import PipelineError
from pipeline.training.state import FitResult, QualityFn, TrainState, ema_update
from pipeline.training.state_file import TrainingStateFile

__all__ = ["Schedule", "Update", "is_loss", "train_loop"]


class Update:
    """One training step of a method: `update(state, step)` updates the models and returns the
    step's values of `columns`, a tensor (len(columns),) on the device (no host sync).

    Its loss columns are those named `loss` or `*_loss` (`is_loss`): the progress line, the
    stage's summary (final_<name>) and the report's loss figure show them, and their log means
    must be finite (the other columns are diagnostics, e.g. D's mean outputs). `advice`: what the
    non-finite error suggests."""

    columns: tuple[str, ...] = ("loss",)  # what a call returns, in this order
    advice: str = "lower the learning rate in the method's params section"

    @property
    def losses(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if is_loss(c))

    def __call__(self, state: TrainState, step: int) -> torch.Tensor:
        raise NotImplementedError

    def extras(self) -> dict[str, float]:
        """Values read at log time and appended to each log row (e.g. ADA's p)."""
        return {}


def is_loss(column: str) -> bool:
    return column == "loss" or column.endswith("_loss")


@dataclass(frozen=True)
class Schedule:
    steps: int
    ema_decay: float
    log_every: int
    eval_every: int  # 0: at the last step only
    checkpoint_every: int

    @classmethod
    def of(cls, cfg: TrainGanConfig) -> Schedule:
        return cls(steps=cfg.steps, ema_decay=cfg.ema_decay, log_every=cfg.log_every,
                   eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every)


def train_loop(
    state: TrainState, update: Update, schedule: Schedule, *, gen: torch.Generator,
    device: torch.device, log: LogFn = lambda metrics, step: None,
    quality: QualityFn | None = None, state_file: TrainingStateFile | None = None,
) -> FitResult:
    """Train `state` from its step to `schedule.steps` with `update`; `gen` is the method's
    generator for batches and latents (saved and restored with the state).

    quality: called with the EMA model every `eval_every` steps and at the end; returns
        metrics including `fid_domain`. The one with the lowest fid_domain is kept
        (`FitResult.best_state`); without `quality` the last EMA model is the result.
    state_file: where the full training state is written every `checkpoint_every` steps and at the
        end. If it holds a state of the same run, training resumes from it and ends with the same
        weights as an uninterrupted run (on CPU; GPU kernels may be nondeterministic).
    """
    result = FitResult(state, losses=tuple(update.losses))
    sums = torch.zeros(len(update.columns), device=device)
    if state_file is not None:
        state_file.restore(result, sums, gen, steps=schedule.steps)
    where = None if state_file is None else state_file.path
    _same_step_on_every_rank(state.step, where)
    start = time.perf_counter() - result.seconds
    last_logged = result.history[-1]["step"] if result.history else 0
    for step in range(state.step + 1, schedule.steps + 1):
        sums += update(state, step)
        # EMA warm-up: early on, average over the steps seen so far rather than the random init.
        ema_update(state.ema, state[state.ema_of], decay=min(schedule.ema_decay, (1 + step) / (10 + step)))
        state.step = step
        last = step == schedule.steps
        if step % schedule.log_every == 0 or last:
            row = _log_row(update, mean_over_ranks(sums / (step - last_logged)), step, where)
            sums.zero_()
            result.history.append(row)
            last_logged = step
            log({k: v for k, v in row.items() if k != "step"}, step)
        if quality is not None and ((schedule.eval_every and step % schedule.eval_every == 0)
                                    or last):
            _evaluate(quality, result, device)
        if state_file is not None and (step % schedule.checkpoint_every == 0 or last):
            if not bool(torch.isfinite(mean_over_ranks(sums.clone())).all()):
                raise PipelineError(_nonfinite_message(step, where, update.advice))  # keep the good state
            result.seconds = time.perf_counter() - start
            state_file.save(result, sums, gen)
    result.seconds = time.perf_counter() - start
    return result


def _same_step_on_every_rank(step: int, where: str | Path | None) -> None:
    steps = gather_objects(step)  # under torchrun: every rank must resume the same step
    if len(set(steps)) > 1:
        raise PipelineError(
            f"train_gan: the processes found different training states at {where} (steps "
            f"{steps}); put checkpoints/ on storage every node shares, or "
            f"delete the state to start over"
        )


def _evaluate(quality: QualityFn, result: FitResult, device: torch.device) -> None:
    """Quality metrics of the EMA model; keeps a copy of the best one by fid_domain.

    The RNG state is forked so that evaluating (which samples and trains a TSTR classifier) never
    changes the training run: the weights are the same with or without evaluation.
    """
    state = result.state
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), local():
        metrics = quality(state.ema)  # under torchrun: rank 0 alone, so no collectives
    row = {"step": state.step, **metrics}
    result.quality.append(row)
    best = result.best
    if best is None or metrics["fid_domain"] < best["fid_domain"]:
        result.best = row
        weights = state.ema.state_dict()
        result.best_state = {k: v.detach().cpu().clone() for k, v in weights.items()}


def _nonfinite_message(step: int, where: str | Path | None, advice: str) -> str:
    kept = f"; the last good training state is kept in {where}" if where else ""
    return f"train_gan: losses became non-finite by step {step}{kept}; {advice}"


def _log_row(update: Update, means: torch.Tensor, step: int, where: str | Path | None
             ) -> dict[str, float]:
    values = dict(zip(update.columns, means.tolist()))  # the one host sync per log interval
    if not all(math.isfinite(values[k]) for k in update.losses):
        shown = ", ".join(f"{k}={values[k]}" for k in update.losses)
        raise PipelineError(f"{_nonfinite_message(step, where, update.advice)} ({shown})")
    return {"step": step, **values, **update.extras()}
