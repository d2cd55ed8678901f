"""The generator checkpoint handed from train_gan to generate (tensors + plain values only, so it
loads with `torch.load(weights_only=True)`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.artifacts import load_checkpoint, save_checkpoint
from pipeline.config import TrainGanConfig
from pipeline.errors import PipelineError
from pipeline.gan.train import GanState
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
