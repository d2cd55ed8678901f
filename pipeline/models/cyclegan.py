"""CycleGAN's networks (Zhu et al. 2017) for small images. nn.Modules only.

Generator: image -> image of the same size: 7x7 conv, one stride-2 downsampling, residual blocks,
one upsampling, 7x7 conv, tanh; InstanceNorm, so each image's translation is independent of the
batch. Discriminator: a PatchGAN: one logit per overlapping patch (B, 1, h, w).
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(c: int) -> nn.Module:
    return nn.InstanceNorm2d(c)


class ResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(B, C, H, W) in [-1, 1] -> (B, C, H, W) in [-1, 1]; H and W even."""

    def __init__(self, *, channels: int, width: int, n_res: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), _norm(width), nn.ReLU(True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), _norm(2 * width), nn.ReLU(True),
            *[ResidualBlock(2 * width) for _ in range(n_res)],
            nn.ConvTranspose2d(2 * width, width, 3, stride=2, padding=1, output_padding=1),
            _norm(width), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) -> patch logits (B, 1, H/4, W/4)."""

    def __init__(self, *, channels: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), _norm(2 * width),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), _norm(4 * width),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * width, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ImagePool(nn.Module):
    """CycleGAN's history buffer: D sees, half the time, a fake from an earlier step instead of
    the newest, which damps oscillation. The stored images are a buffer of this module, so they are
    saved with the state_dict (a resumed run sees the same history)."""

    def __init__(self, size: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def forward(self, fakes: torch.Tensor) -> torch.Tensor:
        size = len(self.images)
        if size == 0:
            return fakes
        out = fakes.clone()
        for i in range(len(fakes)):
            n = int(self.count)
            if n < size:  # fill the buffer first, returning the new image
                self.images[n] = fakes[i]
                self.count += 1
            elif float(torch.rand(())) < 0.5:  # swap: return an old image, keep the new one
                j = int(torch.randint(0, size, ()))
                out[i] = self.images[j].clone()
                self.images[j] = fakes[i]
        return out
