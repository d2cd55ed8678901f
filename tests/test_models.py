"""pipeline/models: shapes and ranges for every image size and channel count in use."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.models.classifier import SmallCNN
from pipeline.models.dcgan import GAN_ARCHS, build_discriminator, build_generator, upsample_plan

SIZES = [8, 28, 32, 64]
N_CLASSES = 3


@pytest.mark.parametrize(("size", "plan"), [
    (8, (4, 1)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4)), (128, (4, 5)), (224, (7, 5)),
    (7, (7, 0)), (6, (6, 0)), (12, (6, 1)), (14, (7, 1)), (4, (4, 0)),
])
def test_upsample_plan(size: int, plan: tuple[int, int]) -> None:
    assert upsample_plan(size) == plan
    s0, n = plan
    assert s0 * 2**n == size


def test_arch_registry() -> None:
    assert sorted(GAN_ARCHS) == ["dcgan", "mlp"]


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", SIZES)
def test_generator_and_discriminator_shapes(arch: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    kwargs = dict(n_classes=N_CLASSES, image_size=size, channels=channels, width=8)
    G = build_generator(arch, latent_dim=16, **kwargs)
    D = build_discriminator(arch, spectral_norm=True, **kwargs)
    z, y = torch.randn(4, 16) * 3, torch.tensor([0, 1, 2, 1])
    x = G(z, y)
    assert x.shape == (4, channels, size, size)
    assert x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0  # not a constant image
    logits = D(x, y)
    assert logits.shape == (4,)
    assert torch.isfinite(logits).all()
    logits.sum().backward()  # gradients reach the generator through D
    assert all(p.grad is not None for p in G.parameters())


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_generator_is_conditioned_on_the_label(arch: str) -> None:
    torch.manual_seed(0)
    G = build_generator(arch, latent_dim=16, n_classes=3, image_size=8, channels=1, width=8).eval()
    z = torch.randn(1, 16).repeat(3, 1)
    x = G(z, torch.tensor([0, 1, 2]))
    assert not torch.allclose(x[0], x[1]) and not torch.allclose(x[1], x[2])


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_spectral_norm_is_optional(arch: str) -> None:
    kwargs = dict(n_classes=3, image_size=8, channels=1, width=8)
    with_sn = build_discriminator(arch, spectral_norm=True, **kwargs)
    without = build_discriminator(arch, spectral_norm=False, **kwargs)
    names_sn = {n for n, _ in with_sn.named_parameters()}
    names = {n for n, _ in without.named_parameters()}
    assert any(n.endswith("weight_orig") for n in names_sn)
    assert not any(n.endswith("weight_orig") for n in names)


def test_dcgan_widths_double_towards_the_coarsest_layer() -> None:
    G = build_generator("dcgan", latent_dim=16, n_classes=3, image_size=32, channels=1, width=8)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(64, 32), (32, 16), (16, 8)]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("size", "n_pool"), [(8, 1), (28, 3), (32, 3), (64, 4)])
def test_small_cnn_logits_and_depth(channels: int, size: int, n_pool: int) -> None:
    torch.manual_seed(0)
    model = SmallCNN(channels=channels, n_classes=5, image_size=size, width=8)
    out = model(torch.randn(3, channels, size, size))
    assert out.shape == (3, 5) and torch.isfinite(out).all()
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == n_pool
    assert model.feature_dim == min(8 * 2**n_pool, 64)
