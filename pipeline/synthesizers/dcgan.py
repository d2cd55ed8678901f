"""Method `dcgan`: the conditional DCGAN / MLP GAN of pipeline/gan/train.py (`fit` with the
train_gan section); this module only adapts its result to the synthesizer contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import LogFn
from pipeline.config import Config, TrainGanConfig
from pipeline.gan.steps import generator_kwargs
from pipeline.gan.train import fit
from pipeline.models import build_generator
from pipeline.synthesizers.base import (
    FORMAT, GeneratorSynthesizer, SynthQualityFn, Trained, sections,
)

SECTIONS = ("train_gan",)
READS = tuple(f.name for f in dataclasses.fields(TrainGanConfig))  # every one


def train(
    images: np.ndarray, labels: np.ndarray, cfg: Config, *, n_classes: int,
    device: torch.device, log: LogFn = lambda metrics, step: None,
    quality: SynthQualityFn | None = None, checkpoint: str | Path | None = None,
    resume_key: str = "", notify: Callable[[str], None] = lambda message: None,
) -> Trained:
    gcfg = cfg.train_gan
    meta: dict[str, Any] = {
        "format": FORMAT, "method": "dcgan", "arch": gcfg.arch, "seed": cfg.seed,
        "config": sections(cfg, SECTIONS), "n_classes": n_classes,
        "sampling": {"latent_dim": gcfg.latent_dim},
        # before training, so the synthesizer the quality hook gets is complete (saves, loads)
        "model_kwargs": generator_kwargs(gcfg, n_classes=n_classes, image_size=images.shape[1],
                                         channels=images.shape[3]),
    }

    def probe(G: torch.nn.Module) -> dict[str, float]:
        return quality(GeneratorSynthesizer(G, meta=meta, device=device))  # type: ignore[misc]

    result = fit(images, labels, gcfg, n_classes=n_classes, seed=cfg.seed, device=device,
                 log=log, quality=None if quality is None else probe, checkpoint=checkpoint,
                 resume_key=resume_key, notify=notify)
    best_step = result.keep_best()  # the EMA generator at the step with the lowest fid_domain
    state = result.state
    meta.update(step=state.step, best_step=best_step)
    return Trained.of(GeneratorSynthesizer(state.G_ema, meta=meta, device=device), result,
                      images_per_step=gcfg.batch_size * gcfg.d_steps)


def load(ckpt: dict[str, Any], *, device: torch.device) -> GeneratorSynthesizer:
    ckpt = dict(ckpt)
    G = build_generator(ckpt["arch"], **ckpt["model_kwargs"])
    G.load_state_dict(ckpt.pop("state_dict"))
    if "sampling" not in ckpt:  # a legacy generator/v1 checkpoint
        ckpt.update(sampling={"latent_dim": ckpt["model_kwargs"]["latent_dim"]},
                    n_classes=ckpt["model_kwargs"]["n_classes"],
                    config={"train_gan": ckpt.get("train_gan", {})})
    return GeneratorSynthesizer(G, meta=ckpt, device=device)
