"""A style-based conditional generator and a residual projection discriminator (the ideas of
StyleGAN2 / StyleGAN2-ADA, Karras et al. 2020, written here for 8-64 px images). nn.Modules only.

G: mapping network [z, class embedding] -> w; a learned constant; modulated + demodulated 3x3
convolutions with per-pixel noise; skip-connected RGB outputs at every resolution. Sampling in eval
mode uses each layer's stored constant noise, so an image is a function of (z, y) alone.
D: residual blocks, minibatch standard deviation, projection head (Miyato & Koyama 2018).
Layers use equalized learning rate (weights ~ N(0, 1), scaled at run time by 1/sqrt(fan_in)).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.dcgan import upsample_plan

SQRT2 = math.sqrt(2.0)


def style_widths(width: int, n_up: int) -> list[int]:
    """Channels from the coarsest to the finest resolution, capped at 4x: 32, 2 -> [128, 64, 32]."""
    return [width * 2 ** min(n_up - i, 2) for i in range(n_up + 1)]


def normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    return x * x.square().mean(dim=1, keepdim=True).add(1e-8).rsqrt()


class EqualLinear(nn.Module):
    """`rowwise`: each output row is a plain sum over its own input row, so a sample's result
    does not depend on the batch it is in (a BLAS matmul may block differently for another batch
    size and differ in the last bit); the generator's small layers use it so that any image is
    reproducible from its seed alone, whatever else is drawn with it."""

    def __init__(self, c_in: int, c_out: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 act: bool = False, rowwise: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init)))
        self.w_gain, self.b_gain, self.act = lr_mul / math.sqrt(c_in), lr_mul, act
        self.rowwise = rowwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rowwise:  # (B, 1, C_in) * (C_out, C_in) -> (B, C_out, C_in) -> (B, C_out)
            x = (x.unsqueeze(1) * (self.weight * self.w_gain)).sum(dim=2) + self.bias * self.b_gain
        else:
            x = F.linear(x, self.weight * self.w_gain, self.bias * self.b_gain)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


class EqualConv2d(nn.Module):
    """(2x average-pool downsampling +) k x k convolution, optional bias and leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int, *, bias: bool = True, act: bool = True,
                 down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.gain, self.act, self.down = 1 / math.sqrt(c_in * k * k), act, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:  # pool first: the conv then runs at a quarter of the pixels
            x = F.avg_pool2d(x, 2)
        x = F.conv2d(x, self.weight * self.gain, self.bias, padding=self.weight.shape[-1] // 2)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


class Mapping(nn.Module):
    """(z (B, latent_dim), y (B,)) -> w (B, w_dim); keeps each class's running mean w (`w_avg`,
    updated in training mode) for truncation towards the class mean."""

    def __init__(self, *, latent_dim: int, n_classes: int, layers: int,
                 beta: float = 0.995) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.randn(n_classes, latent_dim))
        dims = [2 * latent_dim] + [latent_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=0.01, act=True, rowwise=True)
                                   for a, b in pairwise(dims)])
        self.register_buffer("w_avg", torch.zeros(n_classes, latent_dim))
        self.beta = beta

    def forward(self, z: torch.Tensor, y: torch.Tensor, *, psi: float = 1.0) -> torch.Tensor:
        h = torch.cat([normalize_2nd_moment(z), normalize_2nd_moment(self.embed[y])], dim=1)
        w = self.net(h)  # (B, w_dim)
        if self.training:
            with torch.no_grad():  # per-class batch means, then an EMA of the classes present
                sums = torch.zeros_like(self.w_avg).index_add_(0, y, w.detach().float())
                n = torch.bincount(y, minlength=len(self.w_avg)).unsqueeze(1)  # (K, 1)
                moved = self.w_avg.lerp(sums / n.clamp(min=1), 1 - self.beta)
                self.w_avg.copy_(torch.where(n > 0, moved, self.w_avg))
        if psi != 1.0:
            w = self.w_avg[y].lerp(w, psi)
        return w


class ModulatedConv(nn.Module):
    """Style-modulated k x k conv: input channels scaled by the style, output channels
    demodulated to unit expected variance, then noise, bias and leaky ReLU. `up`: 2x bilinear
    upsampling first. The modulation is applied to activations (one shared weight, a plain
    batched conv), which is cheaper on CPU than per-sample grouped weights."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, *, k: int = 3, demod: bool = True,
                 up: bool = False, noise_size: int = 0, act: bool = True) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0, rowwise=True)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.gain, self.demod, self.up, self.act = 1 / math.sqrt(c_in * k * k), demod, up, act
        self.noise_strength = nn.Parameter(torch.zeros(())) if noise_size else None
        if noise_size:
            self.register_buffer("noise_const", torch.randn(noise_size, noise_size))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        styles = self.affine(w)  # (B, C_in)
        weight = self.weight * self.gain  # (C_out, C_in, k, k)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demod:  # 1 / ||w * s|| per sample and output channel: (B, C_out)
            d = (weight.square().sum(dim=(2, 3)) * styles.square().unsqueeze(1)).sum(dim=2)
            x = x * d.add(1e-8).rsqrt()[:, :, None, None]
        if self.noise_strength is not None:
            b, _, h, w_ = x.shape
            noise = (torch.randn(b, 1, h, w_, device=x.device, dtype=x.dtype) if self.training
                     else self.noise_const.expand(b, 1, h, w_))
            x = x + noise * self.noise_strength
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x  # (B, C_out, H, W)


class StyleGenerator(nn.Module):
    """(z (B, latent_dim), y (B,)) -> images (B, C, H, W), roughly in [-1, 1] (no tanh)."""

    def __init__(self, *, latent_dim: int, n_classes: int, image_size: int, channels: int,
                 width: int, mapping_layers: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        s0, n_up = upsample_plan(image_size)
        widths = style_widths(width, n_up)
        self.mapping = Mapping(latent_dim=latent_dim, n_classes=n_classes, layers=mapping_layers)
        self.const = nn.Parameter(torch.randn(widths[0], s0, s0))
        self.conv0 = ModulatedConv(widths[0], widths[0], latent_dim, noise_size=s0)
        self.rgb0 = ModulatedConv(widths[0], channels, latent_dim, k=1, demod=False, act=False)
        self.blocks = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairwise(widths)):
            size = s0 * 2 ** (i + 1)
            self.blocks.append(nn.ModuleList([
                ModulatedConv(c_in, c_out, latent_dim, up=True, noise_size=size),
                ModulatedConv(c_out, c_out, latent_dim, noise_size=size),
                ModulatedConv(c_out, channels, latent_dim, k=1, demod=False, act=False),
            ]))
        self.num_ws = 2 + 3 * n_up  # one w per modulated layer (style mixing crosses over here)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """ws (B, num_ws, w_dim) -> images (B, C, H, W)."""
        x = self.const.unsqueeze(0).expand(len(ws), -1, -1, -1)  # (B, C0, s0, s0)
        x = self.conv0(x, ws[:, 0])
        img = self.rgb0(x, ws[:, 1])
        for i, (up, conv, rgb) in enumerate(self.blocks):
            x = conv(up(x, ws[:, 2 + 3 * i]), ws[:, 3 + 3 * i])
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            img = img + rgb(x, ws[:, 4 + 3 * i])  # skip-connected RGB outputs
        return img

    def forward(self, z: torch.Tensor, y: torch.Tensor, *, psi: float = 1.0) -> torch.Tensor:
        w = self.mapping(z, y, psi=psi)  # (B, w_dim)
        return self.synthesis(w.unsqueeze(1).expand(-1, self.num_ws, -1))


def minibatch_std(x: torch.Tensor, *, group: int = 4) -> torch.Tensor:
    """Append one channel: the mean standard deviation over groups of `group` consecutive
    samples (the batch must be a multiple of the group size; it shrinks to a divisor)."""
    b, c, h, w = x.shape
    g = math.gcd(group, b)
    s = x.reshape(b // g, g, c, h, w).float()
    s = (s - s.mean(dim=1, keepdim=True)).square().mean(dim=1).add(1e-8).sqrt()  # (B/g, C, H, W)
    s = s.mean(dim=(1, 2, 3)).repeat_interleave(g).to(x.dtype)  # (B,)
    return torch.cat([x, s.view(b, 1, 1, 1).expand(b, 1, h, w)], dim=1)


class ResidualDiscriminator(nn.Module):
    """(images (B, C, H, W), y (B,)) -> logits (B,): residual downsampling blocks, minibatch
    stddev, and a projection head: out(phi) + <embed(y), phi> / sqrt(F)."""

    def __init__(self, *, n_classes: int, image_size: int, channels: int, width: int) -> None:
        super().__init__()
        s0, n_down = upsample_plan(image_size)
        widths = style_widths(width, n_down)[::-1]  # finest -> coarsest
        self.from_rgb = EqualConv2d(channels, widths[0], 1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in pairwise(widths):
            self.blocks.append(nn.ModuleList([
                EqualConv2d(c_in, c_in, 3), EqualConv2d(c_in, c_out, 3, down=True),
                EqualConv2d(c_in, c_out, 1, bias=False, act=False, down=True),
            ]))
        feat = widths[-1]
        self.conv = EqualConv2d(feat + 1, feat, 3)
        self.fc = EqualLinear(feat * s0 * s0, feat, act=True)
        self.out = EqualLinear(feat, 1)
        self.embed = nn.Parameter(torch.randn(n_classes, feat))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.from_rgb(x)  # (B, W0, H, W)
        for conv1, conv2, skip in self.blocks:
            h = (skip(h) + conv2(conv1(h))) / SQRT2
        phi = self.fc(self.conv(minibatch_std(h)).flatten(1))  # (B, F)
        proj = (self.embed[y] * phi).sum(dim=1) / math.sqrt(phi.shape[1])
        return self.out(phi).squeeze(1) + proj  # (B,)
