"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real *and* fake images.

Applying the same random transforms to both keeps the discriminator from memorising a small
training set while leaving the generator's target distribution unchanged. All ops run on the
images' device and accept images in [-1, 1], shape (B, C, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sy, sx = max(1, round(h * ratio)), max(1, round(w * ratio))
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    iy = (torch.arange(h, device=x.device).view(1, h, 1) + dy).clamp(-1, h) + 1  # (B, H, 1)
    ix = (torch.arange(w, device=x.device).view(1, 1, w) + dx).clamp(-1, w) + 1  # (B, 1, W)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # (B, H+2, W+2, C), zero border
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded[bi, iy, ix].permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = max(1, round(h * ratio)), max(1, round(w * ratio))
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy).abs() <= ch // 2) & ((xs - cx).abs() <= cw // 2)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device) - 0.5)  # brightness
    if x.shape[1] == 3:  # saturation only means something for colour images
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) + 0.5) + mean  # contrast


AUGMENTS = {"translation": translation, "cutout": cutout, "color": color}


def diff_augment(x: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    for name in policy:
        x = AUGMENTS[name](x)
    return x
