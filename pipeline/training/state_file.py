"""The resumable training state the loop writes every `checkpoint_every` steps
(`TrainingStateFile`: tensors + plain values only, so it loads with `torch.load(weights_only=True)`)
and the key a saved state must match to be continued (`resume_key`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import pipeline
from pipeline.artifacts import file_sha256, load_checkpoint, save_checkpoint
from pipeline.config import Config
from pipeline.distributed import current, gather_objects
from pipeline.errors import PipelineError
from pipeline.training.state import FitResult

# The code a training state depends on: a state written by other code is not continued.
CODE = ("training", "models", "gan", "synthesizers")


def resume_key(cfg: Config, device: torch.device, train: Path, features: str | Path, *,
               sections: tuple[str, ...]) -> str:
    """What a saved training state must match to be continued: every train_gan setting except
    `steps` (so a finished run can be extended), every section the method reads (`sections`),
    the seed, the device type, the exact data and feature extractor, and the training code."""
    settings = {k: v for k, v in dataclasses.asdict(cfg.train_gan).items() if k != "steps"}
    others = {n: dataclasses.asdict(getattr(cfg, n)) for n in sections if n != "train_gan"}
    code = Path(pipeline.__file__).parent
    sources = sorted(f for d in CODE for f in (code / d).glob("*.py"))
    payload = json.dumps({"train_gan": settings, **others, "seed": cfg.seed, "device": device.type,
                          "train": file_sha256(train), "features": file_sha256(features),
                          "features_cfg": dataclasses.asdict(cfg.features),
                          "code": [file_sha256(f) for f in sources]},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


TRAINING_STATE = "imbalance-gan/train-state/v2"  # v2: models and optimizers by name


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
            "models": {n: m.state_dict() for n, m in s.models.items()},
            "ema": s.ema.state_dict(),
            "optimizers": {n: o.state_dict() for n, o in s.optimizers.items()}, "rng": ranks,
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
        for name, model in state.models.items():
            model.load_state_dict(ckpt["models"][name])
        state.ema.load_state_dict(ckpt["ema"])
        for name, opt in state.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
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
