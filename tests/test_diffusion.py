"""Method diffusion: the U-Net, the cosine schedule, DDIM, the sampling contract, training through
the shared loop (resume), the checkpoint, memorisation, and the stages."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_images
from pipeline.config import Config, DiffusionConfig, TrainGanConfig, parse_config
from pipeline.errors import PipelineError
from pipeline.metrics import memorization_audit
from pipeline.models.diffusion import UNet
from pipeline.synthesizers.base import load_synthesizer
from pipeline.synthesizers.diffusion import CHUNK, alpha_bars, ddim, train

CPU = torch.device("cpu")
IMAGES, LABELS = make_images([8, 6, 4])


def tiny(*, steps: int = 6, **diffusion) -> Config:
    return Config(seed=2, train_gan=TrainGanConfig(
        method="diffusion", steps=steps, log_every=2, eval_every=3, checkpoint_every=4,
        device="cpu"), diffusion=DiffusionConfig(**{"width": 8, "batch_size": 8,
                                                    "sampling_steps": 4, **diffusion}))


def fake_quality(synthesizer) -> dict[str, float]:
    """A deterministic stand-in for QualityProbe that draws through the contract and uses torch's
    global RNG, as TSTR does."""
    torch.manual_seed(123)
    images = synthesizer.sample(np.array([0, 1, 2, 0]), np.array([4, 5, 6, 7]))
    return {"fid_domain": float(images.mean()) / 255 + float(torch.rand(()))}


# --- the U-Net ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "levels"), [(7, 1), (8, 2), (28, 3), (32, 4)])
def test_unet_shapes_and_levels_at_pipeline_sizes(size: int, levels: int) -> None:
    net = UNet(n_classes=3, image_size=size, channels=3, width=8)
    x, t, y = torch.randn(2, 3, size, size), torch.tensor([0, 999]), torch.tensor([1, 3])
    assert net(x, t, y).shape == (2, 3, size, size)  # label 3: the null label
    assert len(net.down) == levels
    assert net.attn.qkv.in_channels == 8 * min(2 ** (levels - 1), 4)  # attention: coarsest only
    # the output layer starts at zero: the first prediction is "no noise"
    assert torch.count_nonzero(net(x, t, y)) == 0


def test_each_images_prediction_ignores_the_rest_of_its_batch() -> None:
    torch.manual_seed(0)
    net = UNet(n_classes=3, image_size=8, channels=1, width=8)
    torch.nn.init.normal_(net.out[-1].weight)
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([5, 50, 500, 900]), torch.tensor([0, 1, 2, 0])
    whole = net(x, t, y)
    # up to float rounding (CPU kernels block by batch size)
    torch.testing.assert_close(net(x[2:3], t[2:3], y[2:3]), whole[2:3], rtol=1e-5, atol=1e-4)
    assert not torch.allclose(net(x, t, torch.tensor([1, 1, 2, 0]))[0], whole[0])  # label counts


# --- schedule and sampler -------------------------------------------------------------------------

def test_cosine_schedule_worked_values() -> None:
    ab = alpha_bars(1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 900):  # no beta reaches the 0.999 clip before the end
        assert ab[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert (ab[1:] < ab[:-1]).all() and ab[0] > 0.9999 and ab[-1] < 1e-4


def test_ddim_with_an_exact_noise_predictor_lands_on_the_data_point() -> None:
    """If the data were one image per label, x*_y, the true noise of x_t is
    (x_t - sqrt(ab_t) x*_y) / sqrt(1 - ab_t); DDIM must then return x*_y from any start, and
    guidance g must return x*_null + g (x*_y - x*_null) (clipped to [-1, 1])."""
    ab = alpha_bars(100)
    target = {0: torch.full((1, 4, 4), 0.5), 1: torch.full((1, 4, 4), -0.25),
              2: torch.full((1, 4, 4), 0.1)}  # 2: the null label

    class Oracle(torch.nn.Module):
        def forward(self, x, t, y):
            star = torch.stack([target[int(c)] for c in y])
            a = ab[t].float().view(-1, 1, 1, 1)
            return (x - a.sqrt() * star) / (1 - a).sqrt()

    x = torch.randn(3, 1, 4, 4)
    y = torch.tensor([0, 1, 0])
    out = ddim(Oracle(), x, y, null=2, timesteps=100, steps=5, guidance=1.0)
    torch.testing.assert_close(out, torch.stack([target[0], target[1], target[0]]),
                               rtol=0, atol=1e-5)
    half = ddim(Oracle(), x, y, null=2, timesteps=100, steps=5, guidance=0.5)
    torch.testing.assert_close(half[1], (target[2] + target[1]) / 2, rtol=0, atol=1e-5)


# --- training, sampling, checkpoint ---------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    return train(IMAGES, LABELS, tiny(), n_classes=3, device=CPU, quality=fake_quality)


def test_training_logs_the_loss_column_through_the_shared_loop(trained) -> None:
    assert [r["step"] for r in trained.history] == [2, 4, 6]
    assert all(set(r) == {"step", "loss"} and 0 < r["loss"] < 10 for r in trained.history)
    assert trained.losses == ("loss",)
    assert [r["step"] for r in trained.quality] == [3, 6] and trained.steps == 6
    assert trained.synthesizer.meta["best_step"] == trained.best["step"]


def test_each_image_is_a_function_of_its_label_and_seed_alone(trained) -> None:
    synth = trained.synthesizer
    labels = np.array([0, 1, 2] * 24)  # 72 images: more than one padded chunk
    seeds = 1000 + np.arange(len(labels))
    assert len(labels) > CHUNK
    whole = synth.sample(labels, seeds)
    assert whole.shape == (72, 8, 8, 1) and whole.dtype == np.uint8 and whole.std() > 0
    perm = np.random.default_rng(0).permutation(len(labels))
    np.testing.assert_array_equal(synth.sample(labels[perm], seeds[perm]), whole[perm])
    for i in (0, 5, 70):
        np.testing.assert_array_equal(synth.sample(labels[i : i + 1], seeds[i : i + 1]),
                                      whole[i : i + 1])
    assert not np.array_equal(whole[0], whole[3])  # label 0, another seed


def test_a_saved_diffusion_synthesizer_loads_with_weights_only_and_samples_the_same(
    trained, tmp_path: Path
) -> None:
    trained.synthesizer.save(tmp_path / "g.pt")
    raw = torch.load(tmp_path / "g.pt", weights_only=True)
    assert raw["method"] == "diffusion" and raw["sampling"] == {
        "timesteps": 1000, "sampling_steps": 4, "guidance": 1.0}
    loaded = load_synthesizer(tmp_path / "g.pt", device=CPU)
    labels, seeds = np.array([2, 0, 1]), np.array([7, 8, 2**40])
    np.testing.assert_array_equal(loaded.sample(labels, seeds),
                                  trained.synthesizer.sample(labels, seeds))
    assert not loaded.net.training


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = tiny(steps=10, guidance=1.5)
    kw = dict(n_classes=3, device=CPU, quality=fake_quality, resume_key="k")
    full = train(IMAGES, LABELS, cfg, checkpoint=tmp_path / "full.pt", **kw)
    state = tmp_path / "state.pt"

    class Interrupt(Exception):
        pass

    def killer(metrics, step):
        if step == 10:
            raise Interrupt

    with pytest.raises(Interrupt):  # killed at step 10: the last state on disk is step 8
        train(IMAGES, LABELS, cfg, checkpoint=state, log=killer, **kw)
    assert torch.load(state, weights_only=True)["step"] == 8
    messages: list[str] = []
    resumed = train(IMAGES, LABELS, cfg, checkpoint=state, notify=messages.append, **kw)
    assert messages == [f"resuming from step 8 ({state})"]
    a, b = (torch.load(p, weights_only=True) for p in (tmp_path / "full.pt", state))
    for sa, sb in ((a["models"]["net"], b["models"]["net"]), (a["ema"], b["ema"])):
        assert all(torch.equal(v, sb[k]) for k, v in sa.items())
    for i, st in a["optimizers"]["net"]["state"].items():
        assert all(torch.equal(v, b["optimizers"]["net"]["state"][i][k]) for k, v in st.items())
    assert resumed.history == full.history and resumed.quality == full.quality
    labels, seeds = np.arange(3), np.arange(3)
    np.testing.assert_array_equal(resumed.synthesizer.sample(labels, seeds),
                                  full.synthesizer.sample(labels, seeds))


def test_bf16_autocast_trains_on_cpu() -> None:
    bf16 = train(IMAGES, LABELS, tiny(steps=2, precision="bf16"), n_classes=3, device=CPU)
    fp32 = train(IMAGES, LABELS, tiny(steps=2), n_classes=3, device=CPU)
    assert all(math.isfinite(r["loss"]) for r in bf16.history)
    assert bf16.history != fp32.history


def test_a_model_overfit_on_a_handful_of_images_is_flagged_by_the_memorization_audit() -> None:
    """Four training images, trained far past what they support: DDIM then redraws them (or close
    to them). The audit (pixel features here; generate uses the extractor's) flags at least 40%
    of the samples (55% when written), while fresh images of the same kind are flagged at about
    its 1% rate."""
    train_x, train_y = make_images([2, 2], seed=0)
    test_x, _ = make_images([30, 30], seed=1)
    cfg = Config(seed=0, train_gan=TrainGanConfig(method="diffusion", steps=500, log_every=500,
                                                  eval_every=0, ema_decay=0.9, device="cpu"),
                 diffusion=DiffusionConfig(width=16, batch_size=32, lr=3e-3, sampling_steps=10,
                                           label_dropout=0.0))
    synth = train(train_x, train_y, cfg, n_classes=2, device=CPU).synthesizer
    labels = np.repeat([0, 1], 10)
    fakes = synth.sample(labels, np.arange(20))
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64) / 255  # noqa: E731
    audit = memorization_audit(flat(fakes), flat(train_x), flat(test_x))
    assert audit.memorization_rate >= 0.4
    assert (train_y[audit.nearest] == labels).all()  # each copies an image of its own class
    fresh = memorization_audit(flat(make_images([10, 10], seed=2)[0]), flat(train_x),
                               flat(test_x))
    assert fresh.memorization_rate <= 0.1


# --- params ---------------------------------------------------------------------------------------

def test_diffusion_params_are_validated_naming_the_key() -> None:
    with pytest.raises(PipelineError, match=r"diffusion.guidance: needs diffusion.label_dropout"):
        parse_config({"diffusion": {"guidance": 2.0, "label_dropout": 0.0}})
    with pytest.raises(PipelineError, match=r"diffusion.sampling_steps: must be <= "):
        parse_config({"diffusion": {"sampling_steps": 50, "timesteps": 20}})
    with pytest.raises(PipelineError, match=r"diffusion.eta: unknown key"):
        parse_config({"diffusion": {"eta": 0.0}})
    assert parse_config({"train_gan": {"method": "diffusion"}}).diffusion == DiffusionConfig()


# --- through the stages ---------------------------------------------------------------------------

def test_train_gan_and_generate_stages_run_the_diffusion_method(
    tracking_env: str, project_copy: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import pandas as pd

    from conftest import write_extractor, write_params
    from pipeline.artifacts import load_split, save_split
    from test_stages_cli import stage_cmd

    def run_stage(stage: str) -> None:  # as `python -m stages.<stage>` with dvc.yaml's arguments
        monkeypatch.chdir(project_copy)
        monkeypatch.setattr(sys, "argv", [f"stages/{stage}.py", *stage_cmd(stage)[3:]])
        runpy.run_path(str(project_copy / "stages" / f"{stage}.py"), run_name="__main__")

    write_params(project_copy / "params.yaml",
                 train_gan={"method": "diffusion", "steps": 6, "log_every": 2, "eval_every": 3,
                            "checkpoint_every": 3, "device": "cpu"},
                 diffusion={"width": 8, "batch_size": 8, "sampling_steps": 3},
                 features={"steps": 10, "width": 4, "batch_size": 8, "device": "cpu"},
                 generate={"device": "cpu", "candidates_per_image": 2})
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        save_split(project_copy / f"data/prepared/{split}.npz", *make_images([8, 4], seed=seed))
    (project_copy / "models").mkdir()
    write_extractor(project_copy / "models/features.pt", *make_images([8, 4]))
    run_stage("train_gan")
    assert "train_gan: diffusion, 6 steps" in capsys.readouterr().out
    metrics = json.loads((project_copy / "metrics/train_gan.json").read_text())
    assert metrics["method"] == "diffusion" and metrics["steps"] == 6
    losses = pd.read_csv(project_copy / "plots/train_gan/losses.csv")
    assert list(losses.columns) == ["step", "loss"] and losses["step"].tolist() == [2, 4, 6]
    assert metrics["final_loss"] == pytest.approx(losses["loss"].iloc[-1])
    run_stage("generate")
    images, labels = load_split(project_copy / "data/synthetic/synthetic.npz")
    manifest = pd.read_csv(project_copy / "data/synthetic/manifest.csv")
    assert np.bincount(labels).tolist() == [0, 4]  # class 1 topped up to the majority's 8
    generated = json.loads((project_copy / "metrics/generate.json").read_text())
    assert 0.0 <= generated["memorization_rate"] <= 1.0
    synth = load_synthesizer(project_copy / "models/generator.pt", device=CPU)
    np.testing.assert_array_equal(
        synth.sample(manifest["label"].to_numpy().copy(), manifest["seed"].to_numpy().copy()),
        images)
