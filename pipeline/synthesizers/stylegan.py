"""Method `stylegan`: a style-based conditional generator with adaptive discriminator
augmentation (pipeline/models/stylegan.py, pipeline/models/ada.py), trained with the non-saturating
loss, lazy R1 on real images, style mixing and an EMA generator; sampling can truncate towards each
class's mean w. Reads `stylegan` for the model, losses and batches and the loop settings of
`train_gan`.

The loop is the shared one (pipeline/training/loop.py): its training-state file, exact resume (on
CPU; ADA's p and r_t sums are buffers of the discriminator wrapper, so they are saved with D),
keep-the-best-by-fid_domain evaluation with forked RNG, and one host sync per log interval; this
module supplies the update (`StyleUpdate`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline import LogFn
from pipeline.config import Config, StyleGanConfig
from pipeline.distributed import current
from pipeline.errors import PipelineError
from pipeline.models.ada import AdaptiveAugment
from pipeline.models.stylegan import ResidualDiscriminator, StyleGenerator
from pipeline.synthesizers.base import (
    FORMAT, GeneratorSynthesizer, SynthQualityFn, Trained, sections,
)
from pipeline.training.batches import Batches
from pipeline.training.loop import Schedule, Update, train_loop
from pipeline.training.state import TrainState
from pipeline.training.state_file import TrainingStateFile

SECTIONS = ("train_gan", "stylegan")
COLUMNS = ("d_loss", "g_loss", "d_real", "d_fake", "ada_rt")  # means per log interval; + ada_p


class AugmentedDiscriminator(nn.Module):
    """D(augment(x), y): everything the discriminator sees goes through ADA."""

    def __init__(self, D: nn.Module, augment: AdaptiveAugment) -> None:
        super().__init__()
        self.D, self.augment = D, augment

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.D(self.augment(x), y)


class _Truncated(nn.Module):
    def __init__(self, G: StyleGenerator, psi: float) -> None:
        super().__init__()
        self.G, self.psi = G, psi

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.G(z, y, psi=self.psi)


class StyleSynthesizer(GeneratorSynthesizer):
    """Samples with truncation psi towards each class's mean w (meta["sampling"])."""

    def sampler(self) -> nn.Module:
        return _Truncated(self.G, float(self.meta["sampling"]["truncation_psi"])).eval()


def build_state(cfg: Config, *, n_classes: int, image_size: int, channels: int,
                device: torch.device) -> TrainState:
    s = cfg.stylegan
    model_kwargs = {"latent_dim": s.latent_dim, "n_classes": n_classes, "image_size": image_size,
                    "channels": channels, "width": s.width, "mapping_layers": s.mapping_layers}
    G = StyleGenerator(**model_kwargs).to(device)
    D = AugmentedDiscriminator(
        ResidualDiscriminator(n_classes=n_classes, image_size=image_size, channels=channels,
                              width=s.width),
        AdaptiveAugment(s.augment, p=s.ada_p),
    ).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    # Lazy regularisation (StyleGAN2): R1 every r1_every steps, so D's Adam is rescaled by
    # c = N / (N + 1) to keep the same effective step as an R1 term in every update.
    c = s.r1_every / (s.r1_every + 1) if s.r1_gamma > 0 else 1.0
    opt_g = torch.optim.Adam(G.parameters(), lr=s.lr, betas=s.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=s.lr * c, betas=tuple(b ** c for b in s.betas))
    return TrainState({"G": G, "D": D}, {"G": opt_g, "D": opt_d}, G_ema, model_kwargs)


def mixed_styles(G: StyleGenerator, z: torch.Tensor, y: torch.Tensor, *, mixing: float,
                 gen: torch.Generator) -> torch.Tensor:
    """Images from z (B, latent_dim), with probability `mixing` the layers from a random cutoff on
    taking their style from a second latent (style-mixing regularisation)."""
    ws = G.mapping(z, y).unsqueeze(1).repeat(1, G.num_ws, 1)  # (B, num_ws, w_dim)
    if mixing > 0:
        z2 = torch.randn(z.shape, device=z.device, generator=gen)
        cutoff = int(torch.randint(1, G.num_ws, (), generator=gen, device=z.device))
        if float(torch.rand((), generator=gen, device=z.device)) < mixing:
            ws[:, cutoff:] = G.mapping(z2, y).unsqueeze(1)
    return G.synthesis(ws)


def d_step(state: TrainState, real: torch.Tensor, y: torch.Tensor, z: torch.Tensor, *,
           s: StyleGanConfig, regularise: bool, gen: torch.Generator) -> torch.Tensor:
    """Non-saturating D loss (+ lazy R1 on real images, through the augmentation). Returns
    [loss, mean real logit, mean fake logit, mean sign of real logits] on device."""
    G, D = state["G"], state["D"]
    with torch.no_grad():
        fake = mixed_styles(G, z, y, mixing=s.style_mixing, gen=gen)
    real = real.detach().requires_grad_(regularise)
    # Two passes, not one over [real, fake]: minibatch stddev must not group reals with fakes.
    real_logits, fake_logits = D(real, y), D(fake, y)
    loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if regularise:
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        r1 = grad.square().sum(dim=(1, 2, 3)).mean()
        loss = loss + s.r1_gamma / 2 * s.r1_every * r1
    D.augment.observe(real_logits.detach())
    state.optimizers["D"].zero_grad(set_to_none=True)
    loss.backward()
    state.optimizers["D"].step()
    return torch.stack([loss.detach(), real_logits.detach().mean(), fake_logits.detach().mean(),
                        real_logits.detach().sign().mean()])


def g_step(state: TrainState, y: torch.Tensor, z: torch.Tensor, *, s: StyleGanConfig,
           gen: torch.Generator) -> torch.Tensor:
    fake = mixed_styles(state["G"], z, y, mixing=s.style_mixing, gen=gen)
    loss = F.softplus(-state["D"](fake, y)).mean()  # non-saturating
    state.optimizers["G"].zero_grad(set_to_none=True)
    loss.backward()
    state.optimizers["G"].step()
    return loss.detach()


@dataclass
class StyleUpdate(Update):
    """One D update (lazy R1 every r1_every steps), one G update, and every ada_interval steps
    ADA's adjustment of p."""

    batches: Batches
    s: StyleGanConfig
    augment: AdaptiveAugment  # the discriminator's (state["D"].augment)

    columns = COLUMNS

    def __call__(self, state: TrainState, step: int) -> torch.Tensor:
        s, gen = self.s, self.batches.gen
        real, y = self.batches.real()
        regularise = s.r1_gamma > 0 and step % s.r1_every == 0
        d_stats = d_step(state, real, y, self.batches.z(), s=s, regularise=regularise, gen=gen)
        g_loss = g_step(state, y, self.batches.z(), s=s, gen=gen)
        if s.ada and step % s.ada_interval == 0:
            self.augment.adjust(target=s.ada_target, images=self.batches.size * s.ada_interval,
                                kimg=s.ada_kimg)
        return torch.stack([d_stats[0], g_loss, d_stats[1], d_stats[2], d_stats[3]])

    def extras(self) -> dict[str, float]:
        return {"ada_p": float(self.augment.p)}


def train(
    images: np.ndarray, labels: np.ndarray, cfg: Config, *, n_classes: int,
    device: torch.device, log: LogFn = lambda metrics, step: None,
    quality: SynthQualityFn | None = None, checkpoint: str | Path | None = None,
    resume_key: str = "", notify: Callable[[str], None] = lambda message: None,
) -> Trained:
    """Train on uint8 images (N, H, W, C) with int labels (N,); see the module doc."""
    g, s = cfg.train_gan, cfg.stylegan
    if current().world_size > 1:
        raise PipelineError("train_gan.method stylegan trains in one process; run the train_gan "
                            "stage without torchrun (or use train_gan.method: dcgan)")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    batches = Batches.of(images, labels, n_classes=n_classes, balanced=s.balanced_sampling,
                         gen=gen, size=s.batch_size, latent_dim=s.latent_dim, device=device)
    state = build_state(cfg, n_classes=n_classes, image_size=images.shape[1],
                        channels=images.shape[3], device=device)
    meta: dict[str, Any] = {
        "format": FORMAT, "method": "stylegan", "seed": cfg.seed, "n_classes": n_classes,
        "config": sections(cfg, SECTIONS), "model_kwargs": state.model_kwargs,
        "sampling": {"latent_dim": s.latent_dim, "truncation_psi": s.truncation_psi},
    }

    def probe(G: nn.Module) -> dict[str, float]:
        return quality(StyleSynthesizer(G, meta=meta, device=device))  # type: ignore[misc]

    state_file = None if checkpoint is None else TrainingStateFile(checkpoint, resume_key, notify)
    result = train_loop(state, StyleUpdate(batches, s, state["D"].augment), Schedule.of(g),
                        gen=gen, device=device, log=log,
                        quality=None if quality is None else probe, state_file=state_file)
    best_step = result.keep_best()  # the EMA generator at the step with the lowest fid_domain
    meta.update(step=state.step, best_step=best_step, ada_p=float(state["D"].augment.p))
    return Trained.of(StyleSynthesizer(state.ema, meta=meta, device=device), result,
                      images_per_step=s.batch_size)


def load(ckpt: dict[str, Any], *, device: torch.device) -> StyleSynthesizer:
    ckpt = dict(ckpt)
    G = StyleGenerator(**ckpt["model_kwargs"])
    G.load_state_dict(ckpt.pop("state_dict"))
    return StyleSynthesizer(G, meta=ckpt, device=device)
