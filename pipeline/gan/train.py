"""`fit`: the conditional DCGAN / MLP GAN on a training split, through the shared loop.

The parts live in their own modules: the state (pipeline/gan/state.py), the update
(pipeline/gan/steps.py), the loop (pipeline/gan/loop.py), the resumable state file
(pipeline/gan/checkpoint.py) and sampling (pipeline/gan/sampling.py). `fit` builds them for one
train_gan config and takes the ones a caller may swap (loss, d_step, g_step, quality) as arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pipeline import LogFn
from pipeline.config import TrainGanConfig
from pipeline.distributed import current, per_rank_batch, wrap_ddp
from pipeline.gan.checkpoint import TrainingStateFile
from pipeline.gan.loop import Schedule, train_loop
from pipeline.gan.losses import LOSSES, GanLoss
from pipeline.gan.sampling import sample
from pipeline.gan.state import FitResult, GanState, QualityFn
from pipeline.gan.steps import Batches, DcganUpdate, DStep, GStep, build_state, d_step, g_step
from pipeline.pixels import to_uint8, to_unit

# Names other modules and benches import from here.
__all__ = ["FitResult", "GanState", "LogFn", "QualityFn", "build_state", "d_step", "fit",
           "g_step", "sample", "to_uint8", "to_unit"]

RANK_STRIDE = 1_000_003  # rank r's random streams start from seed + r * this


def fit(
    images: np.ndarray, labels: np.ndarray, cfg: TrainGanConfig, *, n_classes: int, seed: int,
    device: torch.device, log: LogFn = lambda metrics, step: None,
    quality: QualityFn | None = None, checkpoint: str | Path | None = None,
    resume_key: str = "", notify: Callable[[str], None] = lambda message: None,
    loss: GanLoss | None = None, d_step: DStep = d_step, g_step: GStep = g_step,
) -> FitResult:
    """Train a class-conditional GAN on uint8 images (N, H, W, C) with int labels (N,).

    quality: called with the EMA generator every `cfg.eval_every` steps and at the end; the
        generator with the lowest fid_domain is kept (see `train_loop`).
    checkpoint: the resumable training state, continued when it holds a run with the same
        `resume_key` (same data and settings); `notify` gets one line.
    loss: the adversarial loss (default: `LOSSES[cfg.loss]`); d_step, g_step: the two halves of
        an update (pipeline/gan/steps.py).
    """
    world = current()
    batch = per_rank_batch(cfg.batch_size, world.world_size, "train_gan.batch_size")
    torch.manual_seed(seed)  # the same initial weights on every rank
    gen = torch.Generator(device=device).manual_seed(seed + RANK_STRIDE * world.rank)
    batches = Batches.of(images, labels, n_classes=n_classes, balanced=cfg.balanced_sampling,
                         gen=gen, size=batch, latent_dim=cfg.latent_dim, device=device)
    state = build_state(
        cfg, n_classes=n_classes, image_size=images.shape[1], channels=images.shape[3],
        device=device,
    )
    if world.world_size > 1:  # each rank draws its own batches and augmentations
        torch.manual_seed(seed + RANK_STRIDE * world.rank)
        state.G_ddp, state.D_ddp = wrap_ddp(state.G, device), wrap_ddp(state.D, device)
    update = DcganUpdate.of(cfg, batches, loss=LOSSES[cfg.loss] if loss is None else loss,
                            d_step=d_step, g_step=g_step)
    state_file = None if checkpoint is None else TrainingStateFile(checkpoint, resume_key, notify)
    return train_loop(state, update, Schedule.of(cfg), gen=gen, device=device, log=log,
                      quality=quality, state_file=state_file)
