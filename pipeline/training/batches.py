"""Labelled batches from a training split resident on the device, and latents, all drawn from the
method's generator (saved and restored with the training state). Shared by the methods that
sample batches with replacement (dcgan, stylegan, ...)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.pixels import to_unit


@dataclass
class Batches:
    """Labelled batches drawn with replacement from uint8 images resident on the device, and
    latents, all from one generator `gen` (the loop saves and restores its state)."""

    data: torch.Tensor  # uint8 (N, H, W, C)
    targets: torch.Tensor  # (N,)
    weights: torch.Tensor  # (N,) sampling weight of each image
    gen: torch.Generator
    size: int
    latent_dim: int

    @classmethod
    def of(cls, images: np.ndarray, labels: np.ndarray, *, n_classes: int, balanced: bool,
           gen: torch.Generator, size: int, latent_dim: int, device: torch.device) -> Batches:
        data = torch.from_numpy(images).to(device)  # the whole set stays resident
        targets = torch.from_numpy(labels).to(device)
        # Uniform over images, or uniform over classes (minority classes then get as many
        # generator and discriminator updates as the majority).
        counts = torch.bincount(targets, minlength=n_classes).float()
        weights = 1.0 / counts[targets] if balanced else torch.ones_like(targets).float()
        return cls(data, targets, weights, gen, size, latent_dim)

    def real(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) in [-1, 1] and their labels (B,)."""
        idx = torch.multinomial(self.weights, self.size, replacement=True, generator=self.gen)
        return to_unit(self.data[idx]), self.targets[idx]

    def z(self) -> torch.Tensor:  # (B, latent_dim)
        return torch.randn(self.size, self.latent_dim, device=self.data.device, generator=self.gen)
