"""The conditional DCGAN / MLP GAN's update: pluggable models (pipeline/models), losses
(pipeline/gan/losses.py) and DiffAugment. `d_step` and `g_step` are the two halves of an update;
`DcganUpdate` draws the batches and runs them, as the shared loop's `Update`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.config import TrainGanConfig
from pipeline.gan.augment import diff_augment
from pipeline.gan.loop import Update
from pipeline.gan.losses import GanLoss
from pipeline.gan.state import GanState
from pipeline.models import build_discriminator, build_generator
from pipeline.pixels import to_unit


def generator_kwargs(cfg: TrainGanConfig, *, n_classes: int, image_size: int, channels: int
                     ) -> dict[str, int]:
    """What `build_generator(cfg.arch, **kwargs)` needs to rebuild G."""
    return {"latent_dim": cfg.latent_dim, "n_classes": n_classes, "image_size": image_size,
            "channels": channels, "width": cfg.width}


def build_state(
    cfg: TrainGanConfig, *, n_classes: int, image_size: int, channels: int, device: torch.device
) -> GanState:
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


DStep = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # d_step's signature
GStep = Callable[..., torch.Tensor]  # g_step's signature


@dataclass
class Batches:
    """Labelled batches drawn with replacement from uint8 images resident on the device, and
    latents, all from one generator `gen` (the loop saves and restores its state)."""

    data: torch.Tensor  # uint8 (N, H, W, C)
    targets: torch.Tensor  # (N,)
    weights: torch.Tensor  # (N,) sampling weight of each image
    gen: torch.Generator
    size: int
    latent_dim: int

    @classmethod
    def of(cls, images: np.ndarray, labels: np.ndarray, *, n_classes: int, balanced: bool,
           gen: torch.Generator, size: int, latent_dim: int, device: torch.device) -> Batches:
        data = torch.from_numpy(images).to(device)  # the whole set stays resident
        targets = torch.from_numpy(labels).to(device)
        # Uniform over images, or uniform over classes (minority classes then get as many
        # generator and discriminator updates as the majority).
        counts = torch.bincount(targets, minlength=n_classes).float()
        weights = 1.0 / counts[targets] if balanced else torch.ones_like(targets).float()
        return cls(data, targets, weights, gen, size, latent_dim)

    def real(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) in [-1, 1] and their labels (B,)."""
        idx = torch.multinomial(self.weights, self.size, replacement=True, generator=self.gen)
        return to_unit(self.data[idx]), self.targets[idx]

    def z(self) -> torch.Tensor:  # (B, latent_dim)
        return torch.randn(self.size, self.latent_dim, device=self.data.device, generator=self.gen)


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

    def __call__(self, state: GanState, step: int) -> torch.Tensor:
        for _ in range(self.d_steps):
            real, y = self.batches.real()
            d_loss, d_real, d_fake = self.d_step(
                state, real, y, self.batches.z(), loss=self.loss, augment=self.augment,
                gp_weight=self.gp_weight, r1_gamma=self.r1_gamma)
        g_loss = self.g_step(state, y, self.batches.z(), loss=self.loss, augment=self.augment)
        return torch.stack([d_loss, g_loss, d_real, d_fake])

    @classmethod
    def of(cls, cfg: TrainGanConfig, batches: Batches, *, loss: GanLoss,
           d_step: DStep = d_step, g_step: GStep = g_step) -> DcganUpdate:
        return cls(batches, loss, list(cfg.diffaugment), d_steps=cfg.d_steps,
                   gp_weight=cfg.gp_weight, r1_gamma=cfg.r1_gamma, d_step=d_step, g_step=g_step)
