"""The classifier fits that test_distributed.py runs in one process and under torchrun.

`torchrun --nproc-per-node N tests/torchrun_fit.py OUT` trains with `fit` in a gloo process
group, twice: the evaluate CNN without BatchNorm and Dropout (OUT/rank<r>.pt: its weights must
equal one process's), and the real evaluate CNN (OUT/real_rank<r>.pt: its weights, and every
minibatch this rank trained on, as `train_classifier` drew them).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

import pipeline.classify as classify
from pipeline.classify import train_classifier
from pipeline.config import EvaluateConfig
from pipeline.distributed import process_group
from pipeline.models.classifier import CLASSIFIERS, SmallCNN

CPU = torch.device("cpu")


def per_sample_cnn(**kwargs: int) -> nn.Module:
    """The evaluate CNN without BatchNorm and Dropout: each image's logits depend on that image and
    the weights alone. (BatchNorm normalises over each rank's share of the batch, and every rank
    draws the same Dropout masks from the shared seed, so the real CNN cannot match exactly.)"""
    model = SmallCNN(**kwargs)
    for name, module in list(model.named_modules()):
        if isinstance(module, (nn.BatchNorm2d, nn.Dropout)):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, nn.Identity())
    return model


@contextlib.contextmanager
def recording(batches: list[tuple[torch.Tensor, torch.Tensor]]):
    """Record every minibatch `train_classifier` trains on (this rank's share under torchrun)."""
    draw = classify._batches

    def recorded(*args, **kwargs):
        for x, y, w in draw(*args, **kwargs):  # w: per-image loss weights or None
            batches.append((x.clone(), y.clone()))
            yield x, y, w

    with mock.patch.object(classify, "_batches", recorded):
        yield


def fit(images: np.ndarray, labels: np.ndarray, *, real: bool = False,
        batches: list | None = None) -> nn.Module:
    """train_classifier with a global batch of 8 over 20 images (so the order is reshuffled after
    every 2 steps), unweighted loss, no augmentation (its stream is drawn per rank). `real`: the
    evaluate CNN as it is (BatchNorm, Dropout); `batches` collects the minibatches."""
    cfg = EvaluateConfig(steps=6, batch_size=8, width=4, lr=1e-2, augment=())
    patch = contextlib.nullcontext() if real else mock.patch.dict(CLASSIFIERS, cnn=per_sample_cnn)
    with patch, recording([] if batches is None else batches):
        return train_classifier(images, labels, cfg, n_classes=int(labels.max()) + 1, seed=0,
                                device=CPU)


if __name__ == "__main__":
    from conftest import make_images  # this file's folder is sys.path[0]

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    with process_group(CPU) as world:
        model = fit(*make_images([14, 6]))
        torch.save(model.state_dict(), out / f"rank{world.rank}.pt")
        batches: list = []
        model = fit(*make_images([14, 6]), real=True, batches=batches)
        torch.save({"state": model.state_dict(), "x": torch.stack([x for x, _ in batches]),
                    "y": torch.stack([y for _, y in batches])}, out / f"real_rank{world.rank}.pt")
