"""Per-image latent vectors from integer seeds, vectorised on any device.

z_i = latents(seed_i) is a pure function of the seed: a counter-based generator (the splitmix64
finaliser over (seed, coordinate) counters, two 24-bit uniforms per 64-bit hash, Box-Muller)
computed with int64 tensor arithmetic, so a million latents are a few kernels on a GPU instead of a
million Python-level RNG objects, and any single synthetic image can be drawn again from the seed
in its manifest row.
Integer steps are exact on every device; the final log/cos may differ in the last bit between CPU
and GPU, so images are bit-identical on the same kind of device.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64 (splitmix64's increment)
_M1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_M2 = -7723592293110705685  # 0x94D049BB133111EB


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic: it copies the sign bit)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser: a bijective scramble of 64 bits (int64 products wrap around)."""
    x = (x ^ _shr(x, 30)) * _M1
    x = (x ^ _shr(x, 27)) * _M2
    return x ^ _shr(x, 31)


def latents(seeds: np.ndarray | torch.Tensor, latent_dim: int, *, device: torch.device
            ) -> torch.Tensor:
    """z (N, latent_dim) float32 ~ N(0, I) on `device`; row i a function of seeds[i] (int64)
    alone."""
    s = torch.as_tensor(np.asarray(seeds, dtype=np.int64), device=device).view(-1, 1)
    key = _mix(s * _GOLDEN)  # (N, 1): decorrelates neighbouring seeds
    j = torch.arange(latent_dim, device=device, dtype=torch.int64).view(1, -1)
    h = _mix(key + (j + 1) * _GOLDEN)  # 64 random bits per coordinate: two 24-bit uniforms
    u1 = (_shr(h, 40).float() + 0.5) / 2**24  # (0, 1): log is finite
    u2 = ((h >> 16) & 0xFFFFFF).float() / 2**24
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
