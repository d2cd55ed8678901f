"""Training and generation throughput (real images per second) of the project's loops against
typical PyTorch loops, in one process on one device:

    python bench/gan_throughput.py --device cuda --seconds 20

GAN: (1) the seed document's reference loop — label-conditioned MLP G/D, a DataLoader over CPU
tensors, batch 64, fp32, BCE, separate D passes for real and fake; (2) the project's default
architecture (conditional DCGAN + projection D with spectral norm, hinge) in that same typical loop;
(3) the project's training path (`pipeline.synthesizers.dcgan.fit`) with params.yaml's dcgan settings.
Classifier: (1) a typical loop over the small CNN, (3) `pipeline.classify.train_classifier`.
Generation: `pipeline.synthesizers.base.sample` into uint8. Needs only torch and numpy (no dvc, mlflow).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, TensorDataset

from pipeline.classify import train_classifier
from pipeline.config import parse_config
from pipeline.device import resolve_device
from pipeline.synthesizers.base import sample
from pipeline.synthesizers.dcgan import fit
from pipeline.models.classifier import CLASSIFIERS
from pipeline.models.dcgan import build_discriminator, build_generator

ROOT = Path(__file__).resolve().parents[1]


def dataset(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
            (rng.random(n) < 0.1).astype(np.int64))  # 10% minority


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Counts images after `warm` untimed steps until `seconds` have passed: `tick` -> done?"""

    def __init__(self, device: torch.device, seconds: float, warm: int = 5) -> None:
        self.device, self.seconds, self.warm, self.seen, self.start = device, seconds, warm, 0, 0.0

    def tick(self, n: int) -> bool:
        self.warm -= 1
        if self.warm == 0:
            sync(self.device)
            self.start = time.perf_counter()
        elif self.warm < 0:
            self.seen += n
            if time.perf_counter() - self.start >= self.seconds:
                sync(self.device)
                return True
        return False

    @property
    def rate(self) -> float:
        return self.seen / (time.perf_counter() - self.start)


def typical_gan_loop(images, labels, *, arch: str, loss: str, spectral_norm: bool,
                     device: torch.device, seconds: float, width: int, latent: int = 64) -> float:
    """The loop most GAN code is written as: DataLoader batches from the host, fp32, eager."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    loader = DataLoader(TensorDataset(x, torch.from_numpy(labels)), batch_size=64, shuffle=True,
                        drop_last=True)
    kw = dict(n_classes=2, image_size=images.shape[1], channels=1, width=width)
    G = build_generator(arch, latent_dim=latent, **kw).to(device)
    D = build_discriminator(arch, spectral_norm=spectral_norm, **kw).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))

    def d_loss(r, f):
        if loss == "bce":
            return F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + \
                F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
        if loss == "wgan-gp":
            return f.mean() - r.mean()
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()

    def g_loss(f):
        return F.binary_cross_entropy_with_logits(f, torch.ones_like(f)) if loss == "bce" \
            else -f.mean()

    clock = Clock(device, seconds)
    while True:
        for real, y in loader:
            real, y = real.to(device), y.to(device)
            z = torch.randn(len(y), latent, device=device)
            fake = G(z, y)
            ld = d_loss(D(real, y), D(fake.detach(), y))
            if loss == "wgan-gp":  # the textbook gradient penalty, as the project's loss has
                eps = torch.rand(len(y), 1, 1, 1, device=device)
                x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
                (grad,) = torch.autograd.grad(D(x_hat, y).sum(), x_hat, create_graph=True)
                ld = ld + 10.0 * (grad.flatten(1).norm(dim=1) - 1).square().mean()
            opt_d.zero_grad()
            ld.backward()
            opt_d.step()
            lg = g_loss(D(fake, y))
            opt_g.zero_grad()
            lg.backward()
            opt_g.step()
            ld.item(), lg.item()  # per-step logging, as typical loops do
            if clock.tick(len(y)):
                return clock.rate


def project_gan(images, labels, cfg, *, device: torch.device, seconds: float) -> float:
    loop = lambda **kw: dataclasses.replace(cfg, train_gan=dataclasses.replace(  # noqa: E731
        cfg.train_gan, **kw))
    probe = loop(steps=10, log_every=10)
    fit(images, labels, probe, n_classes=2, seed=0, device=device)  # warm-up (and compile)
    t = time.perf_counter()
    fit(images, labels, probe, n_classes=2, seed=0, device=device)
    per_step = (time.perf_counter() - t) / 10
    steps = max(10, int(seconds / per_step))
    run = loop(steps=steps, log_every=min(cfg.train_gan.log_every, steps))
    sync(device)
    res = fit(images, labels, run, n_classes=2, seed=0, device=device)
    return steps * cfg.dcgan.batch_size * cfg.dcgan.d_steps / res.seconds


def typical_classifier_loop(images, labels, *, device, seconds, width) -> float:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    loader = DataLoader(TensorDataset(x, torch.from_numpy(labels)), batch_size=64, shuffle=True,
                        drop_last=True)
    model = CLASSIFIERS["cnn"](channels=1, n_classes=2, image_size=images.shape[1],
                               width=width).to(device)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    clock = Clock(device, seconds)
    while True:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
            if clock.tick(len(yb)):
                return clock.rate


def project_classifier(images, labels, cfg, *, device, seconds) -> float:
    t = time.perf_counter()
    train_classifier(images, labels, dataclasses.replace(cfg, steps=20), n_classes=2, seed=0,
                     device=device)
    steps = max(20, int(seconds / ((time.perf_counter() - t) / 20)))
    sync(device)
    t = time.perf_counter()
    train_classifier(images, labels, dataclasses.replace(cfg, steps=steps), n_classes=2, seed=0,
                     device=device)
    sync(device)
    return steps * cfg.batch_size / (time.perf_counter() - t)


def generation(cfg, *, device, n: int) -> float:
    G = build_generator(cfg.arch, latent_dim=cfg.latent_dim, n_classes=2, image_size=28,
                        channels=1, width=cfg.width).to(device).eval()
    labels, seeds = np.arange(n) % 2, np.arange(n)
    sample(G, labels[:1024], seeds[:1024], latent_dim=cfg.latent_dim, device=device)
    t = time.perf_counter()
    sample(G, labels, seeds, latent_dim=cfg.latent_dim, device=device, batch_size=4096)
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per loop")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--n", type=int, default=4000, help="training images (2 classes)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cfg = parse_config(yaml.safe_load((ROOT / "params.yaml").read_text()), source="params.yaml")
    cfg = dataclasses.replace(cfg, train_gan=dataclasses.replace(cfg.train_gan,
                                                                 device=str(device.type)))
    gcfg = cfg.dcgan
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; {args.n} images {args.image_size}x"
          f"{args.image_size}; dcgan: {gcfg.arch}/{gcfg.loss} width {gcfg.width} batch "
          f"{gcfg.batch_size}")
    images, labels = dataset(args.n, args.image_size)
    s = args.seconds
    gan = {
        "(1) seed reference loop (MLP, DataLoader, batch 64, fp32)": typical_gan_loop(
            images, labels, arch="mlp", loss="bce", spectral_norm=False, device=device,
            seconds=s, width=gcfg.width),
        "(2) default architecture, typical loop (DataLoader, batch 64, fp32)": typical_gan_loop(
            images, labels, arch=gcfg.arch, loss=gcfg.loss, spectral_norm=gcfg.spectral_norm,
            device=device, seconds=s, width=gcfg.width),
        "(3) project training path (params.yaml)": project_gan(images, labels, cfg,
                                                                device=device, seconds=s),
    }
    print("\n| GAN loop | real images/s |\n|---|---|")
    for k, v in gan.items():
        print(f"| {k} | {v:,.0f} |")
    r1, r2, r3 = gan.values()
    print(f"ratios: (3)/(1) = {r3 / r1:.2f}x, (3)/(2) = {r3 / r2:.2f}x")
    ecfg = cfg.evaluate
    cls = {
        "(1) typical loop (DataLoader, batch 64, fp32)": typical_classifier_loop(
            images, labels, device=device, seconds=s, width=ecfg.width),
        "(3) project path (pipeline.classify)": project_classifier(images, labels, ecfg,
                                                                   device=device, seconds=s),
    }
    print("\n| classifier loop | images/s |\n|---|---|")
    for k, v in cls.items():
        print(f"| {k} | {v:,.0f} |")
    c1, c3 = cls.values()
    print(f"ratio: (3)/(1) = {c3 / c1:.2f}x")
    n = 1_000_000 if device.type == "cuda" else 20_000
    print(f"\ngeneration (sample -> uint8 host array, {n:,} images): "
          f"{generation(gcfg, device=device, n=n):,.0f} images/s")


if __name__ == "__main__":
    main()
