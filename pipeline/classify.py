"""Train and apply the downstream classifier: the same model, budget and seed for every variant."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.augment import augment as augment_batch
from pipeline.balance import inverse_frequency as inverse_frequency  # callers import it here
from pipeline.config import EvaluateConfig, FeaturesConfig
from pipeline.distributed import Dist, current, wrap_ddp
from pipeline.models.classifier import CLASSIFIERS
from pipeline.pixels import to_unit
from pipeline import LogFn

AUGMENT_STREAM = 0x5EED  # offset of the augmentation RNG's seed from the classifier seed


def train_classifier(
    images: np.ndarray, labels: np.ndarray, cfg: EvaluateConfig | FeaturesConfig, *,
    n_classes: int, seed: int, device: torch.device, class_weights: np.ndarray | None = None,
    augment: Sequence[str] | None = None,
    pretrain: tuple[np.ndarray, np.ndarray] | None = None, pretrain_steps: int = 0,
    sample_weights: np.ndarray | None = None, log: LogFn = lambda metrics, step: None,
) -> nn.Module:
    """AdamW + cosine decay for exactly `cfg.steps` minibatches, reshuffling every epoch.

    `class_weights` (K,) weight the cross-entropy per class (the class_weight variants).
    `augment` (default `cfg.augment`) names the classifier-side augmentations applied to every
    batch (pipeline/augment.py). With `pretrain` (images, labels), the first `pretrain_steps` of
    the same schedule train on that set (unweighted), the rest on `images`: the total number of
    optimizer steps stays `cfg.steps`. `sample_weights` (N,) weight each image of `images` in
    the loss on top of its class weight (a weighted mean over the batch, as cross-entropy's
    class weights are). Under torchrun the model is wrapped in
    DistributedDataParallel and every rank trains on its share of each global minibatch (the same
    shuffled order on all ranks, rank r takes rows r, r+N, ...).
    """
    torch.manual_seed(seed)  # same seed -> same initial weights for every variant
    gen = torch.Generator(device=device).manual_seed(seed)
    world = current()
    # Augmentation draws its own stream (per rank: each rank augments other images).
    aug_gen = torch.Generator(device=device).manual_seed(seed + AUGMENT_STREAM + world.rank)
    augment = tuple(cfg.augment if augment is None else augment)
    model = CLASSIFIERS[cfg.classifier](
        channels=images.shape[3], n_classes=n_classes, image_size=images.shape[1], width=cfg.width
    ).to(device)
    trained = wrap_ddp(model, device) if world.world_size > 1 else model
    weight = None if class_weights is None else torch.as_tensor(
        class_weights, dtype=torch.float32, device=device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: autotuned kernels pay off
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=True if device.type == "cuda" else None)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    model.train()
    phases = ([(pretrain, min(pretrain_steps, cfg.steps), None, None)]
              if pretrain is not None else [])
    phases.append(((images, labels), cfg.steps - sum(p[1] for p in phases), weight,
                   sample_weights))
    step, running = 0, 0.0
    for (x_np, y_np), n_steps, phase_weight, phase_sw in phases:
        batches = _batches(x_np, y_np, cfg.batch_size, device=device, gen=gen, world=world,
                           weights=phase_sw)
        for _ in range(n_steps):
            step += 1
            x, y, w = next(batches)
            logits = trained(augment_batch(x, augment, aug_gen))
            if w is None:
                loss = F.cross_entropy(logits, y, weight=phase_weight)
            else:  # per-image weights: sum(w_i cw_y ce_i) / sum(w_i cw_y)
                ce = F.cross_entropy(logits, y, weight=phase_weight, reduction="none")
                cw = phase_weight[y] if phase_weight is not None else torch.ones_like(w)
                loss = (w * ce).sum() / (w * cw).sum().clamp_min(1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.detach()
            if step % 100 == 0 or step == cfg.steps:
                log({"train_loss": float(running) / (100 if step % 100 == 0 else step % 100)},
                    step)
                running = 0.0
    return model.eval()


def _batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, *, device: torch.device,
    gen: torch.Generator, world: Dist, weights: np.ndarray | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Endless minibatches (images in [-1, 1], labels, per-image weights or None), this rank's
    share, reshuffled every epoch; the data stays resident on `device` as uint8."""
    data = torch.from_numpy(images).to(device)  # uint8 (N, H, W, C)
    targets = torch.from_numpy(labels).to(device)
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=device)
    batch = min(batch_size, len(data))
    if world.world_size > 1:  # the global batch, rounded down to split evenly over the ranks
        batch = max(world.world_size, batch - batch % world.world_size)
    order, pos = torch.randperm(len(data), device=device, generator=gen), 0
    while True:
        if pos + batch > len(order):
            order, pos = torch.randperm(len(data), device=device, generator=gen), 0
        idx = order[pos : pos + batch][world.rank :: world.world_size]
        pos += batch
        yield to_unit(data[idx]), targets[idx], None if w is None else w[idx]


@torch.no_grad()
def apply_batched(
    fn: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, *, device: torch.device,
    batch_size: int = 1024, width: int = 0,
) -> np.ndarray:
    """fn over uint8 images (N, H, W, C) in [-1, 1] batches on `device`: float32 (N, D); with no
    images, (0, width)."""
    out = [fn(to_unit(torch.from_numpy(images[i : i + batch_size]).to(device))).float()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, width), dtype=np.float32)


def predict_proba(
    model: nn.Module, images: np.ndarray, *, device: torch.device, batch_size: int = 1024
) -> np.ndarray:
    """Class probabilities (N, K) for uint8 images (N, H, W, C)."""
    model.eval()
    return apply_batched(lambda x: F.softmax(model(x), dim=1), images, device=device,
                         batch_size=batch_size)
