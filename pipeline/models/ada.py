"""Adaptive discriminator augmentation (ADA, Karras et al. 2020): a differentiable augmentation
pipeline applied to every image the discriminator sees, real and fake, each op with probability p;
p is steered from D's overfitting heuristic r_t = E[sign(D(real))] towards a target.

The state (p and the running sum of signs) lives in module buffers, so it is saved and restored
with the discriminator's state_dict: a resumed run continues with the same p. Random draws come
from torch's global RNG (saved in the training state). Images in [-1, 1], (B, C, H, W), square.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

P_MAX = 0.999  # p stays in [0, 1): at p = 1 every image is transformed and leaks would follow


def _chosen(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which images this op transforms."""
    return torch.rand(len(x), device=x.device) < p


def xflip(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return torch.where(_chosen(x, p)[:, None, None, None], x.flip(3), x)


def rotate90(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    k = torch.randint(1, 4, (len(x),), device=x.device) * _chosen(x, p)  # (B,) quarter turns
    out = x
    for r in (1, 2, 3):
        out = torch.where((k == r)[:, None, None, None], torch.rot90(x, r, dims=(2, 3)), out)
    return out


def translate(x: torch.Tensor, p: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Integer shifts of up to `ratio` of the side, reflecting at the border."""
    b, _, h, w = x.shape
    s = max(1, round(h * ratio))
    on = _chosen(x, p).long()
    dy = torch.randint(-s, s + 1, (b, 1, 1), device=x.device) * on.view(b, 1, 1)
    dx = torch.randint(-s, s + 1, (b, 1, 1), device=x.device) * on.view(b, 1, 1)
    iy = torch.arange(h, device=x.device).view(1, h, 1) + s - dy  # (B, H, 1) in the padded frame
    ix = torch.arange(w, device=x.device).view(1, 1, w) + s - dx  # (B, 1, W)
    padded = F.pad(x, [s, s, s, s], mode="reflect").permute(0, 2, 3, 1)  # (B, H+2s, W+2s, C)
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded[bi, iy, ix].permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


def scale(x: torch.Tensor, p: torch.Tensor, std: float = 0.2) -> torch.Tensor:
    """Isotropic zoom by 2**N(0, std), bilinear, reflecting at the border."""
    b = len(x)
    factor = torch.exp2(torch.randn(b, device=x.device) * std)
    factor = torch.where(_chosen(x, p), factor, torch.ones_like(factor))
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / factor
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    zoomed = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                           align_corners=False)
    return torch.where((factor != 1).view(-1, 1, 1, 1), zoomed, x)  # untouched images exact


def brightness(x: torch.Tensor, p: torch.Tensor, std: float = 0.2) -> torch.Tensor:
    shift = torch.randn(len(x), device=x.device) * std * _chosen(x, p)
    return x + shift.view(-1, 1, 1, 1).to(x.dtype)


def contrast(x: torch.Tensor, p: torch.Tensor, std: float = 0.5) -> torch.Tensor:
    factor = torch.exp2(torch.randn(len(x), device=x.device) * std)
    chosen = _chosen(x, p).view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return torch.where(chosen, (x - mean) * factor.view(-1, 1, 1, 1).to(x.dtype) + mean, x)


# Applied in this order; params `stylegan.augment` picks a subset (config reads its choices from here).
ADA_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "xflip": xflip, "rotate90": rotate90, "translate": translate, "scale": scale,
    "brightness": brightness, "contrast": contrast,
}


class AdaptiveAugment(nn.Module):
    """x -> augmented x with probability p per op and image; `observe` + `adjust` tune p."""

    def __init__(self, ops: Sequence[str], *, p: float = 0.0) -> None:
        super().__init__()
        self.ops = [name for name in ADA_OPS if name in ops]
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("signs", torch.zeros(2))  # (sum of sign(D(real)), count) since adjust

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(self.p) == 0:  # nothing to draw (ADA off, or not yet needed): skip the work
            return x
        for name in self.ops:
            x = ADA_OPS[name](x, self.p)
        return x

    @torch.no_grad()
    def observe(self, real_logits: torch.Tensor) -> None:
        count = real_logits.new_tensor(len(real_logits))
        self.signs += torch.stack([real_logits.sign().sum(), count])

    @torch.no_grad()
    def adjust(self, *, target: float, images: int, kimg: float) -> torch.Tensor:
        """p += sign(r_t - target) * images / (kimg * 1000), clamped to [0, P_MAX]; returns r_t.
        `images`: real images seen since the last adjustment (batch x interval)."""
        r_t = self.signs[0] / self.signs[1].clamp(min=1)
        self.p.copy_((self.p + torch.sign(r_t - target) * images / (kimg * 1000)).clamp(0, P_MAX))
        self.signs.zero_()
        return r_t

