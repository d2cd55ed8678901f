"""Method `dcgan`: a class-conditional DCGAN (or the seed's MLP GAN, `dcgan.arch: mlp`) with
pluggable models (pipeline/models/dcgan.py), adversarial losses (pipeline/gan/losses.py) and
DiffAugment (pipeline/gan/diffaugment.py), through the shared loop (pipeline/training/loop.py).
Reads `dcgan` for the model, losses and batches and the loop settings of `train_gan`; trains under
torchrun on several processes (DDP).

`d_step` and `g_step` are the two halves of an update; `DcganUpdate` draws the batches and runs
them; `fit` builds the state and runs the loop; `train` adapts it to the synthesizer contract.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import LogFn
from pipeline.config import Config, DcganConfig
from pipeline.distributed import current, per_rank_batch, wrap_ddp
from pipeline.gan.diffaugment import diff_augment
from pipeline.gan.losses import LOSSES, GanLoss
from pipeline.models.dcgan import build_discriminator, build_generator
from pipeline.synthesizers.base import (
    FORMAT, GeneratorSynthesizer, SynthQualityFn, Trained, sections,
)
from pipeline.training.batches import Batches
from pipeline.training.loop import Schedule, Update, train_loop
from pipeline.training.state import FitResult, QualityFn, TrainState, amp_dtype
from pipeline.training.state_file import TrainingStateFile

SECTIONS = ("train_gan", "dcgan")
RANK_STRIDE = 1_000_003  # rank r's random streams start from seed + r * this


def generator_kwargs(cfg: DcganConfig, *, n_classes: int, image_size: int, channels: int
                     ) -> dict[str, int]:
    """What `build_generator(cfg.arch, **kwargs)` needs to rebuild G."""
    return {"latent_dim": cfg.latent_dim, "n_classes": n_classes, "image_size": image_size,
            "channels": channels, "width": cfg.width}


def build_state(
    cfg: DcganConfig, *, n_classes: int, image_size: int, channels: int, device: torch.device
) -> TrainState:
    model_kwargs = generator_kwargs(cfg, n_classes=n_classes, image_size=image_size,
                                    channels=channels)
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
    return TrainState({"G": G, "D": D}, {"G": opt_g, "D": opt_d}, G_ema, model_kwargs,
                      amp_dtype=amp_dtype(cfg.precision, device))


def d_step(
    state: TrainState, real: torch.Tensor, y: torch.Tensor, z: torch.Tensor, *,
    loss: GanLoss, augment: list[str], gp_weight: float = 10.0, r1_gamma: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One discriminator update. Returns (loss, mean real logit, mean fake logit), on device.

    Penalties see the same augmented images as the loss: WGAN-GP's gradient penalty on random
    interpolates of real and fake, R1 (Mescheder et al. 2018) on the real half.
    """
    G, D = state["G"], state["D"]
    with torch.no_grad(), state.autocast():
        fake = G(z, y)
    # One discriminator pass over real and fake together: half the kernel launches and spectral-
    # norm power iterations of two passes (D has no BatchNorm, so the result is the same).
    x = diff_augment(torch.cat([real, fake.to(real.dtype)]), augment)
    if r1_gamma > 0:
        x = x.detach().requires_grad_(True)
    with state.autocast():
        logits = state.trained("D")(x, torch.cat([y, y])).float()  # the one forward DDP syncs
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
            critic = D(x_hat, y).float().sum()
        (grad,) = torch.autograd.grad(critic, x_hat, create_graph=True)
        d_loss = d_loss + gp_weight * (grad.flatten(1).norm(dim=1) - 1).square().mean()
    opt = state.optimizers["D"]
    opt.zero_grad(set_to_none=True)
    d_loss.backward()
    opt.step()
    return d_loss.detach(), real_logits.detach().mean(), fake_logits.detach().mean()


def g_step(
    state: TrainState, y: torch.Tensor, z: torch.Tensor, *, loss: GanLoss, augment: list[str]
) -> torch.Tensor:
    """One generator update against the current discriminator. Returns the loss, on device."""
    with state.autocast():
        fake = state.trained("G")(z, y)
        # D without its DDP wrapper: only G's gradients need averaging over ranks in this step.
        logits = state["D"](diff_augment(fake, augment), y).float()
    g_loss = loss.g(logits)
    opt = state.optimizers["G"]
    opt.zero_grad(set_to_none=True)
    g_loss.backward()
    opt.step()
    return g_loss.detach()


DStep = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # d_step's signature
GStep = Callable[..., torch.Tensor]  # g_step's signature


@dataclass
class DcganUpdate(Update):
    """`d_steps` discriminator updates, each on a fresh batch, then one generator update with the
    last batch's labels. `d_step`/`g_step` are parameters so that tests can count or fake them."""

    batches: Batches
    loss: GanLoss
    augment: list[str]
    d_steps: int = 1
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    d_step: DStep = d_step
    g_step: GStep = g_step

    columns = ("d_loss", "g_loss", "d_real", "d_fake")
    advice = "lower dcgan.lr_d / dcgan.lr_g, or enable dcgan.spectral_norm"

    def __call__(self, state: TrainState, step: int) -> torch.Tensor:
        for _ in range(self.d_steps):
            real, y = self.batches.real()
            d_loss, d_real, d_fake = self.d_step(
                state, real, y, self.batches.z(), loss=self.loss, augment=self.augment,
                gp_weight=self.gp_weight, r1_gamma=self.r1_gamma)
        g_loss = self.g_step(state, y, self.batches.z(), loss=self.loss, augment=self.augment)
        return torch.stack([d_loss, g_loss, d_real, d_fake])

    @classmethod
    def of(cls, cfg: DcganConfig, batches: Batches, *, loss: GanLoss,
           d_step: DStep = d_step, g_step: GStep = g_step) -> DcganUpdate:
        return cls(batches, loss, list(cfg.diffaugment), d_steps=cfg.d_steps,
                   gp_weight=cfg.gp_weight, r1_gamma=cfg.r1_gamma, d_step=d_step, g_step=g_step)


def fit(
    images: np.ndarray, labels: np.ndarray, config: Config, *, n_classes: int, seed: int, device: torch.device, log: LogFn = lambda metrics, step: None,
    quality: QualityFn | None = None, checkpoint: str | Path | None = None,
    resume_key: str = "", notify: Callable[[str], None] = lambda message: None,
    loss: GanLoss | None = None, d_step: DStep = d_step, g_step: GStep = g_step,
) -> FitResult:
    """Train a class-conditional GAN on uint8 images (N, H, W, C) with int labels (N,), with the
    `dcgan` and `train_gan` (loop) sections of `config`.

    quality: called with the EMA generator every `train_gan.eval_every` steps and at the end; the
        generator with the lowest fid_domain is kept (see `train_loop`).
    checkpoint: the resumable training state, continued when it holds a run with the same
        `resume_key` (same data and settings); `notify` gets one line.
    loss: the adversarial loss (default: `LOSSES[cfg.loss]`); d_step, g_step: the two halves of
        an update.
    """
    cfg, world = config.dcgan, current()
    batch = per_rank_batch(cfg.batch_size, world.world_size, "dcgan.batch_size")
    torch.manual_seed(seed)  # the same initial weights on every rank
    gen = torch.Generator(device=device).manual_seed(seed + RANK_STRIDE * world.rank)
    batches = Batches.of(images, labels, n_classes=n_classes, balanced=cfg.balanced_sampling,
                         gen=gen, size=batch, latent_dim=cfg.latent_dim, device=device)
    state = build_state(
        cfg, n_classes=n_classes, image_size=images.shape[1], channels=images.shape[3],
        device=device,
    )
    if world.world_size > 1:  # each rank draws its own batches and augmentations
        torch.manual_seed(seed + RANK_STRIDE * world.rank)
        state.ddp = {name: wrap_ddp(state[name], device) for name in ("G", "D")}
    update = DcganUpdate.of(cfg, batches, loss=LOSSES[cfg.loss] if loss is None else loss,
                            d_step=d_step, g_step=g_step)
    state_file = None if checkpoint is None else TrainingStateFile(checkpoint, resume_key, notify)
    return train_loop(state, update, Schedule.of(config.train_gan), gen=gen, device=device, log=log,
                      quality=quality, state_file=state_file)


def train(
    images: np.ndarray, labels: np.ndarray, cfg: Config, *, n_classes: int,
    device: torch.device, log: LogFn = lambda metrics, step: None,
    quality: SynthQualityFn | None = None, checkpoint: str | Path | None = None,
    resume_key: str = "", notify: Callable[[str], None] = lambda message: None,
) -> Trained:
    d = cfg.dcgan
    meta: dict[str, Any] = {
        "format": FORMAT, "method": "dcgan", "arch": d.arch, "seed": cfg.seed,
        "config": sections(cfg, SECTIONS), "n_classes": n_classes,
        "sampling": {"latent_dim": d.latent_dim},
        # before training, so the synthesizer the quality hook gets is complete (saves, loads)
        "model_kwargs": generator_kwargs(d, n_classes=n_classes, image_size=images.shape[1],
                                         channels=images.shape[3]),
    }

    def probe(G: torch.nn.Module) -> dict[str, float]:
        return quality(GeneratorSynthesizer(G, meta=meta, device=device))  # type: ignore[misc]

    result = fit(images, labels, cfg, n_classes=n_classes, seed=cfg.seed,
                 device=device, log=log, quality=None if quality is None else probe,
                 checkpoint=checkpoint, resume_key=resume_key, notify=notify)
    best_step = result.keep_best()  # the EMA generator at the step with the lowest fid_domain
    state = result.state
    meta.update(step=state.step, best_step=best_step)
    return Trained.of(GeneratorSynthesizer(state.ema, meta=meta, device=device), result,
                      images_per_step=d.batch_size * d.d_steps)


def load(ckpt: dict[str, Any], *, device: torch.device) -> GeneratorSynthesizer:
    ckpt = dict(ckpt)
    G = build_generator(ckpt["arch"], **ckpt["model_kwargs"])
    G.load_state_dict(ckpt.pop("state_dict"))
    return GeneratorSynthesizer(G, meta=ckpt, device=device)
