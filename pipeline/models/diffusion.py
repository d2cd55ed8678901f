"""A small class-conditional U-Net that predicts the noise in a noised image (DDPM, Ho et al.
2020): residual blocks with GroupNorm, a timestep and a class embedding added to every block, self-
attention at the coarsest resolution. nn.Modules only: no I/O, no training logic.

Every block normalises each image on its own (GroupNorm, no BatchNorm), so an image's prediction
does not depend on the other images in its batch. Class index `n_classes` is the null label of
classifier-free guidance (the label dropped).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.dcgan import upsample_plan


def widths(width: int, levels: int) -> list[int]:
    """Channels from the finest to the coarsest level: x2 per level, at most 4x (as stylegan)."""
    return [width * min(2**i, 4) for i in range(levels)]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(8 if channels % 8 == 0 else 1, channels)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim) of integer timesteps, as in the Transformer."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(e)[:, :, None, None]  # (B, C, 1, 1): timestep and class
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels of one image (the coarsest level only, where
    there are few of them)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm, self.qkv = _norm(channels), nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)  # (B, HW, C)
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(y.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """eps_theta(x_t (B, C, H, W), t (B,), y (B,)) -> (B, C, H, W). Levels: the image size halved
    while even and > 7 (28 -> 28, 14, 7; 64 -> 64 ... 4), one residual block per level each way."""

    def __init__(self, *, n_classes: int, image_size: int, channels: int, width: int) -> None:
        super().__init__()
        _, n_down = upsample_plan(image_size)
        ch = widths(width, n_down + 1)
        self.emb_dim = emb = 4 * width
        self.time = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label = nn.Embedding(n_classes + 1, emb)  # + the null label
        self.inp = nn.Conv2d(channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(ResBlock(ch[max(i - 1, 0)], c, emb) for i, c in enumerate(ch))
        self.pool = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for c in ch[:-1])
        self.mid1, self.attn, self.mid2 = ResBlock(ch[-1], ch[-1], emb), Attention(ch[-1]), \
            ResBlock(ch[-1], ch[-1], emb)
        self.up = nn.ModuleList(ResBlock(2 * c, ch[max(i - 1, 0)], emb)
                                for i, c in reversed(list(enumerate(ch))))
        self.unpool = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for c in reversed(ch[:-1]))
        self.out = nn.Sequential(_norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # starts by predicting no noise: a stable first step
        nn.init.zeros_(self.out[-1].bias)
        self.width = width

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = self.time(timestep_embedding(t, self.width)) + self.label(y)  # (B, emb)
        h, skips = self.inp(x), []
        for i, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid2(self.attn(self.mid1(h, e)), e)
        for i, block in enumerate(self.up):
            if i > 0:  # back to the next finer level
                h = self.unpool[i - 1](F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = block(torch.cat([h, skips.pop()], dim=1), e)
        return self.out(h)
