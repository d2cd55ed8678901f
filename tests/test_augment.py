"""pipeline/augment.py: classifier-side augmentation, and its use in the classifier's training."""

from __future__ import annotations

import pytest
import torch

from conftest import make_images
from pipeline.augment import AUGMENTATIONS, augment, brightness, contrast, hflip, rotate, translate
from pipeline.classify import predict_proba, train_classifier
from pipeline.config import EvaluateConfig

CPU = torch.device("cpu")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(b: int = 16, size: int = 16) -> torch.Tensor:
    return torch.rand(b, 1, size, size, generator=gen(99)) * 2 - 1  # (B, 1, H, W) in [-1, 1]


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_every_op_keeps_shape_and_range_and_is_seeded(name: str) -> None:
    x = batch()
    a = augment(x, [name], gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a, augment(x, [name], gen(1)))  # same seed, same batch
    assert not torch.equal(a, augment(x, [name], gen(2)))  # another seed, another batch


def test_no_ops_leave_the_batch_untouched() -> None:
    x = batch()
    assert augment(x, [], gen()) is x


def test_translate_moves_a_dot_by_at_most_an_eighth_and_fills_black() -> None:
    x = torch.full((64, 1, 16, 16), -1.0)
    x[:, :, 8, 8] = 1.0
    out = translate(x, gen())
    ys, xs = (out[:, 0] == 1.0).nonzero(as_tuple=True)[1:]
    assert len(ys) == 64  # the dot stays inside (shift <= 2 px from the centre)
    assert (ys - 8).abs().max() <= 2 and (xs - 8).abs().max() <= 2
    assert len({(int(a), int(b)) for a, b in zip(ys, xs)}) > 5  # random, per image
    assert set(out.unique().tolist()) == {-1.0, 1.0}  # integer shifts: no interpolation


def test_hflip_flips_about_half_the_images_exactly() -> None:
    x = batch(64)
    out = hflip(x, gen())
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 16 < sum(flipped) < 48


def test_brightness_and_contrast_worked_answers() -> None:
    x = batch(32)
    shift = (brightness(x, gen()) - x).mean(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.2 + 1e-6 and shift.std() > 0
    c = contrast(x, gen())
    torch.testing.assert_close(c.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)))  # mean kept
    ratio = (c - c.mean(dim=(1, 2, 3), keepdim=True)).std(dim=(1, 2, 3)) / \
        (x - x.mean(dim=(1, 2, 3), keepdim=True)).std(dim=(1, 2, 3))
    assert ((ratio >= 0.8 - 1e-5) & (ratio <= 1.2 + 1e-5)).all()


def test_rotation_by_zero_degrees_is_the_identity() -> None:
    x = batch()
    torch.testing.assert_close(rotate(x, gen(), degrees=0.0), x, atol=1e-5, rtol=0)


def quick(**overrides) -> EvaluateConfig:
    return EvaluateConfig(**{**dict(steps=40, batch_size=16, lr=0.01, width=8), **overrides})


def test_the_classifier_augments_by_default_and_reproducibly() -> None:
    x, y = make_images([10, 10])
    kwargs = dict(n_classes=2, seed=0, device=CPU)
    plain = train_classifier(x, y, quick(steps=5, augment=()), **kwargs).state_dict()
    aug = train_classifier(x, y, quick(steps=5), **kwargs).state_dict()
    again = train_classifier(x, y, quick(steps=5), **kwargs).state_dict()
    off = train_classifier(x, y, quick(steps=5), augment=(), **kwargs).state_dict()
    assert all(torch.equal(aug[k], again[k]) for k in aug)
    assert all(torch.equal(plain[k], off[k]) for k in plain)  # augment=() overrides the config
    assert any(not torch.equal(aug[k], plain[k]) for k in aug if aug[k].is_floating_point())


def test_pretraining_uses_its_steps_then_the_real_set() -> None:
    x, y = make_images([12, 12], seed=0)
    test_x, test_y = make_images([8, 8], seed=1)
    swapped = (x, 1 - y)  # a "synthetic" set with every label wrong
    steps: list[int] = []
    cfg = quick(steps=60, augment=())
    only_pre = train_classifier(x, y, cfg, n_classes=2, seed=0, device=CPU, pretrain=swapped,
                                pretrain_steps=60, log=lambda m, step: steps.append(step))
    assert steps == [60]  # the total budget is cfg.steps, whatever the split
    pred = predict_proba(only_pre, test_x, device=CPU).argmax(axis=1)
    assert (pred == 1 - test_y).mean() >= 0.9  # it learnt the pretraining labels
    fine = train_classifier(x, y, cfg, n_classes=2, seed=0, device=CPU, pretrain=swapped,
                            pretrain_steps=10)
    pred = predict_proba(fine, test_x, device=CPU).argmax(axis=1)
    assert (pred == test_y).mean() >= 0.9  # 50 real steps fix it
