"""Method `diffusion`: a class-conditional denoising diffusion model (DDPM, Ho et al. 2020) with a
cosine noise schedule (Nichol & Dhariwal 2021), a small U-Net (pipeline/models/diffusion.py),
classifier-free guidance by label dropout (Ho & Salimans 2022), an EMA of the weights (the shared
loop's) and a deterministic DDIM sampler (Song et al. 2021, eta = 0) of `sampling_steps` steps.
Reads `diffusion` for the model, schedule and sampler and the loop settings of `train_gan`; trains
under torchrun on several processes (DDP), as dcgan does.

Image i is a function of (labels[i], seeds[i]) alone: its starting noise is drawn from its seed
(pipeline/synthesizers/latents.py), DDIM with eta = 0 adds no noise after that, the U-Net treats
each image on its own, and sampling runs in chunks of one fixed size (padded), so the kernels see
the same shapes whatever else is drawn with it: generate's manifest re-draws hold.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline import LogFn
from pipeline.config import Config, DiffusionConfig
from pipeline.distributed import current, per_rank_batch, wrap_ddp
from pipeline.models.diffusion import UNet
from pipeline.pixels import to_uint8
from pipeline.synthesizers.base import FORMAT, Synthesizer, SynthQualityFn, Trained, sections
from pipeline.synthesizers.latents import latents
from pipeline.training.batches import Batches
from pipeline.training.loop import Schedule, Update, train_loop
from pipeline.training.state import TrainState, amp_dtype
from pipeline.training.state_file import TrainingStateFile

SECTIONS = ("train_gan", "diffusion")
RANK_STRIDE = 1_000_003  # rank r's random streams start from seed + r * this
CHUNK = 64  # images per sampling forward pass (padded): one shape for every draw


def alpha_bars(timesteps: int) -> torch.Tensor:
    """Cosine schedule: the share of signal left after t noising steps, (timesteps,) float64,
    falling from ~1 to ~0 (betas clipped at 0.999 as Nichol & Dhariwal do)."""
    s = 0.008
    f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s)
                  * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


@dataclass
class DiffusionUpdate(Update):
    """One denoising step on a fresh batch: noise each image to a random timestep and regress the
    noise (MSE); the label is replaced by the null label with probability `label_dropout`."""

    batches: Batches
    alpha_bar: torch.Tensor  # (T,) on the device, float32
    n_classes: int
    label_dropout: float

    columns = ("loss",)
    advice = "lower diffusion.lr"

    def __call__(self, state: TrainState, step: int) -> torch.Tensor:
        x0, y = self.batches.real()  # (B, C, H, W) in [-1, 1], (B,)
        gen, device, n = self.batches.gen, x0.device, len(y)
        drop = torch.rand(n, device=device, generator=gen) < self.label_dropout
        y = torch.where(drop, torch.full_like(y, self.n_classes), y)
        t = torch.randint(0, len(self.alpha_bar), (n,), device=device, generator=gen)
        noise = torch.randn(x0.shape, device=device, generator=gen)
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        with state.autocast():
            pred = state.trained("net")(x_t, t, y)
        loss = F.mse_loss(pred.float(), noise)
        opt = state.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach().view(1)


class DiffusionSynthesizer(Synthesizer):
    """Samples with DDIM (eta = 0) from the EMA U-Net; meta["sampling"]: timesteps,
    sampling_steps, guidance."""

    def __init__(self, net: nn.Module, *, meta: dict[str, Any], device: torch.device) -> None:
        self.net, self.meta, self.device = net.to(device).eval(), meta, device
        self.method = "diffusion"

    @torch.no_grad()
    def sample(self, labels: np.ndarray, seeds: np.ndarray, *, batch_size: int = 512
               ) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        k = self.meta["model_kwargs"]
        out = np.empty((len(labels), k["image_size"], k["image_size"], k["channels"]), np.uint8)
        for i in range(0, len(labels), CHUNK):  # batch_size: the contract's; CHUNK fixes shapes
            part = slice(i, i + CHUNK)
            out[part] = self._chunk(labels[part], seeds[part])
        return out

    def _chunk(self, labels: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        n, k = len(labels), self.meta["model_kwargs"]
        pad = CHUNK - n  # the padding rows are drawn and dropped
        y = torch.from_numpy(np.concatenate([labels, np.zeros(pad, np.int64)])).to(self.device)
        z = latents(np.concatenate([seeds, np.zeros(pad, np.int64)]),
                    k["channels"] * k["image_size"] ** 2, device=self.device)
        x = z.view(CHUNK, k["channels"], k["image_size"], k["image_size"])
        s = self.meta["sampling"]
        return to_uint8(ddim(self.net, x, y, null=k["n_classes"], timesteps=s["timesteps"],
                             steps=s["sampling_steps"], guidance=s["guidance"]))[:n].cpu().numpy()

    def checkpoint(self) -> dict[str, Any]:
        return {**self.meta, "format": FORMAT, "state_dict": self.net.state_dict()}


def ddim(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, null: int, timesteps: int,
         steps: int, guidance: float) -> torch.Tensor:
    """x_T (B, C, H, W) -> x_0 in [-1, 1] in `steps` deterministic DDIM steps; the noise estimate
    is eps_null + guidance * (eps_y - eps_null) (guidance 1: the conditional model alone)."""
    alpha_bar = alpha_bars(timesteps).to(x.device)
    ts = torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64).round().long().tolist()
    y2 = torch.cat([y, torch.full_like(y, null)])
    x0 = x
    for i, t in enumerate(ts):
        tt = torch.full((len(y2),), t, device=x.device, dtype=torch.long)
        eps_y, eps_null = net(torch.cat([x, x]), tt, y2).float().chunk(2)
        eps = eps_null + guidance * (eps_y - eps_null)
        ab = alpha_bar[t].float()
        x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
        ab_prev = alpha_bar[ts[i + 1]].float() if i + 1 < len(ts) else x.new_tensor(1.0)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # consistent with the clamped x0
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x0


def build_state(cfg: DiffusionConfig, *, n_classes: int, image_size: int, channels: int,
                device: torch.device) -> TrainState:
    model_kwargs = {"n_classes": n_classes, "image_size": image_size, "channels": channels,
                    "width": cfg.width}
    cuda = device.type == "cuda"
    net = UNet(**model_kwargs).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas,
                           fused=True if cuda else None)
    if cuda:
        torch.backends.cudnn.benchmark = True
    return TrainState({"net": net}, {"net": opt}, copy.deepcopy(net).eval().requires_grad_(False),
                      model_kwargs, ema_of="net", amp_dtype=amp_dtype(cfg.precision, device))


def train(
    images: np.ndarray, labels: np.ndarray, cfg: Config, *, n_classes: int,
    device: torch.device, log: LogFn = lambda metrics, step: None,
    quality: SynthQualityFn | None = None, checkpoint: str | Path | None = None,
    resume_key: str = "", notify: Callable[[str], None] = lambda message: None,
) -> Trained:
    """Train on uint8 images (N, H, W, C) with int labels (N,); see the module doc."""
    d, world = cfg.diffusion, current()
    batch = per_rank_batch(d.batch_size, world.world_size, "diffusion.batch_size")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    gen = torch.Generator(device=device).manual_seed(cfg.seed + RANK_STRIDE * world.rank)
    batches = Batches.of(images, labels, n_classes=n_classes, balanced=d.balanced_sampling,
                         gen=gen, size=batch, latent_dim=1, device=device)
    state = build_state(d, n_classes=n_classes, image_size=images.shape[1],
                        channels=images.shape[3], device=device)
    if world.world_size > 1:
        state.ddp = {"net": wrap_ddp(state["net"], device)}
    meta: dict[str, Any] = {
        "format": FORMAT, "method": "diffusion", "seed": cfg.seed, "n_classes": n_classes,
        "config": sections(cfg, SECTIONS), "model_kwargs": state.model_kwargs,
        "sampling": {"timesteps": d.timesteps, "sampling_steps": d.sampling_steps,
                     "guidance": d.guidance},
    }

    def probe(net: nn.Module) -> dict[str, float]:
        return quality(DiffusionSynthesizer(net, meta=meta, device=device))  # type: ignore[misc]

    update = DiffusionUpdate(batches, alpha_bars(d.timesteps).float().to(device), n_classes,
                             d.label_dropout)
    state_file = None if checkpoint is None else TrainingStateFile(checkpoint, resume_key, notify)
    result = train_loop(state, update, Schedule.of(cfg.train_gan), gen=gen, device=device,
                        log=log, quality=None if quality is None else probe,
                        state_file=state_file)
    meta.update(step=state.step, best_step=result.keep_best())
    return Trained.of(DiffusionSynthesizer(state.ema, meta=meta, device=device), result,
                      images_per_step=d.batch_size)


def load(ckpt: dict[str, Any], *, device: torch.device) -> DiffusionSynthesizer:
    ckpt = dict(ckpt)
    net = UNet(**ckpt["model_kwargs"])
    net.load_state_dict(ckpt.pop("state_dict"))
    return DiffusionSynthesizer(net, meta=ckpt, device=device)
