"""One training loop for every conditional GAN variant: pluggable models, losses and augmentation.

`fit` owns the loop; `d_step` and `g_step` are the two halves of an update. Metrics leave the
loop only through the `log(metrics, step)` callable, and only every `log_every` steps, so the
device never waits on the host inside a step.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pipeline import LogFn
from pipeline.config import TrainGanConfig
from pipeline.errors import PipelineError
from pipeline.gan.augment import diff_augment
from pipeline.gan.losses import LOSSES, GanLoss
from pipeline.models import build_discriminator, build_generator
from pipeline.pixels import to_uint8, to_unit

__all__ = ["FitResult", "GanState", "LogFn", "fit", "sample", "to_uint8", "to_unit"]


@dataclass
class GanState:
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    model_kwargs: dict[str, int]  # what build_generator needs to rebuild G
    step: int = 0


@dataclass
class FitResult:
    state: GanState
    history: list[dict[str, float]] = field(default_factory=list)  # one row per log_every steps
    seconds: float = 0.0


def build_state(
    cfg: TrainGanConfig, *, n_classes: int, image_size: int, channels: int, device: torch.device
) -> GanState:
    model_kwargs = dict(
        latent_dim=cfg.latent_dim, n_classes=n_classes, image_size=image_size,
        channels=channels, width=cfg.width,
    )
    G = build_generator(cfg.arch, **model_kwargs).to(device)
    D = build_discriminator(
        cfg.arch, spectral_norm=cfg.spectral_norm, n_classes=n_classes,
        image_size=image_size, channels=channels, width=cfg.width,
    ).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    return GanState(G, D, G_ema, opt_g, opt_d, model_kwargs)


def d_step(
    state: GanState, real: torch.Tensor, y: torch.Tensor, z: torch.Tensor, *,
    loss: GanLoss, augment: list[str],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One discriminator update. Returns (loss, mean real logit, mean fake logit), on device."""
    with torch.no_grad():
        fake = state.G(z, y)
    # One discriminator pass over real and fake together: half the kernel launches and spectral-
    # norm power iterations of two passes (D has no BatchNorm, so the result is the same).
    logits = state.D(diff_augment(torch.cat([real, fake]), augment), torch.cat([y, y]))
    real_logits, fake_logits = logits.chunk(2)
    d_loss = loss.d(real_logits, fake_logits)
    state.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    state.opt_d.step()
    return d_loss.detach(), real_logits.detach().mean(), fake_logits.detach().mean()


def g_step(
    state: GanState, y: torch.Tensor, z: torch.Tensor, *, loss: GanLoss, augment: list[str]
) -> torch.Tensor:
    """One generator update against the current discriminator. Returns the loss, on device."""
    fake = state.G(z, y)
    g_loss = loss.g(state.D(diff_augment(fake, augment), y))
    state.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    state.opt_g.step()
    return g_loss.detach()


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, *, decay: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):  # BatchNorm running stats
        b_ema.copy_(b)


def fit(
    images: np.ndarray, labels: np.ndarray, cfg: TrainGanConfig, *, n_classes: int, seed: int,
    device: torch.device, log: LogFn = lambda metrics, step: None,
) -> FitResult:
    """Train a class-conditional GAN on uint8 images (N, H, W, C) with int labels (N,)."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    data = torch.from_numpy(images).to(device)  # uint8 on the device: the whole set stays resident
    targets = torch.from_numpy(labels).to(device)
    state = build_state(
        cfg, n_classes=n_classes, image_size=images.shape[1], channels=images.shape[3],
        device=device,
    )
    loss, augment = LOSSES[cfg.loss], list(cfg.diffaugment)
    # Per-image sampling weights: uniform over images, or uniform over classes (minority classes
    # then get as many generator and discriminator updates as the majority).
    counts = torch.bincount(targets, minlength=n_classes).float()
    weights = 1.0 / counts[targets] if cfg.balanced_sampling else torch.ones_like(targets).float()
    result, sums, start = FitResult(state), torch.zeros(4, device=device), time.perf_counter()
    for step in range(1, cfg.steps + 1):
        idx = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=gen)
        real, y = to_unit(data[idx]), targets[idx]
        z = torch.randn(cfg.batch_size, cfg.latent_dim, device=device, generator=gen)
        d_loss, d_real, d_fake = d_step(state, real, y, z, loss=loss, augment=augment)
        z = torch.randn(cfg.batch_size, cfg.latent_dim, device=device, generator=gen)
        g_loss = g_step(state, y, z, loss=loss, augment=augment)
        # EMA warm-up: early on, average over the steps seen so far rather than the random init.
        ema_update(state.G_ema, state.G, decay=min(cfg.ema_decay, (1 + step) / (10 + step)))
        state.step = step
        sums += torch.stack([d_loss, g_loss, d_real, d_fake])
        if step % cfg.log_every == 0 or step == cfg.steps:
            n = step - (result.history[-1]["step"] if result.history else 0)
            row = _log_row(sums / n, step)
            sums.zero_()
            result.history.append(row)
            log({k: v for k, v in row.items() if k != "step"}, step)
    result.seconds = time.perf_counter() - start
    return result


def _log_row(means: torch.Tensor, step: int) -> dict[str, float]:
    d_loss, g_loss, d_real, d_fake = means.tolist()  # the one host sync per log interval
    if not all(math.isfinite(v) for v in (d_loss, g_loss)):
        raise PipelineError(
            f"train_gan: losses became non-finite by step {step} (d_loss={d_loss}, "
            f"g_loss={g_loss}); lower train_gan.lr_d / train_gan.lr_g or enable spectral_norm"
        )
    return {"step": step, "d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}


@torch.no_grad()
def sample(
    G: nn.Module, labels: np.ndarray, seeds: np.ndarray, *, latent_dim: int,
    device: torch.device, batch_size: int = 512,
) -> np.ndarray:
    """Images for `labels` (N,), image i drawn from z ~ N(0, I) seeded by seeds[i]: uint8 (N, H, W, C).

    Seeding each image on its own makes any single synthetic image reproducible from the manifest.
    """
    G.eval()
    z = torch.stack([
        torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds
    ] or [torch.zeros(latent_dim)])  # one dummy row so an empty request still knows the shape
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64).reshape(-1))
    y = y if len(y) else torch.zeros(1, dtype=torch.int64)
    out = torch.cat([
        to_uint8(G(z[i : i + batch_size].to(device), y[i : i + batch_size].to(device))).cpu()
        for i in range(0, len(z), batch_size)
    ])
    return out[: len(seeds)].numpy()
