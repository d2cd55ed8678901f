"""The dcgan training path: `fit`, the shared loop (pipeline/training/loop.py) driven by a fake
update, and the discriminator and generator steps (pipeline/synthesizers/dcgan.py)."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
import torch

from conftest import make_images
from pipeline.config import Config, DcganConfig, TrainGanConfig
from pipeline.errors import PipelineError
from pipeline.gan.losses import LOSSES, GanLoss
from pipeline.synthesizers.dcgan import d_step, fit, g_step
from pipeline.training.loop import Schedule, Update, train_loop
from pipeline.training.state import TrainState
from pipeline.training.state_file import TrainingStateFile

CPU = torch.device("cpu")
IMAGES, LABELS = make_images([8, 6, 4])


def tiny(**overrides) -> Config:
    """A tiny dcgan: each setting goes to its section (dcgan's own, or the loop's train_gan)."""
    values = {**dict(width=8, latent_dim=16, steps=6, batch_size=8, log_every=2), **overrides}
    own = {f.name for f in dataclasses.fields(DcganConfig)}
    return Config(dcgan=DcganConfig(**{k: v for k, v in values.items() if k in own}),
                  train_gan=TrainGanConfig(**{k: v for k, v in values.items() if k not in own}))


def history_logger() -> tuple[list[tuple[dict[str, float], int]], object]:
    rows: list[tuple[dict[str, float], int]] = []
    return rows, (lambda metrics, step: rows.append((dict(metrics), step)))


class Interrupt(Exception):
    pass


def interrupt_at(step_to_stop: int):
    def log(metrics, step):
        if step == step_to_stop:
            raise Interrupt
    return log


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
    pairs = zip(state.ema.parameters(), state["G"].parameters())
    assert any(not torch.equal(a, b) for a, b in pairs)
    assert not any(p.requires_grad for p in state.ema.parameters())
    if loss == "bce":
        assert all(r["d_loss"] > 0 and r["g_loss"] > 0 for r in result.history)  # softplus sums


def test_fit_on_rgb_images_with_color_augmentation() -> None:
    images, labels = make_images([5, 5], channels=3, size=16)
    result = fit(images, labels, tiny(diffaugment=["color"], steps=2), n_classes=2, seed=0,
                 device=CPU)
    assert result.state.model_kwargs["channels"] == 3
    assert result.state.ema(torch.randn(2, 16), torch.tensor([0, 1])).shape == (2, 3, 16, 16)


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

    def __init__(self, *, bad_other_from: int = 0, other: str = "other") -> None:
        self.calls: list[int] = []
        self.bad_other_from = bad_other_from
        self.columns = ("d_loss", "g_loss", other)  # other_loss: a loss, so guarded

    def __call__(self, state: TrainState, step: int) -> torch.Tensor:
        self.calls.append(step)
        bad = self.bad_other_from and step >= self.bad_other_from
        return torch.tensor([step, 10.0 * step, float("nan") if bad else -step])

    def extras(self) -> dict[str, float]:
        return {"calls": float(len(self.calls))}


def still_state() -> TrainState:
    torch.manual_seed(0)
    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.0)  # noqa: E731 - no weight change
    return TrainState({"G": G, "D": D}, {"G": sgd(G), "D": sgd(D)},
                      copy.deepcopy(G).requires_grad_(False), {})


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


def test_the_shared_loop_guards_the_loss_columns_its_update_declares() -> None:
    schedule = Schedule(steps=4, ema_decay=0.9, log_every=2, eval_every=0, checkpoint_every=2)
    kw = dict(gen=torch.Generator(), device=CPU)
    unguarded = train_loop(still_state(), StepValues(bad_other_from=3), schedule, **kw)
    assert math.isnan(unguarded.history[-1]["other"])
    with pytest.raises(PipelineError, match=r"non-finite by step 4; .*\(d_loss=3.5, g_loss=35.0, "
                                            r"other_loss=nan\)$"):
        train_loop(still_state(), StepValues(bad_other_from=3, other="other_loss"), schedule,
                   **kw)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_fit_is_deterministic_on_cpu_for_a_seed(arch: str) -> None:
    a = fit(IMAGES, LABELS, tiny(arch=arch, diffaugment=["translation", "cutout"]), n_classes=3,
            seed=5, device=CPU)
    b = fit(IMAGES, LABELS, tiny(arch=arch, diffaugment=["translation", "cutout"]), n_classes=3,
            seed=5, device=CPU)
    c = fit(IMAGES, LABELS, tiny(arch=arch, diffaugment=["translation", "cutout"]), n_classes=3,
            seed=6, device=CPU)
    assert a.history == b.history
    b_weights = b.state.ema.state_dict()
    for name, x in a.state.ema.state_dict().items():
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
                       match=r"losses became non-finite by step 2\b.*lower dcgan.lr_d"):
        fit(IMAGES, LABELS, tiny(loss="hinge", steps=6), n_classes=3, seed=0, device=CPU, log=log,
            loss=broken)
    assert rows == []  # nothing non-finite reached the logger


def test_batch_size_one_is_refused_before_training() -> None:
    # BatchNorm cannot train on a batch of one: the config says so instead of torch failing later
    with pytest.raises(PipelineError, match=r"dcgan.batch_size: must be >= 2"):
        tiny(arch="dcgan", batch_size=1, steps=2)


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


def critic_state(w: torch.Tensor, fake: torch.Tensor) -> TrainState:
    G, D = FixedGenerator(fake), LinearCritic(w)
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.0)  # noqa: E731 - no weight change
    return TrainState({"G": G, "D": D}, {"G": sgd(G), "D": sgd(D)}, G, {})


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


def test_bf16_autocast_trains_on_cpu_and_changes_the_arithmetic() -> None:
    bf16 = fit(IMAGES, LABELS, tiny(precision="bf16"), n_classes=3, seed=0, device=CPU)
    fp32 = fit(IMAGES, LABELS, tiny(precision="fp32"), n_classes=3, seed=0, device=CPU)
    auto = fit(IMAGES, LABELS, tiny(precision="auto"), n_classes=3, seed=0, device=CPU)
    assert bf16.state.amp_dtype is torch.bfloat16 and fp32.state.amp_dtype is None
    assert auto.history == fp32.history  # auto is fp32 on the CPU
    assert all(math.isfinite(v) for row in bf16.history for v in row.values())
    assert bf16.history != fp32.history
    for p in bf16.state["G"].parameters():  # weights (and optimizer state) stay fp32
        assert p.dtype == torch.float32
