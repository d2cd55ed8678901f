"""Method stylegan: the style-based generator, ADA, training, resume, sampling, checkpoint."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_images
from pipeline.config import Config, StyleGanConfig, TrainGanConfig, parse_config
from pipeline.errors import PipelineError
from pipeline.models.ada import ADA_OPS, P_MAX, AdaptiveAugment, rotate90, translate, xflip
from pipeline.models.stylegan import ResidualDiscriminator, StyleGenerator, minibatch_std
from pipeline.synthesize import quantize
from pipeline.synthesizers.base import load_synthesizer
from pipeline.synthesizers.stylegan import train

CPU = torch.device("cpu")
IMAGES, LABELS = make_images([8, 6, 4])


def tiny(*, steps: int = 6, **stylegan) -> Config:
    return Config(seed=2, train_gan=TrainGanConfig(
        method="stylegan", steps=steps, log_every=2, eval_every=3, checkpoint_every=4,
        device="cpu"), stylegan=StyleGanConfig(**{"width": 8, "r1_every": 2, "latent_dim": 16,
                                                  "batch_size": 8, **stylegan}))


def fake_quality(synthesizer) -> dict[str, float]:
    """A deterministic stand-in for QualityProbe that draws through the contract and uses torch's
    global RNG, as TSTR does."""
    torch.manual_seed(123)
    images = synthesizer.sample(np.array([0, 1, 2, 0]), np.array([4, 5, 6, 7]))
    return {"fid_domain": float(images.mean()) + float(torch.rand(()))}


# --- models ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [8, 28, 32])
def test_generator_and_discriminator_shapes_at_pipeline_sizes(size: int) -> None:
    G = StyleGenerator(latent_dim=16, n_classes=3, image_size=size, channels=3, width=8,
                       mapping_layers=2)
    D = ResidualDiscriminator(n_classes=3, image_size=size, channels=3, width=8)
    z, y = torch.randn(4, 16), torch.tensor([0, 1, 2, 0])
    x = G(z, y)
    assert x.shape == (4, 3, size, size) and D(x, y).shape == (4,)
    ws = G.mapping(z, y).unsqueeze(1).repeat(1, G.num_ws, 1)
    assert torch.equal(G.eval().synthesis(ws), G(z, y))  # eval: constant noise, same image


def test_eval_mode_is_a_function_of_z_and_y_and_training_mode_adds_noise() -> None:
    G = StyleGenerator(latent_dim=16, n_classes=3, image_size=8, channels=1, width=8,
                       mapping_layers=2)
    for m in G.modules():  # noise strengths start at 0; give them a value to see the noise
        if getattr(m, "noise_strength", None) is not None:
            m.noise_strength.data.fill_(0.5)
    z, y = torch.randn(3, 16), torch.tensor([0, 1, 2])
    G.eval()
    assert torch.equal(G(z, y), G(z, y))
    # no batch dependence beyond float rounding (CPU conv kernels block by batch size)
    torch.testing.assert_close(G(z[1:2], y[1:2]), G(z, y)[1:2], rtol=0, atol=1e-4)
    G.train()
    assert not torch.equal(G(z, y), G(z, y))


def test_truncation_zero_gives_each_classes_mean_image() -> None:
    G = StyleGenerator(latent_dim=16, n_classes=3, image_size=8, channels=1, width=8,
                       mapping_layers=2)
    G.mapping(torch.randn(64, 16), torch.arange(64) % 3)  # training mode: class means move
    assert (G.mapping.w_avg.abs().sum(dim=1) > 0).all()
    G.eval()
    z, y = torch.randn(6, 16), torch.tensor([0, 0, 0, 1, 1, 1])
    x = G(z, y, psi=0.0)
    assert torch.allclose(x[0], x[2]) and torch.allclose(x[3], x[5])
    assert not torch.allclose(x[0], x[3])
    assert not torch.allclose(G(z, y)[0], G(z, y)[1])  # psi = 1: the latents matter


def test_minibatch_std_appends_the_group_standard_deviation() -> None:
    x = torch.zeros(4, 2, 3, 3)
    x[1] = 2.0  # group of 4: values 0, 2, 0, 0 -> std sqrt(0.75) everywhere
    out = minibatch_std(x)
    assert out.shape == (4, 3, 3, 3)
    assert torch.allclose(out[:, 2], torch.full((4, 3, 3), 0.75 ** 0.5), atol=1e-4)
    assert torch.equal(out[:, :2], x)


# --- ADA ------------------------------------------------------------------------------------------

def test_augmentation_at_p_zero_is_the_identity_and_at_p_near_one_changes_every_image() -> None:
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    assert torch.equal(AdaptiveAugment(list(ADA_OPS), p=0.0)(x), x)
    for name in ADA_OPS:
        out = AdaptiveAugment([name], p=P_MAX)(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        changed = (out - x).flatten(1).abs().amax(dim=1) > 1e-6
        assert changed.float().mean() > 0.5, name


def test_geometric_ops_move_pixels_without_inventing_them() -> None:
    x = torch.arange(2 * 64, dtype=torch.float32).view(2, 1, 8, 8)
    one = torch.tensor(P_MAX)
    torch.manual_seed(0)
    assert torch.equal(xflip(x, torch.tensor(1.0)), x.flip(3))
    rotated = rotate90(x, one)
    for a, b in zip(rotated, x):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)
        assert not torch.equal(a, b)
    shifted = translate(x, one)  # integer shift with reflection: values stay from the image
    assert set(shifted.unique().tolist()) <= set(x.unique().tolist())


def test_the_augmentation_pipeline_is_differentiable() -> None:
    x = (torch.rand(4, 1, 8, 8) * 2 - 1).requires_grad_(True)
    AdaptiveAugment(list(ADA_OPS), p=0.5)(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_p_moves_by_the_paper_rule_on_worked_numbers() -> None:
    aug = AdaptiveAugment(["xflip"], p=0.1)
    aug.observe(torch.tensor([1.0, 2.0, 3.0, -1.0]))  # r_t = (3 - 1) / 4 = 0.5 < 0.6: p falls
    assert float(aug.adjust(target=0.6, images=256, kimg=20)) == 0.5
    assert float(aug.p) == pytest.approx(0.1 - 256 / 20_000)
    aug.observe(torch.tensor([1.0, 1.0]))  # r_t = 1 > 0.6: p rises; the sums were reset
    aug.adjust(target=0.6, images=256, kimg=20)
    assert float(aug.p) == pytest.approx(0.1)
    aug.observe(torch.tensor([1.0]))
    aug.adjust(target=0.6, images=10**6, kimg=1)
    assert float(aug.p) == pytest.approx(P_MAX)  # clamped below 1
    aug.observe(torch.tensor([-1.0]))
    aug.adjust(target=0.6, images=10**6, kimg=1)
    assert float(aug.p) == 0.0


def test_ada_p_rises_from_zero_when_d_overfits_a_tiny_set() -> None:
    images, labels = make_images([3, 3])  # 6 images: D soon calls every real image real
    # every 4 steps p moves by 8 images x 4 steps / 320 images = 0.1
    cfg = tiny(steps=40, ada_interval=4, ada_kimg=0.32, lr=0.01)
    rows = train(images, labels, cfg, n_classes=2, device=CPU).history
    p = np.array([r["ada_p"] for r in rows])
    assert p[0] == 0.0 and p.max() >= 0.2 and p[-1] > 0  # rises from 0 and stays up
    steps = np.round(np.diff(p) / 0.1, 4)
    assert set(steps.tolist()) <= {-1.0, 0.0, 1.0}  # one rule-sized move per adjustment at most
    assert max(r["ada_rt"] for r in rows) > 0.6  # the overfitting that drove it up
    frozen = train(images, labels, tiny(steps=40, ada=False, lr=0.01), n_classes=2,
                   device=CPU).history
    assert {r["ada_p"] for r in frozen} == {0.0}


# --- training, sampling, resume -------------------------------------------------------------------

def test_training_logs_losses_and_ada_and_keeps_the_best_generator() -> None:
    logged: list[tuple[dict, int]] = []
    trained = train(IMAGES, LABELS, tiny(), n_classes=3, device=CPU, quality=fake_quality,
                    log=lambda m, s: logged.append((m, s)))
    assert [r["step"] for r in trained.history] == [2, 4, 6]
    assert set(trained.history[0]) == {"step", "d_loss", "g_loss", "d_real", "d_fake", "ada_rt",
                                       "ada_p"}
    assert all(np.isfinite(list(r.values())).all() for r in trained.history)
    assert [s for _, s in logged] == [2, 4, 6]
    assert [r["step"] for r in trained.quality] == [3, 6]
    best = min(trained.quality, key=lambda r: r["fid_domain"])
    assert trained.best == best and trained.synthesizer.meta["best_step"] == best["step"]
    assert trained.synthesizer.meta["ada_p"] == trained.history[-1]["ada_p"]


def test_samples_are_uint8_and_each_reproducible_from_its_seed(tmp_path: Path) -> None:
    synth = train(IMAGES, LABELS, tiny(truncation_psi=0.7), n_classes=3, device=CPU).synthesizer
    labels, seeds = np.array([0, 1, 2, 2, 1]), np.array([10, 11, 12, 13, 2**40])
    images = synth.sample(labels, seeds)
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8
    alone = np.concatenate([synth.sample(labels[i:i + 1], seeds[i:i + 1]) for i in range(5)])
    np.testing.assert_array_equal(alone, images)
    assert not np.array_equal(images[2], images[3])  # different seeds, different images
    synth.save(tmp_path / "g.pt")
    raw = torch.load(tmp_path / "g.pt", weights_only=True)
    assert raw["method"] == "stylegan" and raw["sampling"]["truncation_psi"] == 0.7
    assert raw["config"]["stylegan"]["width"] == 8 and raw["model_kwargs"]["mapping_layers"] == 2
    loaded = load_synthesizer(tmp_path / "g.pt", device=CPU)
    assert loaded.method == "stylegan" and loaded.n_classes == 3
    np.testing.assert_array_equal(loaded.sample(labels, seeds), images)


class Interrupt(Exception):
    pass


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path: Path) -> None:
    # ADA adjusts every 3 steps and R1 runs every 2: the kill at step 10 (state at step 8) falls
    # inside an ADA interval, so the r_t sums must survive too.
    cfg = tiny(steps=12, ada_interval=3, ada_kimg=0.1, ada_p=0.3)  # augmenting from step 1
    kw = {"n_classes": 3, "device": CPU, "quality": fake_quality, "resume_key": "k"}
    full = train(IMAGES, LABELS, cfg, checkpoint=tmp_path / "full.pt", **kw)

    def killer(metrics, step):
        if step == 10:
            raise Interrupt

    state = tmp_path / "state.pt"
    with pytest.raises(Interrupt):
        train(IMAGES, LABELS, cfg, checkpoint=state, log=killer, **kw)
    assert torch.load(state, weights_only=True)["step"] == 8
    messages: list[str] = []
    resumed = train(IMAGES, LABELS, cfg, checkpoint=state, notify=messages.append, **kw)
    assert messages == [f"resuming from step 8 ({state})"]
    a, b = (torch.load(p, weights_only=True) for p in (tmp_path / "full.pt", state))
    for part in ("G", "D", "ema"):
        sa, sb = (x["ema"] if part == "ema" else x["models"][part] for x in (a, b))
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f"{part}.{name}"
    assert len({r["ada_p"] for r in full.history}) > 1  # p really moved, and was restored
    for opt in ("G", "D"):
        for i, st in a["optimizers"][opt]["state"].items():
            assert all(torch.equal(v, b["optimizers"][opt]["state"][i][k]) for k, v in st.items())
    assert resumed.history == full.history and resumed.quality == full.quality
    assert resumed.best == full.best
    labels, seeds = np.arange(3), np.arange(3)
    np.testing.assert_array_equal(resumed.synthesizer.sample(labels, seeds),
                                  full.synthesizer.sample(labels, seeds))


def test_stylegan_params_are_validated_naming_the_key() -> None:
    with pytest.raises(PipelineError, match=r"stylegan.ada_target: must be in \(0, 1\)"):
        parse_config({"stylegan": {"ada_target": 1.5}})
    with pytest.raises(PipelineError, match=r"stylegan.augment\[0\]: 'cutout' .*xflip"):
        parse_config({"stylegan": {"augment": ["cutout"]}})
    with pytest.raises(PipelineError, match=r"stylegan.mixing: unknown key"):
        parse_config({"stylegan": {"mixing": 0.5}})


# --- through the stages ---------------------------------------------------------------------------

def test_train_gan_and_generate_stages_run_the_stylegan_method(
    tracking_env: str, project_copy: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mlflow
    import pandas as pd

    from conftest import write_extractor, write_params
    from pipeline.artifacts import load_split, save_split
    from test_stages_cli import stage_cmd

    def run_stage(stage: str) -> None:  # as `python -m stages.<stage>` with dvc.yaml's arguments
        monkeypatch.chdir(project_copy)
        monkeypatch.setattr(sys, "argv", [f"stages/{stage}.py", *stage_cmd(stage)[3:]])
        runpy.run_path(str(project_copy / "stages" / f"{stage}.py"), run_name="__main__")

    write_params(project_copy / "params.yaml",
                 train_gan={"method": "stylegan", "steps": 6, "log_every": 2, "eval_every": 3,
                            "checkpoint_every": 3, "device": "cpu"},
                 stylegan={"width": 8, "r1_every": 2, "ada_interval": 1, "ada_kimg": 0.05,
                           "batch_size": 8, "latent_dim": 16},
                 features={"steps": 10, "width": 4, "batch_size": 8, "device": "cpu"},
                 generate={"device": "cpu", "candidates_per_image": 1})
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        save_split(project_copy / f"data/prepared/{split}.npz", *make_images([8, 4], seed=seed))
    (project_copy / "models").mkdir()
    write_extractor(project_copy / "models/features.pt", *make_images([8, 4]))
    run_stage("train_gan")
    out = capsys.readouterr().out
    assert "train_gan: stylegan, 6 steps" in out and "does not read" not in out
    metrics = json.loads((project_copy / "metrics/train_gan.json").read_text())
    assert metrics["method"] == "stylegan" and metrics["steps"] == 6
    losses = pd.read_csv(project_copy / "plots/train_gan/losses.csv")
    assert losses["step"].tolist() == [2, 4, 6]
    assert metrics["final_ada_p"] == pytest.approx(losses["ada_p"].iloc[-1])
    assert (losses["ada_p"] >= 0).all() and (losses["ada_p"] < 1).all()
    store = mlflow.MlflowClient()
    exp = store.get_experiment_by_name(tracking_env)
    (run,) = store.search_runs([exp.experiment_id], "tags.stage = 'train_gan'")
    history = store.get_metric_history(run.info.run_id, "ada_p")
    assert [m.step for m in history if m.step in (2, 4)] == [2, 4]
    assert run.data.params["train_gan.method"] == "stylegan"
    assert run.data.params["stylegan.width"] == "8"
    run_stage("generate")
    images, labels = load_split(project_copy / "data/synthetic/synthetic.npz")
    manifest = pd.read_csv(project_copy / "data/synthetic/manifest.csv")
    assert np.bincount(labels).tolist() == [0, 4]  # class 1 topped up to the majority's 8
    synth = load_synthesizer(project_copy / "models/generator.pt", device=CPU)
    assert synth.method == "stylegan"
    levels = json.loads((project_copy / "metrics/generate.json").read_text())["grey_levels"]
    np.testing.assert_array_equal(quantize(
        synth.sample(manifest["label"].to_numpy().copy(), manifest["seed"].to_numpy().copy()),
        levels), images)


def test_the_report_draws_adas_p_next_to_the_losses() -> None:
    import pandas as pd

    from pipeline.report import plot_losses

    rows = pd.DataFrame({"step": [2, 4, 6], "d_loss": [1.0, 0.9, 0.8], "g_loss": [0.7, 0.8, 0.9],
                         "d_real": [0.1, 0.2, 0.3], "d_fake": [0.0, -0.1, -0.2],
                         "ada_rt": [0.5, 0.7, 0.8], "ada_p": [0.0, 0.05, 0.1]})
    axes = plot_losses(rows).axes
    assert len(axes) == 3 and "ADA" in axes[2].get_title()
    lines = {line.get_label(): line.get_ydata().tolist() for line in axes[2].get_lines()}
    assert lines == {"ada_p": [0.0, 0.05, 0.1], "ada_rt": [0.5, 0.7, 0.8]}
    assert len(plot_losses(rows.drop(columns=["ada_p", "ada_rt"])).axes) == 2  # dcgan: no ADA panel
