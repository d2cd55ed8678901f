"""What a GAN training run holds: models, optimizers, the EMA generator, the step (`GanState`),
and what it has measured so far (`FitResult`). Shared by every method's step and the one loop
(pipeline/gan/loop.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

# EMA generator -> quality metrics, at least {"fid_domain": float} (see pipeline/gan/quality.py)
QualityFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class GanState:
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    model_kwargs: dict[str, int]  # what the method needs to rebuild G
    step: int = 0
    # Under torchrun: DistributedDataParallel wrappers of G and D (None in a single process).
    G_ddp: nn.Module | None = None
    D_ddp: nn.Module | None = None
    amp_dtype: torch.dtype | None = None  # autocast dtype of the forward passes (None = fp32)

    def autocast(self) -> contextlib.AbstractContextManager:
        device = next(self.G.parameters()).device.type
        return torch.autocast(device, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    @property
    def g_train(self) -> nn.Module:
        return self.G if self.G_ddp is None else self.G_ddp

    @property
    def d_train(self) -> nn.Module:
        return self.D if self.D_ddp is None else self.D_ddp


@dataclass
class FitResult:
    state: GanState
    history: list[dict[str, float]] = field(default_factory=list)  # one row per log_every steps
    quality: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation
    best: dict[str, float] | None = None  # the quality row with the lowest fid_domain
    best_state: dict[str, torch.Tensor] | None = None  # EMA generator weights at that step
    seconds: float = 0.0

    def keep_best(self) -> int:
        """Load the best-by-fid_domain EMA weights (if quality was measured) into `state.G_ema`;
        returns the step they are from."""
        if self.best_state is not None:
            self.state.G_ema.load_state_dict(self.best_state)
        return self.state.step if self.best is None else int(self.best["step"])


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, *, decay: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):  # BatchNorm running stats
        b_ema.copy_(b)
