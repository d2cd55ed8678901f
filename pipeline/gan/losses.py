"""Adversarial losses on raw discriminator logits, looked up by name (params `train_gan.loss`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F


class GanLoss(NamedTuple):
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (real (B,), fake (B,)) -> scalar
    g: Callable[[torch.Tensor], torch.Tensor]  # (fake_logits (B,)) -> scalar


def _bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log D(x) - log(1 - D(G(z)))


def _bce_g(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean()  # non-saturating: -log D(G(z))


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def _hinge_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


LOSSES: dict[str, GanLoss] = {
    "bce": GanLoss(_bce_d, _bce_g),
    "hinge": GanLoss(_hinge_d, _hinge_g),
}
