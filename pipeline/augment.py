"""Classifier-side augmentation: random, label-preserving transforms of each training batch.

Applied on the batch's device, to every variant alike (evaluate, the feature extractor and the
TSTR classifier), so a synthetic set has to add something that classic augmentation does not.
Every op takes images in [-1, 1], shape (B, C, H, W), and draws its randomness from the
`torch.Generator` it is given: the same seed gives the same augmented batches.

Which transforms are safe depends on the modality (`evaluate.augment`, `features.augment`):

* `translate` (shift by up to 1/8 of the side, black fill), `brightness`, `contrast`, and small
  `rotate` (±10°) are safe for X-ray, ultrasound, dermoscopy and histology;
* `hflip` is safe for ultrasound, dermoscopy and histology, but not for chest X-rays, where
  left/right carries anatomy (heart, situs) and laterality markers;
* `vflip` only for orientation-free images (histology, dermoscopy); never ultrasound (depth runs
  downwards from the probe) or X-ray.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Op = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(b: int, gen: torch.Generator, device: torch.device, lo: float, hi: float
             ) -> torch.Tensor:
    return torch.rand(b, generator=gen, device=device) * (hi - lo) + lo  # (B,)


def translate(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Pad with black by s = ratio * side and crop back at a random offset (per image)."""
    b, c, h, w = x.shape
    sy, sx = max(1, round(h * ratio)), max(1, round(w * ratio))
    dy = torch.randint(0, 2 * sy + 1, (b, 1, 1), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * sx + 1, (b, 1, 1), generator=gen, device=x.device)
    padded = F.pad(x, [sx, sx, sy, sy], value=-1.0)  # (B, C, H+2sy, W+2sx)
    iy = torch.arange(h, device=x.device).view(1, h, 1) + dy  # (B, H, 1)
    ix = torch.arange(w, device=x.device).view(1, 1, w) + dx  # (B, 1, W)
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[bi, iy, ix].permute(0, 3, 1, 2).contiguous()


def _flip(x: torch.Tensor, gen: torch.Generator, dim: int) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(dim), x)


def hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return _flip(x, gen, 3)


def vflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return _flip(x, gen, 2)


def rotate(x: torch.Tensor, gen: torch.Generator, degrees: float = 10.0) -> torch.Tensor:
    """Rotate each image by a uniform angle in [-degrees, degrees] (bilinear, black corners)."""
    angle = _uniform(x.shape[0], gen, x.device, -degrees, degrees) * (math.pi / 180)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1),
                         torch.stack([sin, cos, zero], 1)], 1).to(x.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # zeros padding in [0, 1] space is black
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


def brightness(x: torch.Tensor, gen: torch.Generator, amount: float = 0.1) -> torch.Tensor:
    """Add up to ±amount of the intensity range (per image)."""
    shift = _uniform(x.shape[0], gen, x.device, -amount, amount) * 2  # the range [-1, 1] is 2 wide
    return x + shift.view(-1, 1, 1, 1).to(x.dtype)


def contrast(x: torch.Tensor, gen: torch.Generator, amount: float = 0.2) -> torch.Tensor:
    """Scale the deviation from each image's mean by a factor in [1 - amount, 1 + amount]."""
    factor = _uniform(x.shape[0], gen, x.device, 1 - amount, 1 + amount).view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor.to(x.dtype) + mean


# name (params `evaluate.augment`, `features.augment`) -> op; applied in the order listed
AUGMENTATIONS: dict[str, Op] = {
    "translate": translate, "hflip": hflip, "vflip": vflip, "rotate": rotate,
    "brightness": brightness, "contrast": contrast,
}


def augment(x: torch.Tensor, names: Sequence[str], gen: torch.Generator) -> torch.Tensor:
    """The listed ops in order, clamped back to [-1, 1]; `x` unchanged when `names` is empty."""
    if not names:
        return x
    for name in names:
        x = AUGMENTATIONS[name](x, gen)
    return x.clamp(-1.0, 1.0)
