"""Method `stylegan`: a style-based conditional generator with adaptive discriminator
augmentation (pipeline/models/stylegan.py, pipeline/gan/ada.py), trained with the non-saturating
loss, lazy R1 on real images, style mixing and an EMA generator; sampling can truncate towards each
class's mean w. Reads `stylegan` for the model and losses and the loop settings from `train_gan`
(latent_dim, steps, batch_size, balanced_sampling, ema_decay, eval/checkpoint/log_every).

The loop keeps the dcgan loop's conventions (pipeline/gan/train.py): its training-state file,
resume (bit-exact on CPU: ADA's p and r_t sums are buffers of the discriminator wrapper), keep-the-
best-by-fid_domain evaluation with forked RNG, and one host sync per log interval.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
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
from pipeline.gan.ada import AdaptiveAugment
from pipeline.gan.train import (
    FitResult, GanState, _evaluate, _nonfinite_message, _resume, _save_training_state, ema_update,
)
from pipeline.models.stylegan import ResidualDiscriminator, StyleGenerator
from pipeline.pixels import to_unit
from pipeline.synthesizers.base import (
    FORMAT, GeneratorSynthesizer, SynthQualityFn, Trained, sections,
)

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
                device: torch.device) -> GanState:
    g, s = cfg.train_gan, cfg.stylegan
    model_kwargs = {"latent_dim": g.latent_dim, "n_classes": n_classes, "image_size": image_size,
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
    return GanState(G, D, G_ema, opt_g, opt_d, model_kwargs)


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


def d_step(state: GanState, real: torch.Tensor, y: torch.Tensor, z: torch.Tensor, *,
           s: StyleGanConfig, regularise: bool, gen: torch.Generator) -> torch.Tensor:
    """Non-saturating D loss (+ lazy R1 on real images, through the augmentation). Returns
    [loss, mean real logit, mean fake logit, mean sign of real logits] on device."""
    with torch.no_grad():
        fake = mixed_styles(state.G, z, y, mixing=s.style_mixing, gen=gen)
    real = real.detach().requires_grad_(regularise)
    # Two passes, not one over [real, fake]: minibatch stddev must not group reals with fakes.
    real_logits, fake_logits = state.D(real, y), state.D(fake, y)
    loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if regularise:
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        r1 = grad.square().sum(dim=(1, 2, 3)).mean()
        loss = loss + s.r1_gamma / 2 * s.r1_every * r1
    state.D.augment.observe(real_logits.detach())
    state.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_d.step()
    return torch.stack([loss.detach(), real_logits.detach().mean(), fake_logits.detach().mean(),
                        real_logits.detach().sign().mean()])


def g_step(state: GanState, y: torch.Tensor, z: torch.Tensor, *, s: StyleGanConfig,
           gen: torch.Generator) -> torch.Tensor:
    fake = mixed_styles(state.G, z, y, mixing=s.style_mixing, gen=gen)
    loss = F.softplus(-state.D(fake, y)).mean()  # non-saturating
    state.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_g.step()
    return loss.detach()


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
    data, targets = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    state = build_state(cfg, n_classes=n_classes, image_size=images.shape[1],
                        channels=images.shape[3], device=device)
    meta: dict[str, Any] = {
        "format": FORMAT, "method": "stylegan", "seed": cfg.seed, "n_classes": n_classes,
        "config": sections(cfg, SECTIONS), "model_kwargs": state.model_kwargs,
        "sampling": {"latent_dim": g.latent_dim, "truncation_psi": s.truncation_psi},
    }

    def probe(G: nn.Module) -> dict[str, float]:
        return quality(StyleSynthesizer(G, meta=meta, device=device))  # type: ignore[misc]

    counts = torch.bincount(targets, minlength=n_classes).float()
    weights = 1.0 / counts[targets] if g.balanced_sampling else torch.ones_like(targets).float()
    result, sums = FitResult(state), torch.zeros(len(COLUMNS), device=device)
    resumable = checkpoint is not None and Path(checkpoint).exists()
    if resumable and _resume(checkpoint, resume_key, g.steps, state, result, sums, gen, notify):
        notify(f"resuming from step {state.step} ({checkpoint})")
    start = time.perf_counter() - result.seconds
    last_logged = result.history[-1]["step"] if result.history else 0
    augment: AdaptiveAugment = state.D.augment
    for step in range(state.step + 1, g.steps + 1):
        idx = torch.multinomial(weights, g.batch_size, replacement=True, generator=gen)
        real, y = to_unit(data[idx]), targets[idx]
        z = torch.randn(g.batch_size, g.latent_dim, device=device, generator=gen)
        regularise = s.r1_gamma > 0 and step % s.r1_every == 0
        d_stats = d_step(state, real, y, z, s=s, regularise=regularise, gen=gen)
        z = torch.randn(g.batch_size, g.latent_dim, device=device, generator=gen)
        g_loss = g_step(state, y, z, s=s, gen=gen)
        ema_update(state.G_ema, state.G, decay=min(g.ema_decay, (1 + step) / (10 + step)))
        if s.ada and step % s.ada_interval == 0:
            augment.adjust(target=s.ada_target, images=g.batch_size * s.ada_interval,
                           kimg=s.ada_kimg)
        state.step = step
        sums += torch.stack([d_stats[0], g_loss, d_stats[1], d_stats[2], d_stats[3]])
        last = step == g.steps
        if step % g.log_every == 0 or last:
            row = _log_row(sums / (step - last_logged), augment, step, checkpoint)
            sums.zero_()
            result.history.append(row)
            last_logged = step
            log({k: v for k, v in row.items() if k != "step"}, step)
        if quality is not None and ((g.eval_every and step % g.eval_every == 0) or last):
            _evaluate(probe, result, device)
        if checkpoint is not None and (step % g.checkpoint_every == 0 or last):
            if not bool(torch.isfinite(sums).all()):
                raise PipelineError(_nonfinite_message(step, checkpoint))
            result.seconds = time.perf_counter() - start
            _save_training_state(checkpoint, resume_key, result, sums, gen)
    result.seconds = time.perf_counter() - start
    if result.best_state is not None:  # the EMA generator at the step with the lowest fid_domain
        state.G_ema.load_state_dict(result.best_state)
    best_step = state.step if result.best is None else int(result.best["step"])
    meta.update(step=state.step, best_step=best_step, ada_p=float(augment.p))
    return Trained(
        StyleSynthesizer(state.G_ema, meta=meta, device=device), steps=state.step,
        seconds=result.seconds, history=result.history, quality=result.quality, best=result.best,
        images_per_second=state.step * g.batch_size / max(result.seconds, 1e-9),
    )


def _log_row(means: torch.Tensor, augment: AdaptiveAugment, step: int,
             checkpoint: str | Path | None) -> dict[str, float]:
    values = means.tolist()  # the one host sync per log interval
    if not all(np.isfinite(values[:2])):
        raise PipelineError(f"{_nonfinite_message(step, checkpoint)} (d_loss={values[0]}, "
                            f"g_loss={values[1]})")
    return {"step": step, **dict(zip(COLUMNS, values)), "ada_p": float(augment.p)}


def load(ckpt: dict[str, Any], *, device: torch.device) -> StyleSynthesizer:
    ckpt = dict(ckpt)
    G = StyleGenerator(**ckpt["model_kwargs"])
    G.load_state_dict(ckpt.pop("state_dict"))
    return StyleSynthesizer(G, meta=ckpt, device=device)
