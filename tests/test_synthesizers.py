"""pipeline/synthesizers: the registry, the contract, and the dcgan method's equivalence to fit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_images
from pipeline.artifacts import save_checkpoint
from pipeline.config import (
    Config, CycleGanConfig, DcganConfig, DiffusionConfig, StyleGanConfig, TrainGanConfig,
    parse_config,
)
from pipeline.errors import PipelineError
from pipeline.synthesizers.base import FORMAT, load_synthesizer, sample
from pipeline.synthesizers.dcgan import fit
from pipeline.synthesizers.registry import METHODS, method_module

CPU = torch.device("cpu")
IMAGES, LABELS = make_images([8, 6, 4])


def tiny_config(**dcgan) -> Config:
    return Config(seed=3, train_gan=TrainGanConfig(steps=6, log_every=2, eval_every=3,
                                                   device="cpu"),
                  dcgan=DcganConfig(**{"width": 8, "latent_dim": 16, "batch_size": 8, **dcgan}))


def fake_quality(synthesizer) -> dict[str, float]:
    """A stand-in probe: fid_domain = mean pixel value of a fixed draw (through the contract)."""
    images = synthesizer.sample(np.array([0, 1, 2]), np.array([5, 6, 7]))
    return {"fid_domain": float(images.mean())}


def test_the_registry_names_every_method_and_config_rejects_others() -> None:
    assert "dcgan" in METHODS
    for name in METHODS:
        module = method_module(name)
        assert callable(module.train) and callable(module.load)
        assert "train_gan" in module.SECTIONS or name != "dcgan"
    with pytest.raises(PipelineError, match=rf"train_gan.method: 'gan2' .*{', '.join(METHODS)}$"):
        parse_config({"train_gan": {"method": "gan2"}})


def test_every_method_reads_the_loop_settings_and_its_own_section() -> None:
    for name in METHODS:  # train_gan holds only what the shared loop reads
        assert method_module(name).SECTIONS == ("train_gan", name), name
        assert name in {f.name for f in dataclasses.fields(Config)}, name
    assert {f.name for f in dataclasses.fields(TrainGanConfig)} == {
        "method", "steps", "ema_decay", "eval_every", "checkpoint_every", "log_every", "device"}


@pytest.mark.parametrize("method", list(METHODS))
def test_the_synthesizer_the_quality_hook_gets_saves_and_loads(method: str,
                                                                tmp_path: Path) -> None:
    # e.g. a time budget that stops training from the hook keeps the synthesizer it was given
    cfg = Config(seed=1, train_gan=TrainGanConfig(
        method=method, steps=2, log_every=1, eval_every=1, device="cpu"),
        dcgan=DcganConfig(width=8, latent_dim=8, batch_size=4),
        stylegan=StyleGanConfig(width=4, latent_dim=8, batch_size=4),
        cyclegan=CycleGanConfig(width=4, n_res=1, batch_size=4),
        diffusion=DiffusionConfig(width=8, batch_size=4, sampling_steps=2))
    seen = []

    def stop(synth):  # training never finishes: nothing is added to the synthesizer afterwards
        seen.append(synth)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        method_module(method).train(IMAGES, LABELS, cfg, n_classes=3, device=CPU, quality=stop)
    labels, seeds = np.array([0, 1, 2]), np.array([3, 4, 5])
    seen[0].save(tmp_path / "hook.pt")
    loaded = load_synthesizer(tmp_path / "hook.pt", device=CPU)
    assert loaded.method == method
    np.testing.assert_array_equal(loaded.sample(labels, seeds), seen[0].sample(labels, seeds))


@pytest.mark.parametrize("arch, loss", [("dcgan", "wgan-gp"), ("mlp", "bce")])
def test_dcgan_method_is_bit_identical_to_the_training_loop_it_wraps(arch: str, loss: str) -> None:
    cfg = tiny_config(arch=arch, loss=loss)
    trained = method_module("dcgan").train(IMAGES, LABELS, cfg, n_classes=3, device=CPU,
                                           quality=fake_quality)
    # the direct path: fit + keep the best EMA generator + sample(G, ...) by latent_dim
    direct = fit(IMAGES, LABELS, cfg, n_classes=3, seed=cfg.seed, device=CPU,
                 quality=lambda G: {"fid_domain": float(sample(
                     G, np.array([0, 1, 2]), np.array([5, 6, 7]), latent_dim=16,
                     device=CPU).mean())})
    direct.state.ema.load_state_dict(direct.best_state)
    ours = trained.synthesizer.G.state_dict()
    for name, tensor in direct.state.ema.state_dict().items():
        assert torch.equal(ours[name], tensor), name
    assert trained.history == direct.history and trained.quality == direct.quality
    assert trained.best == direct.best and trained.steps == 6
    labels, seeds = np.array([2, 0, 1, 1]), np.array([0, 1, 2, 2**40])
    expected = sample(direct.state.ema, labels, seeds, latent_dim=16, device=CPU)
    np.testing.assert_array_equal(trained.synthesizer.sample(labels, seeds), expected)


def test_a_saved_synthesizer_loads_with_weights_only_and_samples_the_same(tmp_path: Path) -> None:
    trained = method_module("dcgan").train(IMAGES, LABELS, tiny_config(), n_classes=3,
                                           device=CPU, quality=fake_quality)
    path = tmp_path / "generator.pt"
    trained.synthesizer.save(path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["method"] == "dcgan" and raw["n_classes"] == 3
    assert raw["config"]["dcgan"]["width"] == 8 and raw["sampling"] == {"latent_dim": 16}
    assert raw["config"]["train_gan"]["steps"] == 6
    assert raw["best_step"] == trained.best["step"] and raw["step"] == 6
    loaded = load_synthesizer(path, device=CPU)
    assert loaded.method == "dcgan" and loaded.n_classes == 3 and not loaded.G.training
    labels, seeds = np.repeat(np.arange(3), 4), np.arange(12) + 100
    first = loaded.sample(labels, seeds)
    assert first.shape == (12, 8, 8, 1) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, trained.synthesizer.sample(labels, seeds))
    # each image from its own seed: drawing one alone gives the same pixels
    np.testing.assert_array_equal(loaded.sample(labels[5:6], seeds[5:6]), first[5:6])


def test_other_files_are_refused_with_the_command_that_fixes_them(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "x.pt", {"format": "something/else"})
    with pytest.raises(PipelineError, match=r"not a synthesizer checkpoint.*dvc repro train_gan"):
        load_synthesizer(tmp_path / "x.pt", device=CPU)
    save_checkpoint(tmp_path / "y.pt", {"format": FORMAT, "method": "gone"})
    with pytest.raises(PipelineError, match=rf"method 'gone'.*known: {', '.join(METHODS)}\)"):
        load_synthesizer(tmp_path / "y.pt", device=CPU)


def test_the_default_params_pick_the_dcgan_method() -> None:
    cfg = parse_config({})
    assert cfg.train_gan.method == "dcgan"
    assert dataclasses.asdict(cfg.stylegan)["ada_target"] == 0.6
