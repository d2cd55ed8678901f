"""Adversarial losses on raw discriminator logits, looked up by name (params `dcgan.loss`).

A loss with `gradient_penalty=True` also needs the critic's gradient norm on real-fake
interpolates (WGAN-GP, Gulrajani et al. 2017); the discriminator step computes it
(pipeline/synthesizers/dcgan.py `d_step`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F


class GanLoss(NamedTuple):
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (real (B,), fake (B,)) -> scalar
    g: Callable[[torch.Tensor], torch.Tensor]  # (fake_logits (B,)) -> scalar
    gradient_penalty: bool = False  # add gp_weight * E[(||grad D(x_hat)|| - 1)^2]


def _bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log D(x) - log(1 - D(G(z)))


def _bce_g(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean()  # non-saturating: -log D(G(z))


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def _hinge_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def _wgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # Wasserstein critic loss plus a small drift term (Karras et al. 2018) that keeps the critic's
    # outputs near 0; the output is otherwise unconstrained and can wander off on small data.
    return fake.mean() - real.mean() + 1e-3 * real.square().mean()


def _wgan_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


LOSSES: dict[str, GanLoss] = {
    "bce": GanLoss(_bce_d, _bce_g),
    "hinge": GanLoss(_hinge_d, _hinge_g),
    "wgan-gp": GanLoss(_wgan_d, _wgan_g, gradient_penalty=True),
}
