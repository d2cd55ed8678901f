"""GAN parts: losses, pixel conversions, DiffAugment, sampling, the dcgan checkpoint and per-image
latents (the training loop: test_gan_train.py, test_gan_resume.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.artifacts import save_checkpoint
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.gan.diffaugment import AUGMENTS, cutout, diff_augment, translation
from pipeline.gan.losses import LOSSES
from pipeline.pixels import to_uint8, to_unit
from pipeline.synthesizers.base import FORMAT, GeneratorSynthesizer, load_synthesizer, sample
from pipeline.synthesizers.dcgan import fit
from pipeline.training.state import TrainState
from test_gan_train import CPU, IMAGES, LABELS, tiny


# --- losses ---------------------------------------------------------------------------------------

def test_losses_on_worked_logits() -> None:
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    hinge, bce = LOSSES["hinge"], LOSSES["bce"]
    # hinge D: mean(relu(1 - real)) + mean(relu(1 + fake)) = (0 + 1)/2 + (0 + 1.5)/2
    assert hinge.d(real, fake).item() == pytest.approx(1.25)
    assert hinge.g(fake).item() == pytest.approx(0.75)  # -mean(fake)
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731 - softplus
    assert bce.d(real, fake).item() == pytest.approx((sp(-2) + sp(0)) / 2 + (sp(-2) + sp(0.5)) / 2)
    assert bce.g(fake).item() == pytest.approx((sp(2) + sp(-0.5)) / 2)
    wgan = LOSSES["wgan-gp"]  # critic: E[fake] - E[real] + 0.001 E[real^2] (drift)
    assert wgan.d(real, fake).item() == pytest.approx(-0.75 - 1.0 + 0.001 * 2.0)
    assert wgan.g(fake).item() == pytest.approx(0.75)
    assert wgan.gradient_penalty and not hinge.gradient_penalty and not bce.gradient_penalty


# --- pixel conversions ----------------------------------------------------------------------------

def test_uint8_and_unit_range_roundtrip() -> None:
    u8 = torch.arange(256, dtype=torch.uint8).view(1, 16, 16, 1)
    unit = to_unit(u8)
    assert unit.shape == (1, 1, 16, 16)
    assert unit.min().item() == -1.0 and unit.max().item() == 1.0
    assert torch.equal(to_uint8(unit), u8)
    assert to_uint8(torch.tensor([-3.0, 3.0]).view(1, 1, 1, 2)).flatten().tolist() == [0, 255]


# --- DiffAugment ----------------------------------------------------------------------------------

def test_augmentations_keep_shape_and_dtype() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    for name in AUGMENTS:
        y = diff_augment(x, [name])
        assert y.shape == x.shape and y.dtype == x.dtype, name
    assert diff_augment(x, []) is x
    assert diff_augment(x, ["translation", "cutout", "color"]).shape == x.shape


def test_translation_only_shifts_content_with_a_zero_border() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 2, 8, 8) + 0.5  # no zeros in the content: a zero can only be border
    y = translation(x)  # 8 px * 0.125: shifts of -1, 0 or +1 pixel each way
    shifts = set()
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])
    for i in range(len(x)):
        match = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                 if torch.equal(y[i], padded[i, :, 1 + dy : 9 + dy, 1 + dx : 9 + dx])]
        assert match, f"image {i} is not a shifted copy"
        shifts.add(match[0])
    assert len(shifts) > 3  # shifts differ per image


def test_cutout_zeroes_one_square_and_keeps_the_rest() -> None:
    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8) + 0.5
    y = cutout(x)  # ratio 0.5 of 8 px: a square of up to 5 x 5 (|dy|, |dx| <= 2), clipped at edges
    for i in range(len(x)):
        zeroed = y[i, 0] == 0
        kept = ~zeroed
        assert torch.equal(y[i, 0][kept], x[i, 0][kept])
        assert 1 <= zeroed.sum() <= 25


def test_augmentation_is_differentiable() -> None:
    x = (torch.rand(4, 3, 8, 8) * 2 - 1).requires_grad_(True)
    diff_augment(x, ["translation", "cutout", "color"]).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# --- sampling -------------------------------------------------------------------------------------

@dataclass
class Trained:
    cfg: Config
    state: TrainState


@pytest.fixture(scope="module", params=["dcgan", "mlp"])
def trained(request: pytest.FixtureRequest) -> Trained:
    cfg = tiny(arch=request.param)
    return Trained(cfg, fit(IMAGES, LABELS, cfg, n_classes=3, seed=0, device=CPU).state)


def test_sample_returns_uint8_nhwc(trained) -> None:
    labels = np.array([0, 1, 2, 2, 1])
    out = sample(trained.state.ema, labels, np.arange(5), latent_dim=16, device=CPU)
    assert out.shape == (5, 8, 8, 1) and out.dtype == np.uint8
    assert out.std() > 0


def test_each_sample_is_reproducible_from_its_seed_alone(trained) -> None:
    G = trained.state.ema
    labels = np.array([0, 1, 2] * 7)
    seeds = 1000 + np.arange(len(labels))
    whole = sample(G, labels, seeds, latent_dim=16, device=CPU)
    small_batches = sample(G, labels, seeds, latent_dim=16, device=CPU, batch_size=4)
    perm = np.random.default_rng(0).permutation(len(labels))
    shuffled = sample(G, labels[perm], seeds[perm], latent_dim=16, device=CPU)
    alone = np.concatenate([sample(G, labels[i : i + 1], seeds[i : i + 1], latent_dim=16,
                                   device=CPU) for i in range(len(labels))])
    np.testing.assert_array_equal(small_batches, whole)
    np.testing.assert_array_equal(shuffled, whole[perm])
    np.testing.assert_array_equal(alone, whole)
    # different seeds, or labels, give different images
    assert not np.array_equal(whole[0], whole[3])  # same label 0, seeds 1000 vs 1003
    relabelled = sample(G, np.array([1]), seeds[:1], latent_dim=16, device=CPU)
    assert not np.array_equal(relabelled[0], whole[0])


def test_sample_of_nothing_is_an_empty_array(trained) -> None:
    out = sample(trained.state.ema, np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                 latent_dim=16, device=CPU)
    assert out.shape == (0, 8, 8, 1) and out.dtype == np.uint8


def test_sample_accepts_seeds_beyond_32_bits(trained) -> None:
    seeds = np.array([3 * 2**32 + 5, 3 * 2**32 + 6], dtype=np.int64)  # generate: seed * 2**32 + i
    a = sample(trained.state.ema, np.array([0, 0]), seeds, latent_dim=16, device=CPU)
    assert not np.array_equal(a[0], a[1])


# --- checkpoint ----------------------------------------------------------------------------------

def test_a_dcgan_checkpoint_roundtrip(trained, tmp_path: Path) -> None:
    meta = {"method": "dcgan", "arch": trained.cfg.dcgan.arch, "seed": 3, "n_classes": 3,
            "step": 6, "model_kwargs": trained.state.model_kwargs,
            "sampling": {"latent_dim": 16}}
    path = tmp_path / "generator.pt"
    GeneratorSynthesizer(trained.state.ema, meta=meta, device=CPU).save(path)
    loaded = load_synthesizer(path, device=CPU)
    assert not loaded.G.training
    labels, seeds = np.array([0, 1, 2, 0]), np.arange(4)
    np.testing.assert_array_equal(
        loaded.sample(labels, seeds),
        sample(trained.state.ema, labels, seeds, latent_dim=16, device=CPU),
    )
    assert loaded.meta["format"] == FORMAT and loaded.meta["arch"] == trained.cfg.dcgan.arch
    assert loaded.meta["model_kwargs"] == trained.state.model_kwargs
    raw = torch.load(path, weights_only=True)  # no code from the file runs
    assert raw["state_dict"].keys() == trained.state.ema.state_dict().keys()


@pytest.mark.parametrize("kind", ["someone-else/v9", "imbalance-gan/generator/v1"])
def test_loading_a_checkpoint_of_another_kind_is_an_error(tmp_path: Path, kind: str) -> None:
    # generator/v1: the generator-only format before synthesizers; no user has one any more
    save_checkpoint(tmp_path / "c.pt", {"format": kind, "state_dict": {}})
    with pytest.raises(PipelineError, match=f"not a synthesizer checkpoint of this project "
                                            f"\\(format '{kind}'.*rerun `dvc repro train_gan`"):
        load_synthesizer(tmp_path / "c.pt", device=CPU)
    with pytest.raises(PipelineError, match="checkpoint not found"):
        load_synthesizer(tmp_path / "missing.pt", device=CPU)


def test_loading_a_torch_file_that_is_not_a_dict_is_a_pipeline_error(tmp_path: Path) -> None:
    torch.save(torch.zeros(3), tmp_path / "c.pt")
    with pytest.raises(PipelineError):
        load_synthesizer(tmp_path / "c.pt", device=CPU)


# --- per-image latents ----------------------------------------------------------------------------

def test_latents_are_a_pure_function_of_each_seed() -> None:
    from pipeline.synthesizers.latents import latents

    seeds = np.array([0, 1, 2, 7 * 2**32 + 3, -5, 2**62], dtype=np.int64)
    z = latents(seeds, 16, device=CPU)
    assert z.shape == (6, 16) and z.dtype == torch.float32 and torch.isfinite(z).all()
    # row i depends on seeds[i] only: alone, in another order, in another batch
    for i, s in enumerate(seeds):
        assert torch.equal(latents(np.array([s]), 16, device=CPU)[0], z[i])
    assert torch.equal(latents(seeds[::-1].copy(), 16, device=CPU), z.flip(0))
    assert len({tuple(row.tolist()) for row in z}) == 6  # neighbouring seeds differ
    # the first 8 coordinates of a longer vector are the 8-dim vector
    assert torch.equal(latents(seeds, 8, device=CPU), z[:, :8])


def test_latents_are_standard_normal() -> None:
    from pipeline.synthesizers.latents import latents

    z = latents(np.arange(20_000, dtype=np.int64), 8, device=CPU).double()
    assert abs(z.mean().item()) < 0.01
    assert abs(z.std().item() - 1) < 0.01
    corr = torch.corrcoef(z.T)
    assert (corr - torch.eye(8, dtype=torch.float64)).abs().max() < 0.03  # independent coordinates
    assert abs((z.abs() > 1.96).double().mean().item() - 0.05) < 0.005  # normal tails
    seq = torch.corrcoef(torch.stack([z[:-1, 0], z[1:, 0]]))[0, 1]
    assert abs(seq.item()) < 0.03  # consecutive seeds are uncorrelated
