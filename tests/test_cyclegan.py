"""Method cyclegan: majority -> minority translation, its history buffer, sampling by seed,
resume, the memorization audit on translations, and what a translation does on a toy task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from conftest import make_images
from pipeline.config import Config, CycleGanConfig, FeaturesConfig, TrainGanConfig
from pipeline.features import train_extractor
from pipeline.models.cyclegan import ImagePool, PatchDiscriminator, ResnetGenerator
from pipeline.synthesize import synthesize
from pipeline.synthesizers.base import load_synthesizer
from pipeline.synthesizers.cyclegan import CycleSynthesizer, train

CPU = torch.device("cpu")
IMAGES, LABELS = make_images([8, 6, 4])  # class 0 is the majority


def tiny(*, steps: int = 4, **cyclegan) -> Config:
    return Config(seed=1, train_gan=TrainGanConfig(
        method="cyclegan", steps=steps, log_every=2, eval_every=2, checkpoint_every=3,
        device="cpu"), cyclegan=CycleGanConfig(**{"width": 4, "n_res": 1, "batch_size": 4,
                                                  "pool_size": 3, **cyclegan}))


def fake_quality(synthesizer) -> dict[str, float]:
    torch.manual_seed(7)
    images = synthesizer.sample(np.array([0, 1, 2]), np.array([1, 2, 3]))
    return {"fid_domain": float(images.mean()) + float(torch.rand(()))}


def test_networks_keep_the_image_size_and_give_patch_logits() -> None:
    for size in (8, 28):
        x = torch.rand(2, 3, size, size) * 2 - 1
        y = ResnetGenerator(channels=3, width=4, n_res=1)(x)
        assert y.shape == x.shape and y.abs().max() <= 1
        assert PatchDiscriminator(channels=3, width=4)(x).shape == (2, 1, size // 4, size // 4)


def test_the_history_buffer_fills_then_swaps_about_half() -> None:
    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool(first), first) and int(pool.count) == 4  # filling: the new ones
    torch.manual_seed(0)
    new = (100 + torch.arange(200.0)).view(200, 1, 1, 1).expand(200, 1, 2, 2)
    out = pool(new)[:, 0, 0, 0]
    swapped = out != new[:, 0, 0, 0]
    assert 0.3 < float(swapped.float().mean()) < 0.7
    # what comes back instead is an older image: one of the first four, or an earlier new one
    assert all(v < 4 or 100 <= v < 100 + i for i, v in enumerate(out.tolist()) if swapped[i])
    assert "images" in pool.state_dict() and "count" in pool.state_dict()


def test_training_logs_every_loss_and_samples_each_class_from_its_seed(tmp_path: Path) -> None:
    trained = train(IMAGES, LABELS, tiny(), n_classes=3, device=CPU, quality=fake_quality)
    assert [r["step"] for r in trained.history] == [2, 4]
    assert set(trained.history[0]) == {"step", "d_loss", "g_loss", "cycle_loss", "identity_loss"}
    assert all(np.isfinite(list(r.values())).all() for r in trained.history)
    synth = trained.synthesizer
    labels, seeds = np.array([0, 1, 2, 1, 2, 0]), np.array([5, 6, 7, 8, 2**40, -3])
    images = synth.sample(labels, seeds)
    assert images.shape == (6, 8, 8, 1) and images.dtype == np.uint8
    alone = np.concatenate([synth.sample(labels[i:i + 1], seeds[i:i + 1]) for i in range(6)])
    np.testing.assert_array_equal(alone, images)
    src = synth.sources(labels, seeds)
    # minority samples are translations of majority images; majority ones of minority images
    assert (LABELS[src[labels != 0]] == 0).all() and (LABELS[src[labels == 0]] != 0).all()
    np.testing.assert_array_equal(src, synth.sources(labels, seeds))
    assert len(set(synth.sources(np.ones(40, np.int64), np.arange(40)).tolist())) > 4
    with torch.no_grad():  # image i is G_c(source image i)
        x = torch.from_numpy(IMAGES[src[1:2]]).permute(0, 3, 1, 2).float() / 127.5 - 1
        expected = synth.G["to_1"](x).add(1).mul(127.5).round().clamp(0, 255).byte()
    np.testing.assert_array_equal(expected.permute(0, 2, 3, 1).numpy(), images[1:2])
    synth.save(tmp_path / "g.pt")
    loaded = load_synthesizer(tmp_path / "g.pt", device=CPU)
    assert loaded.method == "cyclegan" and loaded.meta["sampling"]["majority"] == 0
    np.testing.assert_array_equal(loaded.sample(labels, seeds), images)
    np.testing.assert_array_equal(loaded.sources(labels, seeds), src)


class Interrupt(Exception):
    pass


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = tiny(steps=8)
    kw = {"n_classes": 3, "device": CPU, "quality": fake_quality, "resume_key": "k"}
    full = train(IMAGES, LABELS, cfg, checkpoint=tmp_path / "full.pt", **kw)

    def killer(metrics, step):
        if step == 8:
            raise Interrupt

    state = tmp_path / "state.pt"
    with pytest.raises(Interrupt):
        train(IMAGES, LABELS, cfg, checkpoint=state, log=killer, **kw)
    assert torch.load(state, weights_only=True)["step"] == 6
    resumed = train(IMAGES, LABELS, cfg, checkpoint=state, **kw)
    a, b = (torch.load(p, weights_only=True) for p in (tmp_path / "full.pt", state))
    for part in ("G", "D", "ema"):
        sa, sb = (x["ema"] if part == "ema" else x["models"][part] for x in (a, b))
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f"{part}.{name}"
    assert int(a["models"]["D"]["pools.to_1.count"]) == 3  # the history buffer was restored, full
    assert resumed.history == full.history and resumed.quality == full.quality


def test_the_audit_catches_a_translation_that_returns_its_source() -> None:
    trained = train(IMAGES, LABELS, tiny(steps=1), n_classes=3, device=CPU)
    copier = CycleSynthesizer(nn.ModuleDict({k: nn.Identity() for k in trained.synthesizer.G}),
                              IMAGES, LABELS, meta=trained.synthesizer.meta, device=CPU)
    extractor = train_extractor(IMAGES, LABELS, FeaturesConfig(width=4, steps=10, batch_size=8),
                                n_classes=3, seed=0, device=CPU)
    val, _ = make_images([4, 4, 4], seed=5)
    out = synthesize(copier, {0: 3, 1: 4, 2: 4}, seed=0, device=CPU, extractor=extractor,
                     train_images=IMAGES, train_labels=LABELS, val_images=val,
                     reject_memorized=False, quality_gate=0.0)
    assert out.stats["memorization_rate"] == 1.0 and out.memorized.all()
    np.testing.assert_array_equal(out.first_draw, IMAGES[out.first_audit.nearest])


def lesions(counts: list[int], *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 uint8 images (N, 8, 8, 1): a 3x3 lesion at a random place (the anatomy a translation
    should keep) on a dark, noisy background; its brightness is the class: 230 for class 0, 120
    for class 1 (what a translation should change)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    images = rng.integers(0, 30, (len(labels), 8, 8, 1)).astype(np.uint8)
    for i, (y, x) in enumerate(rng.integers(0, 6, (len(labels), 2))):
        level = 230 if labels[i] == 0 else 120
        images[i, y : y + 3, x : x + 3] = level + rng.integers(-15, 15, (3, 3, 1))
    return images, labels


def lesion_centre(images: np.ndarray) -> np.ndarray:
    """(N, 2) brightness-weighted centre (row, column) of what stands out of the background."""
    w = np.clip(images[..., 0].astype(np.float64) - 60, 0, None)  # (N, H, W)
    grid = np.arange(images.shape[1])
    return np.stack([w.sum(2) @ grid, w.sum(1) @ grid], 1) / w.sum((1, 2))[:, None]


def test_a_translation_is_scored_as_the_minority_and_keeps_its_lesion() -> None:
    images, labels = lesions([24, 12], seed=0)  # class 0 the majority
    # lr 25x the default so that 60 steps do (seeds 0, 1, 2: 1.0, 0.95, 1.0 of the translations
    # classified as class 1, lesions 0.3-0.6 px from their source's); 1 step does not
    cfg = Config(seed=0, train_gan=TrainGanConfig(method="cyclegan", steps=60, log_every=60,
                                                  eval_every=0, checkpoint_every=60,
                                                  device="cpu"),
                 cyclegan=CycleGanConfig(width=8, n_res=1, batch_size=8, pool_size=0, lr=5e-3))
    synth = train(images, labels, cfg, n_classes=2, device=CPU).synthesizer
    # a classifier trained on other real images of the two classes
    real, real_labels = lesions([300, 300], seed=1)
    clf = LogisticRegression(max_iter=1000).fit(real.reshape(600, -1) / 255, real_labels)
    held_out, held_out_labels = lesions([100, 100], seed=2)
    assert clf.score(held_out.reshape(200, -1) / 255, held_out_labels) >= 0.95

    seeds = np.arange(100)
    minority = np.ones(100, np.int64)
    fakes, src = synth.sample(minority, seeds), synth.sources(minority, seeds)
    assert (labels[src] == 0).all() and len(set(src.tolist())) > 12
    # the sources are classified as the majority (so an identity translation fails here), their
    # translations as the minority (after 1 step of training: 0.0 to 0.5 of them)
    assert (clf.predict(images[src].reshape(100, -1) / 255) == 0).all()
    assert (clf.predict(fakes.reshape(100, -1) / 255) == 1).mean() >= 0.8
    # each lesion stays where it was in its source: within a pixel, where the lesions of the
    # other majority images are ~3 pixels away (after 1 step, or for a G that always returns the
    # same minority image: ~2.5 pixels from both)
    centre = lesion_centre(fakes)
    own = np.linalg.norm(centre - lesion_centre(images[src]), axis=1).mean()
    others = np.linalg.norm(centre[:, None] - lesion_centre(images[labels == 0])[None], axis=2)
    assert own < 1.0 and own < others.mean() / 2


def test_the_report_draws_the_cycle_and_identity_losses_with_the_gan_losses() -> None:
    import pandas as pd

    from pipeline.report import plot_losses

    rows = pd.DataFrame({"step": [2, 4], "d_loss": [0.5, 0.4], "g_loss": [0.9, 0.8],
                         "cycle_loss": [0.3, 0.2], "identity_loss": [0.1, 0.05]})
    (ax,) = plot_losses(rows).axes
    lines = {line.get_label(): line.get_ydata().tolist() for line in ax.get_lines()}
    assert lines == {"d_loss": [0.5, 0.4], "g_loss": [0.9, 0.8], "cycle_loss": [0.3, 0.2],
                     "identity_loss": [0.1, 0.05]}
