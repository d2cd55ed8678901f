"""What a training run holds: models and optimizers by name, the EMA copy of the model that
samples, the step (`TrainState`), and what it has measured so far (`FitResult`). Shared by every
method's update and the one loop (pipeline/training/loop.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

# EMA model -> quality metrics, at least {"fid_domain": float} (see pipeline/quality.py)
QualityFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainState:
    """models: every trained module by name (a GAN: {"G", "D"}); optimizers: by the name of the
    model each updates; `ema` averages `models[ema_of]` and is what samples."""

    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema: nn.Module
    model_kwargs: dict[str, int]  # what the method needs to rebuild the sampling model
    ema_of: str = "G"
    step: int = 0
    # Under torchrun: DistributedDataParallel wrappers by model name (none in a single process).
    ddp: dict[str, nn.Module] = field(default_factory=dict)
    amp_dtype: torch.dtype | None = None  # autocast dtype of the forward passes (None = fp32)

    def __getitem__(self, name: str) -> nn.Module:
        return self.models[name]

    def trained(self, name: str) -> nn.Module:
        """The model to run a gradient step through: its DDP wrapper under torchrun."""
        return self.ddp.get(name, self.models[name])

    def autocast(self) -> contextlib.AbstractContextManager:
        device = next(self.ema.parameters()).device.type
        return torch.autocast(device, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)


@dataclass
class FitResult:
    state: TrainState
    history: list[dict[str, float]] = field(default_factory=list)  # one row per log_every steps
    quality: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation
    best: dict[str, float] | None = None  # the quality row with the lowest fid_domain
    best_state: dict[str, torch.Tensor] | None = None  # EMA weights at that step
    seconds: float = 0.0
    losses: tuple[str, ...] = ()  # the update's loss columns (progress line, summary, report)

    def keep_best(self) -> int:
        """Load the best-by-fid_domain EMA weights (if quality was measured) into `state.ema`;
        returns the step they are from."""
        if self.best_state is not None:
            self.state.ema.load_state_dict(self.best_state)
        return self.state.step if self.best is None else int(self.best["step"])


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, *, decay: float) -> None:
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):  # BatchNorm running stats
        b_ema.copy_(b)


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """`precision: auto` -> bf16 autocast on GPUs that support it, fp32 elsewhere."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None
