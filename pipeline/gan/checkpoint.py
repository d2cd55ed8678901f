"""Two files, both tensors + plain values only (they load with `torch.load(weights_only=True)`):
the generator checkpoint handed from train_gan to generate (`save_generator`, `load_generator`),
and the resumable training state the loop writes every `checkpoint_every` steps
(`TrainingStateFile`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.artifacts import load_checkpoint, save_checkpoint
from pipeline.config import TrainGanConfig
from pipeline.distributed import current, gather_objects
from pipeline.errors import PipelineError
from pipeline.gan.state import FitResult, GanState
from pipeline.models import build_generator

FORMAT = "imbalance-gan/generator/v1"


def save_generator(
    path: str | Path, state: GanState, cfg: TrainGanConfig, *, seed: int,
    best_step: int | None = None,
) -> None:
    """Save the EMA generator with what is needed to rebuild it (`best_step`: the training step
    whose EMA weights these are, when they are the best-by-fid_domain copy, not the last)."""
    save_checkpoint(path, {
        "format": FORMAT, "arch": cfg.arch, "model_kwargs": state.model_kwargs,
        "state_dict": state.G_ema.state_dict(), "step": state.step,
        "best_step": state.step if best_step is None else best_step,
        "train_gan": json.loads(json.dumps(dataclasses.asdict(cfg))), "seed": seed,
    })


def load_generator(path: str | Path, *, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """(generator in eval mode on `device`, checkpoint metadata)."""
    ckpt = load_checkpoint(path)
    found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
    if found != FORMAT:
        raise PipelineError(
            f"{path}: not a generator checkpoint of this project (format {found!r}, "
            f"expected {FORMAT!r}); rerun `dvc repro train_gan`"
        )
    G = build_generator(ckpt["arch"], **ckpt["model_kwargs"])
    G.load_state_dict(ckpt.pop("state_dict"))
    return G.to(device).eval(), ckpt


TRAINING_STATE = "imbalance-gan/train-state/v1"


@dataclass
class TrainingStateFile:
    """The full training state at `path`; a run continues it only if `key` matches (same data
    and settings). `notify` gets one line when a state is resumed or ignored."""

    path: str | Path
    key: str = ""
    notify: Callable[[str], None] = lambda message: None

    def save(self, result: FitResult, sums: torch.Tensor, gen: torch.Generator) -> None:
        """Everything the loop needs to continue bit-for-bit: models, optimizers, step, the loss
        sums of the open log interval, histories, the best generator so far and every RNG state
        (augmentations draw from torch's global RNG, so its state is the augmentation state)."""
        s = result.state
        rng = {"torch": torch.get_rng_state(), "generator": gen.get_state().cpu(),
               "sums": sums.cpu()}
        if sums.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(sums.device)
        ranks = gather_objects(rng)  # under torchrun every rank's streams: rank r resumes rank r's
        if not current().is_main:
            return
        save_checkpoint(self.path, {
            "format": TRAINING_STATE, "key": self.key, "step": s.step, "seconds": result.seconds,
            "G": s.G.state_dict(), "D": s.D.state_dict(), "G_ema": s.G_ema.state_dict(),
            "opt_g": s.opt_g.state_dict(), "opt_d": s.opt_d.state_dict(), "rng": ranks,
            "history": result.history, "quality": result.quality,
            "best": result.best, "best_state": result.best_state,
        })

    def restore(self, result: FitResult, sums: torch.Tensor, gen: torch.Generator, *,
                steps: int) -> bool:
        """Load a matching state into `result` (its state), `sums` and `gen`; False (and the
        reason to `notify`) when there is none to continue."""
        if not Path(self.path).exists():
            return False
        ckpt = self._matching(steps)
        if ckpt is None:
            return False
        state, world = result.state, current()
        state.G.load_state_dict(ckpt["G"])
        state.D.load_state_dict(ckpt["D"])
        state.G_ema.load_state_dict(ckpt["G_ema"])
        state.opt_g.load_state_dict(ckpt["opt_g"])
        state.opt_d.load_state_dict(ckpt["opt_d"])
        state.step = ckpt["step"]
        rng = ckpt["rng"][world.rank]
        torch.set_rng_state(rng["torch"])
        gen.set_state(rng["generator"])
        if "cuda" in rng and sums.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], sums.device)
        sums.copy_(rng["sums"])
        result.history, result.quality = list(ckpt["history"]), list(ckpt["quality"])
        result.best, result.best_state = ckpt["best"], ckpt["best_state"]
        result.seconds = float(ckpt["seconds"])
        self.notify(f"resuming from step {state.step} ({self.path})")
        return True

    def _matching(self, steps: int) -> dict[str, Any] | None:
        path = self.path
        try:
            ckpt = load_checkpoint(path)
        except PipelineError:
            self.notify(f"{path} is not a readable training state; starting from step 0")
            return None
        if (ckpt.get("format") != TRAINING_STATE or ckpt.get("key") != self.key
                or len(ckpt.get("rng", ())) != current().world_size):
            self.notify(f"{path} holds a run with other data or settings; starting from step 0")
            return None
        if ckpt["step"] > steps:
            self.notify(f"{path} is at step {ckpt['step']}, past train_gan.steps={steps}; "
                        f"starting from step 0")
            return None
        return ckpt
