"""Images from a trained conditional generator, one seed per image. Imports no training code, so
generate and the quality probe can sample without it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.gan.latents import latents
from pipeline.pixels import to_uint8

__all__ = ["sample"]


@torch.no_grad()
def sample(
    G: nn.Module, labels: np.ndarray, seeds: np.ndarray, *, latent_dim: int,
    device: torch.device, batch_size: int = 512,
) -> np.ndarray:
    """Images for `labels` (N,), image i from z = latents(seeds[i]) (pipeline/gan/latents.py):
    uint8 (N, H, W, C). Seeding each image on its own makes any single synthetic image
    reproducible from the manifest."""
    G.eval()
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    # one dummy row so that an empty request still learns the image shape
    z = latents(seeds if len(seeds) else np.zeros(1, np.int64), latent_dim, device=device)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64).reshape(-1))
    y = (y if len(y) else torch.zeros(1, dtype=torch.int64)).to(device)
    # The images land in one uint8 array on the device and cross to the host once.
    first = to_uint8(G(z[:batch_size], y[:batch_size]))
    out = torch.empty((len(z), *first.shape[1:]), dtype=torch.uint8, device=device)
    out[: len(first)] = first
    for i in range(batch_size, len(z), batch_size):
        out[i : i + batch_size] = to_uint8(G(z[i : i + batch_size], y[i : i + batch_size]))
    return out[: len(seeds)].cpu().numpy()
