"""Class-conditional generators and discriminators. nn.Modules only: no I/O, no training logic.

Every generator maps (z (B, latent_dim), y (B,)) -> images (B, C, H, W) in [-1, 1]; every
discriminator maps (images, y) -> logits (B,). Sizes adapt to `image_size` (8x8 digits, 28x28
MedMNIST, 64/128 px) and `channels` (1 or 3).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import spectral_norm as _sn


def upsample_plan(image_size: int) -> tuple[int, int]:
    """(start resolution, number of 2x upsamplings): halve while even and > 7.

    8 -> (4, 1); 28 -> (7, 2); 32 -> (4, 3); 64 -> (4, 4); 128 -> (4, 5); 224 -> (7, 5).
    """
    s, n = image_size, 0
    while s % 2 == 0 and s > 7:
        s, n = s // 2, n + 1
    return s, n


def _widths(width: int, n_up: int) -> list[int]:
    """Channel widths from the coarsest to the finest resolution, e.g. 64, 2 -> [256, 128, 64]."""
    return [width * 2 ** min(n_up - i, 3) for i in range(n_up + 1)]


class DCGANGenerator(nn.Module):
    """Conditional DCGAN: [z, embed(y)] -> linear -> (transposed conv, BatchNorm, ReLU) x n -> tanh."""

    def __init__(
        self, *, latent_dim: int, n_classes: int, image_size: int, channels: int, width: int
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.s0, n_up = upsample_plan(image_size)
        widths = _widths(width, n_up)
        self.embed = nn.Embedding(n_classes, latent_dim)
        self.project = nn.Sequential(
            nn.Linear(2 * latent_dim, widths[0] * self.s0 * self.s0, bias=False),
            nn.BatchNorm1d(widths[0] * self.s0 * self.s0),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(nn.Conv2d(widths[-1], channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(y)], dim=1))  # (B, W0 * s0 * s0)
        h = h.view(len(z), -1, self.s0, self.s0)  # (B, W0, s0, s0)
        return self.to_image(self.blocks(h))  # (B, C, H, W)


class ProjectionDiscriminator(nn.Module):
    """All-convolutional D with a projection head (Miyato & Koyama 2018): logit = w.phi + e_y.phi."""

    def __init__(
        self, *, n_classes: int, image_size: int, channels: int, width: int,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        sn = _sn if spectral_norm else (lambda m: m)
        s0, n_down = upsample_plan(image_size)
        widths = _widths(width, n_down)[::-1]  # finest -> coarsest
        layers: list[nn.Module] = [sn(nn.Conv2d(channels, widths[0], 3, padding=1)),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [sn(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        feat = widths[-1]
        self.phi = nn.Sequential(sn(nn.Linear(feat * s0 * s0, feat)), nn.LeakyReLU(0.2, inplace=True))
        self.out = sn(nn.Linear(feat, 1))
        self.embed = sn(nn.Embedding(n_classes, feat))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.phi(self.features(x).flatten(1))  # (B, F)
        return self.out(phi).squeeze(1) + (self.embed(y) * phi).sum(dim=1)  # (B,)


class MLPGenerator(nn.Module):
    """A vanilla (MLP) GAN generator, with the label embedding concatenated to z."""

    def __init__(
        self, *, latent_dim: int, n_classes: int, image_size: int, channels: int, width: int
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.shape = (channels, image_size, image_size)
        hidden = [4 * width, 8 * width, 16 * width]  # width=64 -> 256, 512, 1024 units
        self.embed = nn.Embedding(n_classes, latent_dim)
        layers: list[nn.Module] = []
        for c_in, c_out in zip([2 * latent_dim, *hidden[:-1]], hidden):
            layers += [nn.Linear(c_in, c_out), nn.LeakyReLU(0.2, inplace=True)]
        self.net = nn.Sequential(*layers, nn.Linear(hidden[-1], math.prod(self.shape)), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(y)], dim=1)).view(len(z), *self.shape)


class MLPDiscriminator(nn.Module):
    """A vanilla (MLP) GAN discriminator on [flattened image, label embedding]; logits."""

    def __init__(
        self, *, n_classes: int, image_size: int, channels: int, width: int,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        sn = _sn if spectral_norm else (lambda m: m)
        n_pixels = channels * image_size * image_size
        self.embed = nn.Embedding(n_classes, n_pixels)
        self.net = nn.Sequential(
            sn(nn.Linear(2 * n_pixels, 8 * width)), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Linear(8 * width, 4 * width)), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Linear(4 * width, 1)),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), self.embed(y)], dim=1)).squeeze(1)


GAN_ARCHS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "dcgan": (DCGANGenerator, ProjectionDiscriminator),
    "mlp": (MLPGenerator, MLPDiscriminator),
}


def build_generator(arch: str, **kwargs: int) -> nn.Module:
    """kwargs: latent_dim, n_classes, image_size, channels, width (stored in the checkpoint)."""
    return GAN_ARCHS[arch][0](**kwargs)


def build_discriminator(arch: str, *, spectral_norm: bool, **kwargs: int) -> nn.Module:
    """kwargs: n_classes, image_size, channels, width."""
    return GAN_ARCHS[arch][1](spectral_norm=spectral_norm, **kwargs)
