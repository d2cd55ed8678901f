"""One training loop for every conditional GAN variant: pluggable models, losses and augmentation.

`fit` owns the loop; `d_step` and `g_step` are the two halves of an update. Metrics leave the
loop only through the `log(metrics, step)` callable, and only every `log_every` steps, so the
device never waits on the host inside a step.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline import LogFn
from pipeline.artifacts import load_checkpoint, save_checkpoint
from pipeline.config import TrainGanConfig
from pipeline.distributed import (
    current, gather_objects, local, mean_over_ranks, per_rank_batch, wrap_ddp,
)
from pipeline.errors import PipelineError
from pipeline.gan.augment import diff_augment
from pipeline.gan.latents import latents
from pipeline.gan.losses import LOSSES, GanLoss
from pipeline.models import build_discriminator, build_generator
from pipeline.pixels import to_uint8, to_unit

__all__ = ["FitResult", "GanState", "LogFn", "QualityFn", "fit", "sample", "to_uint8", "to_unit"]


@dataclass
class GanState:
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    model_kwargs: dict[str, int]  # what build_generator needs to rebuild G
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


# EMA generator -> quality metrics, at least {"fid_domain": float} (see pipeline/gan/quality.py)
QualityFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class FitResult:
    state: GanState
    history: list[dict[str, float]] = field(default_factory=list)  # one row per log_every steps
    quality: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation
    best: dict[str, float] | None = None  # the quality row with the lowest fid_domain
    best_state: dict[str, torch.Tensor] | None = None  # EMA generator weights at that step
    seconds: float = 0.0


def build_state(
    cfg: TrainGanConfig, *, n_classes: int, image_size: int, channels: int, device: torch.device
) -> GanState:
    model_kwargs = dict(
        latent_dim=cfg.latent_dim, n_classes=n_classes, image_size=image_size,
        channels=channels, width=cfg.width,
    )
    cuda = device.type == "cuda"
    # On GPUs: channels-last convolutions (tensor-core friendly), fused Adam (one kernel per
    # update instead of one per tensor), autotuned cuDNN kernels for the fixed shapes.
    layout = torch.channels_last if cuda else torch.contiguous_format
    G = build_generator(cfg.arch, **model_kwargs).to(device, memory_format=layout)
    D = build_discriminator(
        cfg.arch, spectral_norm=cfg.spectral_norm, n_classes=n_classes,
        image_size=image_size, channels=channels, width=cfg.width,
    ).to(device, memory_format=layout)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    fused = True if cuda else None
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas, fused=fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas, fused=fused)
    if cuda:
        torch.backends.cudnn.benchmark = True
    return GanState(G, D, G_ema, opt_g, opt_d, model_kwargs,
                    amp_dtype=amp_dtype(cfg.precision, device))


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """`precision: auto` -> bf16 autocast on GPUs that support it, fp32 elsewhere."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def d_step(
    state: GanState, real: torch.Tensor, y: torch.Tensor, z: torch.Tensor, *,
    loss: GanLoss, augment: list[str], gp_weight: float = 10.0, r1_gamma: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One discriminator update. Returns (loss, mean real logit, mean fake logit), on device.

    Penalties see the same augmented images as the loss: WGAN-GP's gradient penalty on random
    interpolates of real and fake, R1 (Mescheder et al. 2018) on the real half.
    """
    with torch.no_grad(), state.autocast():
        fake = state.G(z, y)
    # One discriminator pass over real and fake together: half the kernel launches and spectral-
    # norm power iterations of two passes (D has no BatchNorm, so the result is the same).
    x = diff_augment(torch.cat([real, fake.to(real.dtype)]), augment)
    if r1_gamma > 0:
        x = x.detach().requires_grad_(True)
    with state.autocast():
        logits = state.d_train(x, torch.cat([y, y])).float()  # the one forward DDP synchronises
    real_logits, fake_logits = logits.chunk(2)
    d_loss = loss.d(real_logits, fake_logits)
    if r1_gamma > 0:
        (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
        d_loss = d_loss + r1_gamma / 2 * grad[: len(real)].square().sum(dim=(1, 2, 3)).mean()
    if loss.gradient_penalty and gp_weight > 0:
        x_real, x_fake = x.detach().chunk(2)
        eps = torch.rand(len(x_real), 1, 1, 1, device=x.device, dtype=x.dtype)
        x_hat = (eps * x_real + (1 - eps) * x_fake).requires_grad_(True)
        with state.autocast():
            critic = state.D(x_hat, y).float().sum()
        (grad,) = torch.autograd.grad(critic, x_hat, create_graph=True)
        d_loss = d_loss + gp_weight * (grad.flatten(1).norm(dim=1) - 1).square().mean()
    state.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    state.opt_d.step()
    return d_loss.detach(), real_logits.detach().mean(), fake_logits.detach().mean()


def g_step(
    state: GanState, y: torch.Tensor, z: torch.Tensor, *, loss: GanLoss, augment: list[str]
) -> torch.Tensor:
    """One generator update against the current discriminator. Returns the loss, on device."""
    with state.autocast():
        fake = state.g_train(z, y)
        # D without its DDP wrapper: only G's gradients need averaging over ranks in this step.
        logits = state.D(diff_augment(fake, augment), y).float()
    g_loss = loss.g(logits)
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
    quality: QualityFn | None = None, checkpoint: str | Path | None = None,
    resume_key: str = "", notify: Callable[[str], None] = lambda message: None,
) -> FitResult:
    """Train a class-conditional GAN on uint8 images (N, H, W, C) with int labels (N,).

    quality: called with the EMA generator every `cfg.eval_every` steps and at the end; returns
        metrics including `fid_domain`. The generator with the lowest fid_domain is kept
        (`FitResult.best_state`); without `quality` the last EMA generator is the result.
    checkpoint: where the full training state is written atomically every
        `cfg.checkpoint_every` steps and at the end. If it holds a state for the same `resume_key`
        (same data and settings), training resumes from it and ends with the same weights as an
        uninterrupted run (on CPU; GPU kernels may be nondeterministic). `notify` gets one line.
    """
    world = current()
    batch = per_rank_batch(cfg.batch_size, world.world_size, "train_gan.batch_size")
    torch.manual_seed(seed)  # the same initial weights on every rank
    gen = torch.Generator(device=device).manual_seed(seed + _RANK_STRIDE * world.rank)
    data = torch.from_numpy(images).to(device)  # uint8 on the device: the whole set stays resident
    targets = torch.from_numpy(labels).to(device)
    state = build_state(
        cfg, n_classes=n_classes, image_size=images.shape[1], channels=images.shape[3],
        device=device,
    )
    if world.world_size > 1:  # each rank draws its own batches and augmentations
        torch.manual_seed(seed + _RANK_STRIDE * world.rank)
        state.G_ddp, state.D_ddp = wrap_ddp(state.G, device), wrap_ddp(state.D, device)
    loss, augment = LOSSES[cfg.loss], list(cfg.diffaugment)
    # Per-image sampling weights: uniform over images, or uniform over classes (minority classes
    # then get as many generator and discriminator updates as the majority).
    counts = torch.bincount(targets, minlength=n_classes).float()
    weights = 1.0 / counts[targets] if cfg.balanced_sampling else torch.ones_like(targets).float()
    result, sums = FitResult(state), torch.zeros(4, device=device)
    if checkpoint is not None and Path(checkpoint).exists():
        resumed = _resume(checkpoint, resume_key, cfg.steps, state, result, sums, gen, notify)
        if resumed:
            notify(f"resuming from step {state.step} ({checkpoint})")
    steps = gather_objects(state.step)  # under torchrun: every rank must resume the same step
    if len(set(steps)) > 1:
        raise PipelineError(
            f"train_gan: the processes found different training states at {checkpoint} (steps "
            f"{steps}); put checkpoints/ on storage every node shares, or "
            f"delete the state to start over"
        )
    start = time.perf_counter() - result.seconds
    last_logged = result.history[-1]["step"] if result.history else 0
    for step in range(state.step + 1, cfg.steps + 1):
        for _ in range(cfg.d_steps):
            idx = torch.multinomial(weights, batch, replacement=True, generator=gen)
            real, y = to_unit(data[idx]), targets[idx]
            z = torch.randn(batch, cfg.latent_dim, device=device, generator=gen)
            d_loss, d_real, d_fake = d_step(state, real, y, z, loss=loss, augment=augment,
                                            gp_weight=cfg.gp_weight, r1_gamma=cfg.r1_gamma)
        z = torch.randn(batch, cfg.latent_dim, device=device, generator=gen)
        g_loss = g_step(state, y, z, loss=loss, augment=augment)
        # EMA warm-up: early on, average over the steps seen so far rather than the random init.
        ema_update(state.G_ema, state.G, decay=min(cfg.ema_decay, (1 + step) / (10 + step)))
        state.step = step
        sums += torch.stack([d_loss, g_loss, d_real, d_fake])
        last = step == cfg.steps
        if step % cfg.log_every == 0 or last:
            row = _log_row(mean_over_ranks(sums / (step - last_logged)), step, checkpoint)
            sums.zero_()
            result.history.append(row)
            last_logged = step
            log({k: v for k, v in row.items() if k != "step"}, step)
        if quality is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or last):
            _evaluate(quality, result, device)
        if checkpoint is not None and (step % cfg.checkpoint_every == 0 or last):
            if not bool(torch.isfinite(mean_over_ranks(sums.clone())).all()):
                raise PipelineError(_nonfinite_message(step, checkpoint))  # keep the good state
            result.seconds = time.perf_counter() - start
            _save_training_state(checkpoint, resume_key, result, sums, gen)
    result.seconds = time.perf_counter() - start
    return result


_RANK_STRIDE = 1_000_003  # rank r's random streams start from seed + r * this


def _evaluate(quality: QualityFn, result: FitResult, device: torch.device) -> None:
    """Quality metrics of the EMA generator; keeps a copy of the best one by fid_domain.

    The RNG state is forked so that evaluating (which samples and trains a TSTR classifier) never
    changes the training run: the weights are the same with or without evaluation.
    """
    state = result.state
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), local():
        metrics = quality(state.G_ema)  # under torchrun: rank 0 alone, so no collectives
    row = {"step": state.step, **metrics}
    result.quality.append(row)
    best = result.best
    if best is None or metrics["fid_domain"] < best["fid_domain"]:
        result.best = row
        result.best_state = {k: v.detach().cpu().clone() for k, v in state.G_ema.state_dict().items()}


TRAINING_STATE = "imbalance-gan/train-state/v1"


def _save_training_state(
    path: str | Path, key: str, result: FitResult, sums: torch.Tensor, gen: torch.Generator
) -> None:
    """Everything the loop needs to continue bit-for-bit: models, optimizers, step, the loss sums
    of the open log interval, histories, the best generator so far and every RNG state (the
    DiffAugment draws come from torch's global RNG, so its state is the augmentation state)."""
    s = result.state
    rng = {"torch": torch.get_rng_state(), "generator": gen.get_state().cpu(),
           "sums": sums.cpu()}
    if sums.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(sums.device)
    ranks = gather_objects(rng)  # under torchrun every rank's streams: rank r resumes rank r's
    if not current().is_main:
        return
    save_checkpoint(path, {
        "format": TRAINING_STATE, "key": key, "step": s.step, "seconds": result.seconds,
        "G": s.G.state_dict(), "D": s.D.state_dict(), "G_ema": s.G_ema.state_dict(),
        "opt_g": s.opt_g.state_dict(), "opt_d": s.opt_d.state_dict(), "rng": ranks,
        "history": result.history, "quality": result.quality,
        "best": result.best, "best_state": result.best_state,
    })


def _resume(
    path: str | Path, key: str, steps: int, state: GanState, result: FitResult,
    sums: torch.Tensor, gen: torch.Generator, notify: Callable[[str], None],
) -> bool:
    try:
        ckpt = load_checkpoint(path)
    except PipelineError:
        notify(f"{path} is not a readable training state; starting from step 0")
        return False
    world = current()
    if (ckpt.get("format") != TRAINING_STATE or ckpt.get("key") != key
            or len(ckpt.get("rng", ())) != world.world_size):
        notify(f"{path} holds a run with other data or settings; starting from step 0")
        return False
    if ckpt["step"] > steps:
        notify(f"{path} is at step {ckpt['step']}, past train_gan.steps={steps}; starting from step 0")
        return False
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
    return True


def _nonfinite_message(step: int, checkpoint: str | Path | None) -> str:
    kept = f"; the last good training state is kept in {checkpoint}" if checkpoint else ""
    return (f"train_gan: losses became non-finite by step {step}{kept}; lower train_gan.lr_d / "
            f"train_gan.lr_g, or enable spectral_norm")


def _log_row(means: torch.Tensor, step: int, checkpoint: str | Path | None) -> dict[str, float]:
    d_loss, g_loss, d_real, d_fake = means.tolist()  # the one host sync per log interval
    if not all(math.isfinite(v) for v in (d_loss, g_loss)):
        raise PipelineError(
            f"{_nonfinite_message(step, checkpoint)} (d_loss={d_loss}, g_loss={g_loss})"
        )
    return {"step": step, "d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}


@torch.no_grad()
def sample(
    G: nn.Module, labels: np.ndarray, seeds: np.ndarray, *, latent_dim: int,
    device: torch.device, batch_size: int = 512,
) -> np.ndarray:
    """Images for `labels` (N,), image i from z = latents(seeds[i]) (pipeline/gan/latents.py):
    uint8 (N, H, W, C). Seeding each image on its own makes any single synthetic image
    reproducible from the manifest."""
    G.eval()
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    # one dummy row so that an empty request still learns the image shape
    z = latents(seeds if len(seeds) else np.zeros(1, np.int64), latent_dim, device=device)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64).reshape(-1))
    y = (y if len(y) else torch.zeros(1, dtype=torch.int64)).to(device)
    # The images land in one uint8 array on the device and cross to the host once.
    first = to_uint8(G(z[:batch_size], y[:batch_size]))
    out = torch.empty((len(z), *first.shape[1:]), dtype=torch.uint8, device=device)
    out[: len(first)] = first
    for i in range(batch_size, len(z), batch_size):
        out[i : i + batch_size] = to_uint8(G(z[i : i + batch_size], y[i : i + batch_size]))
    return out[: len(seeds)].cpu().numpy()
