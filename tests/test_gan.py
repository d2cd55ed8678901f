"""pipeline/gan: the training loop, losses, DiffAugment, sampling and the generator checkpoint."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_images
from pipeline.artifacts import save_checkpoint
from pipeline.config import TrainGanConfig
from pipeline.errors import PipelineError
from pipeline.gan.augment import AUGMENTS, cutout, diff_augment, translation
from pipeline.gan.checkpoint import FORMAT, TrainingStateFile, load_generator, save_generator
from pipeline.gan.loop import Schedule, Update, train_loop
from pipeline.gan.losses import LOSSES, GanLoss
from pipeline.gan.sampling import sample
from pipeline.gan.state import GanState
from pipeline.gan.steps import d_step, g_step
from pipeline.gan.train import fit
from pipeline.pixels import to_uint8, to_unit

CPU = torch.device("cpu")
IMAGES, LABELS = make_images([8, 6, 4])


def tiny(**overrides) -> TrainGanConfig:
    base = dict(width=8, latent_dim=16, steps=6, batch_size=8, log_every=2)
    return TrainGanConfig(**{**base, **overrides})


def history_logger() -> tuple[list[tuple[dict[str, float], int]], object]:
    rows: list[tuple[dict[str, float], int]] = []
    return rows, (lambda metrics, step: rows.append((dict(metrics), step)))


# --- fit ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("augment", [[], ["translation", "cutout", "color"]])
@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
@pytest.mark.parametrize("loss", ["bce", "hinge", "wgan-gp"])
def test_fit_runs_every_loss_arch_and_augmentation(
    loss: str, arch: str, augment: list[str]
) -> None:
    rows, log = history_logger()
    result = fit(IMAGES, LABELS, tiny(loss=loss, arch=arch, diffaugment=augment), n_classes=3,
                 seed=0, device=CPU, log=log)
    assert [r["step"] for r in result.history] == [2, 4, 6]
    for row in result.history:
        assert set(row) == {"step", "d_loss", "g_loss", "d_real", "d_fake"}
        assert all(math.isfinite(v) for v in row.values())
    # the log callable got exactly the rows, without the step column
    assert rows == [({k: v for k, v in r.items() if k != "step"}, r["step"])
                    for r in result.history]
    state = result.state
    assert state.step == 6
    assert state.model_kwargs == dict(latent_dim=16, n_classes=3, image_size=8, channels=1, width=8)
    # the EMA generator is an average of past weights, not the current ones
    pairs = zip(state.G_ema.parameters(), state.G.parameters())
    assert any(not torch.equal(a, b) for a, b in pairs)
    assert not any(p.requires_grad for p in state.G_ema.parameters())
    if loss == "bce":
        assert all(r["d_loss"] > 0 and r["g_loss"] > 0 for r in result.history)  # softplus sums


def test_fit_on_rgb_images_with_color_augmentation() -> None:
    images, labels = make_images([5, 5], channels=3, size=16)
    result = fit(images, labels, tiny(diffaugment=["color"], steps=2), n_classes=2, seed=0,
                 device=CPU)
    assert result.state.model_kwargs["channels"] == 3
    assert result.state.G_ema(torch.randn(2, 16), torch.tensor([0, 1])).shape == (2, 3, 16, 16)


def test_a_last_partial_interval_is_logged_too() -> None:
    result = fit(IMAGES, LABELS, tiny(steps=5), n_classes=3, seed=0, device=CPU)
    assert [r["step"] for r in result.history] == [2, 4, 5]


def test_logged_values_are_means_over_each_interval() -> None:
    step = {"n": 0}

    def fake_d_step(state, real, y, z, *, loss, augment, **penalties):
        step["n"] += 1
        n = float(step["n"])
        return torch.tensor(n), torch.tensor(10 * n), torch.tensor(-n)

    def fake_g_step(state, y, z, *, loss, augment):
        return torch.tensor(100.0 * step["n"])

    result = fit(IMAGES, LABELS, tiny(steps=5, log_every=2), n_classes=3, seed=0, device=CPU,
                 d_step=fake_d_step, g_step=fake_g_step)
    # steps 1-2, 3-4, then 5 alone
    assert result.history == [
        {"step": 2, "d_loss": 1.5, "g_loss": 150.0, "d_real": 15.0, "d_fake": -1.5},
        {"step": 4, "d_loss": 3.5, "g_loss": 350.0, "d_real": 35.0, "d_fake": -3.5},
        {"step": 5, "d_loss": 5.0, "g_loss": 500.0, "d_real": 50.0, "d_fake": -5.0},
    ]


class StepValues(Update):
    """A fake method for the shared loop: no model changes; its columns are functions of the step,
    and its extra log value counts the calls."""

    columns = ("d_loss", "g_loss", "other")

    def __init__(self, *, bad_other_from: int = 0, finite: tuple[str, ...] = ("d_loss", "g_loss")
                 ) -> None:
        self.calls: list[int] = []
        self.bad_other_from, self.finite = bad_other_from, finite

    def __call__(self, state: GanState, step: int) -> torch.Tensor:
        self.calls.append(step)
        bad = self.bad_other_from and step >= self.bad_other_from
        return torch.tensor([step, 10.0 * step, float("nan") if bad else -step])

    def extras(self) -> dict[str, float]:
        return {"calls": float(len(self.calls))}


def still_state() -> GanState:
    torch.manual_seed(0)
    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.0)  # noqa: E731 - no weight change
    return GanState(G, D, copy.deepcopy(G).requires_grad_(False), sgd(G), sgd(D), {})


def test_the_shared_loop_logs_interval_means_of_any_update_evaluates_and_resumes(
    tmp_path: Path
) -> None:
    schedule = Schedule(steps=5, ema_decay=0.9, log_every=2, eval_every=3, checkpoint_every=2)
    kw = dict(gen=torch.Generator(), device=CPU,
              quality=lambda G: {"fid_domain": float(G.weight.sum())})
    update = StepValues()
    full = train_loop(still_state(), update, schedule, **kw)
    assert update.calls == [1, 2, 3, 4, 5]
    assert full.history == [  # steps 1-2, 3-4, then 5 alone; extras read at log time
        {"step": 2, "d_loss": 1.5, "g_loss": 15.0, "other": -1.5, "calls": 2.0},
        {"step": 4, "d_loss": 3.5, "g_loss": 35.0, "other": -3.5, "calls": 4.0},
        {"step": 5, "d_loss": 5.0, "g_loss": 50.0, "other": -5.0, "calls": 5.0},
    ]
    assert [r["step"] for r in full.quality] == [3, 5] and full.best["step"] == 3
    states = TrainingStateFile(tmp_path / "state.pt", "k")
    with pytest.raises(Interrupt):  # at the step-4 log, before its checkpoint: step 2 is kept
        train_loop(still_state(), StepValues(), schedule, log=interrupt_at(4), state_file=states,
                   **kw)
    again = StepValues()
    resumed = train_loop(still_state(), again, schedule, state_file=states, **kw)
    assert again.calls == [3, 4, 5]
    # the step-2 row comes from the state file; the calls after it count from the resume
    assert resumed.history == [full.history[0],
                               *({**r, "calls": r["calls"] - 2} for r in full.history[1:])]
    assert resumed.quality == full.quality


def test_the_shared_loop_guards_the_columns_its_update_names_finite() -> None:
    schedule = Schedule(steps=4, ema_decay=0.9, log_every=2, eval_every=0, checkpoint_every=2)
    kw = dict(gen=torch.Generator(), device=CPU)
    unguarded = train_loop(still_state(), StepValues(bad_other_from=3), schedule, **kw)
    assert math.isnan(unguarded.history[-1]["other"])
    with pytest.raises(PipelineError, match=r"non-finite by step 4; .*\(d_loss=3.5, g_loss=35.0, "
                                            r"other=nan\)$"):
        train_loop(still_state(), StepValues(bad_other_from=3, finite=StepValues.columns),
                   schedule, **kw)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_fit_is_deterministic_on_cpu_for_a_seed(arch: str) -> None:
    a = fit(IMAGES, LABELS, tiny(arch=arch, diffaugment=["translation", "cutout"]), n_classes=3,
            seed=5, device=CPU)
    b = fit(IMAGES, LABELS, tiny(arch=arch, diffaugment=["translation", "cutout"]), n_classes=3,
            seed=5, device=CPU)
    c = fit(IMAGES, LABELS, tiny(arch=arch, diffaugment=["translation", "cutout"]), n_classes=3,
            seed=6, device=CPU)
    assert a.history == b.history
    b_weights = b.state.G_ema.state_dict()
    for name, x in a.state.G_ema.state_dict().items():
        assert torch.equal(x, b_weights[name]), name
    assert a.history != c.history


@pytest.mark.parametrize(("balanced", "low", "high"), [(False, 0.0, 0.15), (True, 0.4, 0.6)])
def test_balanced_sampling_draws_classes_uniformly(balanced: bool, low: float, high: float
                                                   ) -> None:
    images, labels = make_images([30, 2])  # class 1 is 1/16 of the images
    drawn: list[torch.Tensor] = []

    def spy(state, real, y, z, **kwargs):
        drawn.append(y.clone())
        return d_step(state, real, y, z, **kwargs)

    fit(images, labels, tiny(arch="mlp", steps=20, batch_size=32, balanced_sampling=balanced,
                             log_every=20), n_classes=2, seed=0, device=CPU, d_step=spy)
    share = torch.cat(drawn).float().mean().item()  # share of class-1 draws among 640
    assert low <= share <= high


@pytest.mark.parametrize("which", ["d", "g"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_losses_stop_training_with_a_pipeline_error(which: str, bad: float) -> None:
    hinge = LOSSES["hinge"]
    broken = GanLoss(
        d=(lambda r, f: hinge.d(r, f) * bad) if which == "d" else hinge.d,
        g=(lambda f: hinge.g(f) * bad) if which == "g" else hinge.g,
    )
    rows, log = history_logger()
    with pytest.raises(PipelineError,
                       match=r"losses became non-finite by step 2\b.*lower train_gan.lr_d"):
        fit(IMAGES, LABELS, tiny(loss="hinge", steps=6), n_classes=3, seed=0, device=CPU, log=log,
            loss=broken)
    assert rows == []  # nothing non-finite reached the logger


def test_batch_size_one_is_refused_before_training() -> None:
    # BatchNorm cannot train on a batch of one: the config says so instead of torch failing later
    with pytest.raises(PipelineError, match=r"train_gan.batch_size: must be >= 2"):
        tiny(arch="dcgan", batch_size=1, steps=2)


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
    cfg: TrainGanConfig
    state: GanState


@pytest.fixture(scope="module", params=["dcgan", "mlp"])
def trained(request: pytest.FixtureRequest) -> Trained:
    cfg = tiny(arch=request.param)
    return Trained(cfg, fit(IMAGES, LABELS, cfg, n_classes=3, seed=0, device=CPU).state)


def test_sample_returns_uint8_nhwc(trained) -> None:
    labels = np.array([0, 1, 2, 2, 1])
    out = sample(trained.state.G_ema, labels, np.arange(5), latent_dim=16, device=CPU)
    assert out.shape == (5, 8, 8, 1) and out.dtype == np.uint8
    assert out.std() > 0


def test_each_sample_is_reproducible_from_its_seed_alone(trained) -> None:
    G = trained.state.G_ema
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
    out = sample(trained.state.G_ema, np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                 latent_dim=16, device=CPU)
    assert out.shape == (0, 8, 8, 1) and out.dtype == np.uint8


def test_sample_accepts_seeds_beyond_32_bits(trained) -> None:
    seeds = np.array([3 * 2**32 + 5, 3 * 2**32 + 6], dtype=np.int64)  # generate: seed * 2**32 + i
    a = sample(trained.state.G_ema, np.array([0, 0]), seeds, latent_dim=16, device=CPU)
    assert not np.array_equal(a[0], a[1])


# --- generator checkpoint -------------------------------------------------------------------------

def test_generator_checkpoint_roundtrip(trained, tmp_path: Path) -> None:
    cfg = trained.cfg
    path = tmp_path / "generator.pt"
    save_generator(path, trained.state, cfg, seed=3)
    G, meta = load_generator(path, device=CPU)
    assert not G.training
    labels, seeds = np.array([0, 1, 2, 0]), np.arange(4)
    np.testing.assert_array_equal(
        sample(G, labels, seeds, latent_dim=16, device=CPU),
        sample(trained.state.G_ema, labels, seeds, latent_dim=16, device=CPU),
    )
    assert meta["format"] == FORMAT
    assert meta["arch"] == cfg.arch
    assert (meta["step"], meta["seed"]) == (6, 3)
    assert meta["model_kwargs"] == trained.state.model_kwargs
    # plain JSON types in the file
    assert meta["train_gan"]["steps"] == 6 and meta["train_gan"]["betas"] == [0.0, 0.9]
    assert "state_dict" not in meta
    raw = torch.load(path, weights_only=True)  # no code from the file runs
    assert raw["format"] == FORMAT
    assert raw["state_dict"].keys() == trained.state.G_ema.state_dict().keys()


def test_loading_a_checkpoint_of_another_kind_is_an_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.pt", {"format": "someone-else/v9", "state_dict": {}})
    with pytest.raises(PipelineError, match="not a generator checkpoint of this project"):
        load_generator(tmp_path / "c.pt", device=CPU)
    with pytest.raises(PipelineError, match="checkpoint not found"):
        load_generator(tmp_path / "missing.pt", device=CPU)


def test_loading_a_torch_file_that_is_not_a_dict_is_a_pipeline_error(tmp_path: Path) -> None:
    torch.save(torch.zeros(3), tmp_path / "c.pt")
    with pytest.raises(PipelineError):
        load_generator(tmp_path / "c.pt", device=CPU)


# --- penalties ------------------------------------------------------------------------------------

class LinearCritic(torch.nn.Module):
    """D(x, y) = <w, x>: its input gradient is w for every image, so penalties have known values."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.flatten()


class FixedGenerator(torch.nn.Module):
    def __init__(self, fake: torch.Tensor) -> None:
        super().__init__()
        self.fake = fake
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fake + 0 * self.p


def critic_state(w: torch.Tensor, fake: torch.Tensor) -> GanState:
    G, D = FixedGenerator(fake), LinearCritic(w)
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.0)  # noqa: E731 - no weight change
    return GanState(G, D, G, sgd(G), sgd(D), {})


@pytest.mark.parametrize(("loss", "gp_weight", "r1_gamma"),
                         [("wgan-gp", 10.0, 0.0), ("hinge", 10.0, 0.5), ("wgan-gp", 3.0, 2.0)])
def test_gradient_penalty_and_r1_have_their_closed_form(
    loss: str, gp_weight: float, r1_gamma: float
) -> None:
    torch.manual_seed(0)
    w = torch.randn(1, 4, 4) * 0.7
    real, fake = torch.rand(3, 1, 4, 4), -torch.rand(3, 1, 4, 4)
    y, z = torch.zeros(3, dtype=torch.long), torch.zeros(3, 1)
    state = critic_state(w, fake)
    d_loss, d_real, d_fake = d_step(state, real, y, z, loss=LOSSES[loss], augment=[],
                                    gp_weight=gp_weight, r1_gamma=r1_gamma)
    real_logits, fake_logits = real.flatten(1) @ w.flatten(), fake.flatten(1) @ w.flatten()
    norm = w.norm().item()
    expected = LOSSES[loss].d(real_logits, fake_logits).item()
    expected += r1_gamma / 2 * norm**2  # R1: ||grad_x D(x_real)||^2 = ||w||^2
    if LOSSES[loss].gradient_penalty:
        expected += gp_weight * (norm - 1) ** 2  # the gradient is w at every interpolate
    assert d_loss.item() == pytest.approx(expected, rel=1e-5)
    assert d_real.item() == pytest.approx(real_logits.mean().item(), rel=1e-5)
    assert d_fake.item() == pytest.approx(fake_logits.mean().item(), rel=1e-5)


def test_several_discriminator_steps_per_generator_step() -> None:
    calls = {"d": 0, "g": 0}

    def count(kind, fn):
        def wrapped(*args, **kwargs):
            calls[kind] += 1
            return fn(*args, **kwargs)
        return wrapped

    result = fit(IMAGES, LABELS, tiny(loss="wgan-gp", d_steps=3, r1_gamma=1.0, steps=4),
                 n_classes=3, seed=0, device=CPU, d_step=count("d", d_step),
                 g_step=count("g", g_step))
    assert calls == {"d": 12, "g": 4}
    assert all(math.isfinite(v) for row in result.history for v in row.values())


# --- exact resume, best-by-fid_domain -------------------------------------------------------------

def weights(result) -> dict[str, torch.Tensor]:
    s = result.state
    out = {f"G.{k}": v for k, v in s.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in s.D.state_dict().items()})
    out.update({f"G_ema.{k}": v for k, v in s.G_ema.state_dict().items()})
    for name, opt in (("opt_g", s.opt_g), ("opt_d", s.opt_d)):
        for i, st in opt.state_dict()["state"].items():
            out.update({f"{name}.{i}.{k}": v for k, v in st.items() if torch.is_tensor(v)})
    return out


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def fake_quality(G: torch.nn.Module) -> dict[str, float]:
    """A deterministic stand-in for QualityProbe that uses torch's global RNG, as TSTR does."""
    torch.manual_seed(123)
    out = G(torch.randn(4, 16), torch.tensor([0, 1, 2, 0]))
    return {"fid_domain": float(out.abs().mean()), "tstr_balanced_accuracy": 0.5}


class Interrupt(Exception):
    pass


def interrupt_at(step_to_stop: int):
    def log(metrics, step):
        if step == step_to_stop:
            raise Interrupt
    return log


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(
    tmp_path: Path, arch: str
) -> None:
    cfg = tiny(arch=arch, steps=12, log_every=2, checkpoint_every=4, eval_every=3,
               diffaugment=["translation", "cutout", "color"], loss="wgan-gp", r1_gamma=0.5)
    kw = dict(n_classes=3, seed=3, device=CPU, quality=fake_quality)
    full = fit(IMAGES, LABELS, cfg, **kw)
    state = tmp_path / "state.pt"
    with pytest.raises(Interrupt):  # "killed" at step 10: the last state on disk is step 8
        fit(IMAGES, LABELS, cfg, checkpoint=state, resume_key="k", log=interrupt_at(10), **kw)
    assert torch.load(state, weights_only=True)["step"] == 8
    messages: list[str] = []
    resumed = fit(IMAGES, LABELS, cfg, checkpoint=state, resume_key="k", notify=messages.append,
                  **kw)
    assert messages == [f"resuming from step 8 ({state})"]
    assert_same_weights(full, resumed)
    assert resumed.history == full.history
    assert resumed.quality == full.quality and [r["step"] for r in full.quality] == [3, 6, 9, 12]
    assert resumed.best == full.best
    for k, v in full.best_state.items():
        assert torch.equal(v, resumed.best_state[k])


def test_raising_steps_continues_a_finished_run(tmp_path: Path) -> None:
    state = tmp_path / "state.pt"
    kw = dict(n_classes=3, seed=1, device=CPU, checkpoint=state, resume_key="k")
    fit(IMAGES, LABELS, tiny(steps=6, checkpoint_every=3), **kw)
    messages: list[str] = []
    longer = fit(IMAGES, LABELS, tiny(steps=10, checkpoint_every=3), notify=messages.append, **kw)
    assert messages == [f"resuming from step 6 ({state})"]
    assert_same_weights(longer, fit(IMAGES, LABELS, tiny(steps=10), n_classes=3, seed=1,
                                    device=CPU))


@pytest.mark.parametrize(("key", "steps", "expected"), [
    ("other", 6, "holds a run with other data or settings; starting from step 0"),
    ("k", 3, "is at step 6, past train_gan.steps=3; starting from step 0"),
])
def test_a_state_that_does_not_match_is_not_resumed(
    tmp_path: Path, key: str, steps: int, expected: str
) -> None:
    state = tmp_path / "state.pt"
    fit(IMAGES, LABELS, tiny(steps=6, checkpoint_every=3), n_classes=3, seed=1, device=CPU,
        checkpoint=state, resume_key="k")
    messages: list[str] = []
    again = fit(IMAGES, LABELS, tiny(steps=steps, checkpoint_every=3), n_classes=3, seed=1,
                device=CPU, checkpoint=state, resume_key=key, notify=messages.append)
    assert messages == [f"{state} {expected}"]
    assert_same_weights(again, fit(IMAGES, LABELS, tiny(steps=steps), n_classes=3, seed=1,
                                   device=CPU))
    assert torch.load(state, weights_only=True)["key"] == key  # overwritten by the new run


def test_an_unreadable_state_is_not_resumed(tmp_path: Path) -> None:
    state = tmp_path / "state.pt"
    state.write_bytes(b"\x00not a checkpoint")
    messages: list[str] = []
    fit(IMAGES, LABELS, tiny(steps=2), n_classes=3, seed=0, device=CPU, checkpoint=state,
        notify=messages.append)
    assert messages == [f"{state} is not a readable training state; starting from step 0"]
    assert torch.load(state, weights_only=True)["step"] == 2


def test_non_finite_losses_keep_the_last_good_state(tmp_path: Path) -> None:
    hinge, calls = LOSSES["hinge"], {"n": 0}

    def d_loss(r, f):
        calls["n"] += 1
        return hinge.d(r, f) * (float("nan") if calls["n"] > 5 else 1.0)

    state = tmp_path / "state.pt"
    with pytest.raises(PipelineError, match=rf"by step 6; the last good training state is kept "
                                            rf"in {state}"):
        fit(IMAGES, LABELS, tiny(steps=10, log_every=3, checkpoint_every=4, loss="hinge"),
            n_classes=3, seed=0, device=CPU, checkpoint=state, loss=GanLoss(d_loss, hinge.g))
    kept = torch.load(state, weights_only=True)
    assert kept["step"] == 4
    assert all(torch.isfinite(v).all() for v in kept["G"].values())


def test_evaluation_does_not_change_the_training_run() -> None:
    cfg = tiny(steps=6, eval_every=2, diffaugment=["translation"])
    with_quality = fit(IMAGES, LABELS, cfg, n_classes=3, seed=2, device=CPU, quality=fake_quality)
    without = fit(IMAGES, LABELS, cfg, n_classes=3, seed=2, device=CPU)
    assert_same_weights(with_quality, without)
    assert without.best is None and without.quality == []


def test_the_generator_with_the_lowest_fid_domain_is_kept() -> None:
    scores, snapshots = iter([3.0, 1.0, 2.0]), []

    def quality(G):
        snapshots.append({k: v.clone() for k, v in G.state_dict().items()})
        return {"fid_domain": next(scores)}

    result = fit(IMAGES, LABELS, tiny(steps=6, eval_every=2), n_classes=3, seed=0, device=CPU,
                 quality=quality)
    assert [r["step"] for r in result.quality] == [2, 4, 6]
    assert result.best == {"step": 4, "fid_domain": 1.0}
    for k, v in snapshots[1].items():
        assert torch.equal(result.best_state[k], v)


def test_bf16_autocast_trains_on_cpu_and_changes_the_arithmetic() -> None:
    bf16 = fit(IMAGES, LABELS, tiny(precision="bf16"), n_classes=3, seed=0, device=CPU)
    fp32 = fit(IMAGES, LABELS, tiny(precision="fp32"), n_classes=3, seed=0, device=CPU)
    auto = fit(IMAGES, LABELS, tiny(precision="auto"), n_classes=3, seed=0, device=CPU)
    assert bf16.state.amp_dtype is torch.bfloat16 and fp32.state.amp_dtype is None
    assert auto.history == fp32.history  # auto is fp32 on the CPU
    assert all(math.isfinite(v) for row in bf16.history for v in row.values())
    assert bf16.history != fp32.history
    for p in bf16.state.G.parameters():  # weights (and optimizer state) stay fp32
        assert p.dtype == torch.float32


# --- per-image latents ----------------------------------------------------------------------------

def test_latents_are_a_pure_function_of_each_seed() -> None:
    from pipeline.gan.latents import latents

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
    from pipeline.gan.latents import latents

    z = latents(np.arange(20_000, dtype=np.int64), 8, device=CPU).double()
    assert abs(z.mean().item()) < 0.01
    assert abs(z.std().item() - 1) < 0.01
    corr = torch.corrcoef(z.T)
    assert (corr - torch.eye(8, dtype=torch.float64)).abs().max() < 0.03  # independent coordinates
    assert abs((z.abs() > 1.96).double().mean().item() - 0.05) < 0.005  # normal tails
    seq = torch.corrcoef(torch.stack([z[:-1, 0], z[1:, 0]]))[0, 1]
    assert abs(seq.item()) < 0.03  # consecutive seeds are uncorrelated
