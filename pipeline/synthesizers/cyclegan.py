"""Method `cyclegan`: CycleGAN translation (Zhu et al. 2017) from the majority class to each
minority class. For every minority class c: G_c (majority -> c) and F_c (c -> majority), PatchGAN
discriminators on both sides, least-squares adversarial loss, cycle-consistency and identity
losses, and image history buffers. Reads `cyclegan` for the networks and losses and the loop
settings of `train_gan` (steps, ema_decay, eval_every, checkpoint_every, log_every).

Sampling: image i of a minority class c is G_c applied to the majority training image chosen by
seed i; an image of the majority class is F_c applied to a training image of a minority class c,
both chosen by the seed. The training images are part of the checkpoint (what sampling needs), and
`sources(labels, seeds)` names the source image of each sample (generate's manifest records it).
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
from pipeline.config import Config, CycleGanConfig
from pipeline.distributed import current
from pipeline.errors import PipelineError
from pipeline.models.cyclegan import ImagePool, PatchDiscriminator, ResnetGenerator
from pipeline.pixels import to_uint8, to_unit
from pipeline.synthesizers.base import FORMAT, Synthesizer, SynthQualityFn, Trained, sections
from pipeline.synthesizers.latents import _GOLDEN, _mix, _shr
from pipeline.training.loop import Schedule, Update, train_loop
from pipeline.training.state import TrainState
from pipeline.training.state_file import TrainingStateFile

SECTIONS = ("train_gan", "cyclegan")
COLUMNS = ("d_loss", "g_loss", "cycle_loss", "identity_loss")


def generators(*, minorities: list[int], channels: int, width: int, n_res: int) -> nn.ModuleDict:
    """{"to_c": majority -> c, "from_c": c -> majority} for every minority class c."""
    return nn.ModuleDict({f"{d}_{c}": ResnetGenerator(channels=channels, width=width, n_res=n_res)
                          for c in minorities for d in ("to", "from")})


class CycleSynthesizer(Synthesizer):
    def __init__(self, G: nn.ModuleDict, sources: np.ndarray, source_labels: np.ndarray, *,
                 meta: dict[str, Any], device: torch.device) -> None:
        self.G, self.meta, self.device, self.method = G.to(device).eval(), meta, device, "cyclegan"
        self.images, self.labels = sources, source_labels  # uint8 (N, H, W, C), (N,)
        self.majority = int(meta["sampling"]["majority"])
        self.minorities = [int(c) for c in meta["sampling"]["minorities"]]

    def sources(self, labels: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Index into the training split of each sample's source image (N,)."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        h = _mix(torch.as_tensor(np.asarray(seeds, dtype=np.int64).reshape(-1)) * _GOLDEN)
        pick, slot = (_shr(h, 32) % 65536).numpy(), (_shr(h, 1) % 2**31).numpy()
        minorities = np.array(self.minorities)
        src_class = np.where(labels == self.majority, minorities[pick % len(minorities)],
                             self.majority)
        out = np.empty(len(labels), dtype=np.int64)
        for c in np.unique(src_class):
            members = np.flatnonzero(self.labels == c)
            rows = src_class == c
            out[rows] = members[slot[rows] % len(members)]
        return out

    @torch.no_grad()
    def sample(self, labels: np.ndarray, seeds: np.ndarray, *, batch_size: int = 512
               ) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        src = self.sources(labels, seeds)
        out = np.zeros((len(labels), *self.images.shape[1:]), dtype=np.uint8)
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            for i in range(0, len(rows), batch_size):
                part = rows[i : i + batch_size]
                if c == self.majority:  # from each source's own minority class
                    for k in np.unique(self.labels[src[part]]):
                        sub = part[self.labels[src[part]] == k]
                        out[sub] = self._translate(f"from_{k}", src[sub])
                else:
                    out[part] = self._translate(f"to_{c}", src[part])
        return out

    def _translate(self, name: str, idx: np.ndarray) -> np.ndarray:
        x = to_unit(torch.from_numpy(self.images[idx]).to(self.device))  # (B, C, H, W)
        return to_uint8(self.G[name](x)).cpu().numpy()

    def checkpoint(self) -> dict[str, Any]:
        return {**self.meta, "format": FORMAT, "state_dict": self.G.state_dict(),
                "source_images": torch.from_numpy(self.images),
                "source_labels": torch.from_numpy(self.labels)}


class _Discriminators(nn.Module):
    """D on both sides of every pair, and their history buffers (saved with the state)."""

    def __init__(self, minorities: list[int], *, channels: int, size: int, width: int,
                 pool: int) -> None:
        super().__init__()
        names = [f"{d}_{c}" for c in minorities for d in ("to", "from")]
        self.D = nn.ModuleDict({n: PatchDiscriminator(channels=channels, width=width)
                                for n in names})
        self.pools = nn.ModuleDict({n: ImagePool(pool, (channels, size, size)) for n in names})


def _ls(logits: torch.Tensor, target: float) -> torch.Tensor:
    return (logits - target).square().mean()  # least-squares GAN


def train_step(state: TrainState, a: torch.Tensor, bs: dict[int, torch.Tensor], *,
               cycle: float, identity: float) -> torch.Tensor:
    """One update of every generator, then of every discriminator. a: majority batch; bs[c]:
    class-c batch, all (B, C, H, W). Returns [d_loss, g_loss, cycle, identity] (device)."""
    G, Ds = state["G"], state["D"]
    g_loss = cyc = idt = a.new_zeros(())
    fakes = {}
    for c, b in bs.items():
        to, back = G[f"to_{c}"], G[f"from_{c}"]
        fake_b, fake_a = to(a), back(b)
        g_loss = g_loss + _ls(Ds.D[f"to_{c}"](fake_b), 1) + _ls(Ds.D[f"from_{c}"](fake_a), 1)
        cyc = cyc + F.l1_loss(back(fake_b), a) + F.l1_loss(to(fake_a), b)
        idt = idt + F.l1_loss(to(b), b) + F.l1_loss(back(a), a)
        fakes[c] = (fake_b.detach(), fake_a.detach())
    state.optimizers["G"].zero_grad(set_to_none=True)
    (g_loss + cycle * cyc + identity * idt).backward()
    state.optimizers["G"].step()
    d_loss = a.new_zeros(())
    for c, b in bs.items():
        fake_b, fake_a = fakes[c]
        for name, real, fake in ((f"to_{c}", b, fake_b), (f"from_{c}", a, fake_a)):
            D = Ds.D[name]
            d_loss = d_loss + 0.5 * (_ls(D(real), 1) + _ls(D(Ds.pools[name](fake)), 0))
    state.optimizers["D"].zero_grad(set_to_none=True)
    d_loss.backward()
    state.optimizers["D"].step()
    return torch.stack([d_loss.detach(), g_loss.detach(), cyc.detach(), idt.detach()])


@dataclass
class CycleUpdate(Update):
    """One update of every pair, on a fresh majority batch and a fresh batch of each minority
    class (the majority's drawn first)."""

    data: torch.Tensor  # uint8 (N, H, W, C) on the device
    members: dict[int, torch.Tensor]  # class -> indices of its images
    majority: int
    minorities: list[int]
    s: CycleGanConfig
    gen: torch.Generator

    columns = COLUMNS
    advice = "lower cyclegan.lr"

    def __call__(self, state: TrainState, step: int) -> torch.Tensor:
        a = self.batch(self.majority)
        return train_step(state, a, {c: self.batch(c) for c in self.minorities},
                          cycle=self.s.cycle_weight, identity=self.s.identity_weight)

    def batch(self, c: int) -> torch.Tensor:  # (B, C, H, W)
        members = self.members[c]
        pick = torch.randint(0, len(members), (self.s.batch_size,), device=self.data.device,
                             generator=self.gen)
        return to_unit(self.data[members[pick]])


def train(
    images: np.ndarray, labels: np.ndarray, cfg: Config, *, n_classes: int,
    device: torch.device, log: LogFn = lambda metrics, step: None,
    quality: SynthQualityFn | None = None, checkpoint: str | Path | None = None,
    resume_key: str = "", notify: Callable[[str], None] = lambda message: None,
) -> Trained:
    """Train every majority <-> minority pair on uint8 images (N, H, W, C), int labels (N,)."""
    g, s = cfg.train_gan, cfg.cyclegan
    counts = np.bincount(labels, minlength=n_classes)
    if current().world_size > 1 or images.shape[1] % 2 or (counts == 0).any():
        raise PipelineError("train_gan.method cyclegan needs one process, an even image size and "
                            "training images in every class; use train_gan.method: dcgan")
    majority = int(np.argmax(counts))
    minorities = [c for c in range(n_classes) if c != majority]
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    channels, size = images.shape[3], images.shape[1]
    G = generators(minorities=minorities, channels=channels, width=s.width,
                   n_res=s.n_res).to(device)
    D = _Discriminators(minorities, channels=channels, size=size, width=s.width,
                        pool=s.pool_size).to(device)
    state = TrainState({"G": G, "D": D},
                       {"G": torch.optim.Adam(G.parameters(), lr=s.lr, betas=s.betas),
                        "D": torch.optim.Adam(D.parameters(), lr=s.lr, betas=s.betas)},
                       copy.deepcopy(G).eval().requires_grad_(False),
                       {"channels": channels, "width": s.width, "n_res": s.n_res})
    meta: dict[str, Any] = {
        "format": FORMAT, "method": "cyclegan", "seed": cfg.seed, "n_classes": n_classes,
        "config": sections(cfg, SECTIONS), "model_kwargs": state.model_kwargs,
        "sampling": {"majority": majority, "minorities": minorities},
    }

    def probe(G_ema: nn.Module) -> dict[str, float]:
        return quality(CycleSynthesizer(G_ema, images, labels, meta=meta,  # type: ignore[misc]
                                        device=device))

    data, targets = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    members = {c: torch.nonzero(targets == c).squeeze(1) for c in range(n_classes)}
    update = CycleUpdate(data, members, majority, minorities, s, gen)
    state_file = None if checkpoint is None else TrainingStateFile(checkpoint, resume_key, notify)
    result = train_loop(state, update, Schedule.of(g), gen=gen, device=device, log=log,
                        quality=None if quality is None else probe, state_file=state_file)
    meta.update(step=state.step, best_step=result.keep_best())
    return Trained.of(CycleSynthesizer(state.ema, images, labels, meta=meta, device=device),
                      result, images_per_step=s.batch_size * len(minorities))


def load(ckpt: dict[str, Any], *, device: torch.device) -> CycleSynthesizer:
    ckpt = dict(ckpt)
    meta = {k: v for k, v in ckpt.items()
            if k not in ("state_dict", "source_images", "source_labels")}
    G = generators(minorities=[int(c) for c in ckpt["sampling"]["minorities"]],
                   **ckpt["model_kwargs"])
    G.load_state_dict(ckpt["state_dict"])
    return CycleSynthesizer(G, ckpt["source_images"].numpy(), ckpt["source_labels"].numpy(),
                            meta=meta, device=device)
