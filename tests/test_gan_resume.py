"""The training loop's exact resume from its state file, and keeping the generator with the
lowest fid_domain (dcgan's `fit`; stylegan and cyclegan: test_stylegan.py, test_cyclegan.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.gan.losses import LOSSES, GanLoss
from pipeline.synthesizers.dcgan import fit
from test_gan_train import CPU, IMAGES, LABELS, Interrupt, interrupt_at, tiny


# --- exact resume, best-by-fid_domain -------------------------------------------------------------

def weights(result) -> dict[str, torch.Tensor]:
    s = result.state
    out = {f"{n}.{k}": v for n, m in s.models.items() for k, v in m.state_dict().items()}
    out.update({f"ema.{k}": v for k, v in s.ema.state_dict().items()})
    for name, opt in s.optimizers.items():
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
    assert all(torch.isfinite(v).all() for v in kept["models"]["G"].values())


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
