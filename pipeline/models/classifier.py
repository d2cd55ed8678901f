"""The downstream classifier whose accuracy measures whether augmentation helps."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """(conv-BN-ReLU x2, max-pool) blocks until the map is <= 4 px, then global pool and a linear head.

    Depth follows `image_size`: 8 px -> 1 pooled block + 1 unpooled; 28 px -> 3; 128 px -> 4 (capped).
    """

    def __init__(self, *, channels: int, n_classes: int, image_size: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, size, c_out = channels, image_size, width
        for _ in range(4):
            layers += [self._block(c_in, c_out), nn.MaxPool2d(2)]
            c_in, size = c_out, size // 2
            c_out = min(c_out * 2, 8 * width)
            if size <= 4:
                break
        layers += [self._block(c_in, c_out), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(c_out, n_classes))
        self.feature_dim = c_out

    @staticmethod
    def _block(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, n_classes) logits


def resnet18_small(*, channels: int, n_classes: int, image_size: int, width: int = 64) -> nn.Module:
    """torchvision's ResNet-18, randomly initialised (no download), adapted to small inputs: a 3x3
    stride-1 stem and no max-pool, so an 8x8 or 28x28 image is not pooled away in the stem.
    `width` is accepted for a uniform signature; ResNet-18 keeps its own widths."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=n_classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


# params `evaluate.classifier` -> constructor(channels=, n_classes=, image_size=, width=)
CLASSIFIERS = {"cnn": SmallCNN, "resnet18": resnet18_small}
