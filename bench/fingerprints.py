"""Fingerprints of every synthesis method's training, to show that a refactor changed no value.

    OMP_NUM_THREADS=1 python bench/fingerprints.py [--out before.json] [--compare before.json]

For each configuration below: a few steps on a tiny deterministic dataset through the method's
`train` (the train_gan stage's code path: the shared loop, its training-state file, a stop and a
resume by raising `steps`, the quality hook), then sha256 of
  weights      every model's state_dict in the training-state file (G, D, EMA G / the method's)
  optimizers   every optimizer's state_dict in it
  rng          the RNG states and open loss sums saved with it
  history      the loss history as CSV bytes, and the quality history as CSV bytes
  samples      `sample(labels, seeds)` of the trained synthesizer and of its saved-and-loaded copy
A checkpoint layout may rename its entries (the canonical names below map both layouts); the
values must not change. CPU, one thread. Configurations of methods this checkout lacks are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pipeline.config import Config, parse_config  # noqa: E402
from pipeline.synthesizers.base import load_synthesizer  # noqa: E402
from pipeline.synthesizers.registry import METHODS, method_module  # noqa: E402

CPU = torch.device("cpu")
LOOP = {"log_every": 2, "eval_every": 3, "checkpoint_every": 2, "device": "cpu"}
# name -> (method, that method's own settings); the layout-neutral form of the params
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "dcgan": ("dcgan", {"arch": "dcgan", "width": 8, "latent_dim": 16, "batch_size": 8}),
    "dcgan-mlp": ("dcgan", {"arch": "mlp", "width": 8, "latent_dim": 16, "batch_size": 8}),
    "dcgan-hinge": ("dcgan", {"arch": "dcgan", "loss": "hinge", "spectral_norm": True,
                              "diffaugment": ["translation", "cutout", "color"], "r1_gamma": 0.5,
                              "d_steps": 2, "width": 8, "latent_dim": 16, "batch_size": 8,
                              "balanced_sampling": False}),
    "stylegan": ("stylegan", {"width": 8, "r1_every": 2, "latent_dim": 16, "batch_size": 8}),
    "cyclegan": ("cyclegan", {"width": 4, "n_res": 1, "batch_size": 4, "pool_size": 3}),
}


def params(method: str, own: dict[str, Any], *, steps: int) -> dict[str, Any]:
    """The params dict in this checkout's layout: loop settings in train_gan, the rest in the
    method's section (where the checkout has one; before the split dcgan's were in train_gan)."""
    fields = set(Config.__dataclass_fields__)
    loop = {"method": method, "steps": steps, **LOOP}
    if "dcgan" in fields:  # the method-neutral layout
        return {"seed": 3, "train_gan": loop, method: own}
    # the layout before the refactor: dcgan's settings and the shared latent_dim/batch_size of
    # stylegan lived in train_gan
    shared = {"dcgan": set(own), "stylegan": {"latent_dim", "batch_size", "balanced_sampling"}
              }.get(method, set())
    section = {k: v for k, v in own.items() if k not in shared}
    train_gan = {**loop, **{k: v for k, v in own.items() if k in shared}}
    return {"seed": 3, "train_gan": train_gan, **({method: section} if section else {})}


def data() -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 8x8 grayscale images: a bright quadrant per class over noise."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [8, 6, 4]).astype(np.int64)
    images = rng.integers(0, 30, (len(labels), 8, 8, 1)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 2)
        images[i, 4 * r: 4 * r + 4, 4 * q: 4 * q + 4] = 200 + rng.integers(0, 40)
    return images, labels


def digest(value: Any) -> str:
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if torch.is_tensor(value):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(repr(k).encode())
            _feed(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(repr(value).encode())


def canonical(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(models, optimizers) by canonical name, from either state-file layout."""
    if "models" in ckpt:  # method-neutral: models/optimizers by name, the EMA copy apart
        models = {**ckpt["models"], "ema": ckpt["ema"]}
        return models, dict(ckpt["optimizers"])
    models = {"G": ckpt["G"], "D": ckpt["D"], "ema": ckpt["G_ema"]}
    return models, {"G": ckpt["opt_g"], "D": ckpt["opt_d"]}


def fake_quality(synthesizer: Any) -> dict[str, float]:
    """Deterministic stand-in for the QualityProbe: samples through the contract and uses
    torch's global RNG, as TSTR does."""
    torch.manual_seed(123)
    images = synthesizer.sample(np.array([0, 1, 2, 0]), np.array([4, 5, 6, 7]))
    return {"fid_domain": float(images.mean()) / 255 + float(torch.rand(()))}


def fingerprint(name: str, tmp: Path) -> dict[str, str]:
    method, own = CONFIGS[name]
    images, labels = data()
    state = tmp / f"{name}.state.pt"
    kw = dict(n_classes=3, device=CPU, quality=fake_quality, checkpoint=state, resume_key="k")
    short = parse_config(params(method, own, steps=4))
    method_module(method).train(images, labels, short, **kw)  # stops at step 4 ...
    cfg = parse_config(params(method, own, steps=6))
    notes: list[str] = []
    trained = method_module(method).train(images, labels, cfg, notify=notes.append, **kw)
    assert notes and "resuming from step 4" in notes[0], notes  # ... and resumes there
    ckpt = torch.load(state, weights_only=True)
    models, optimizers = canonical(ckpt)
    path = tmp / f"{name}.pt"
    trained.synthesizer.save(path)
    ys, seeds = np.array([0, 1, 2, 2, 1, 0, 2]), np.array([0, 1, 2, 3, 10, 11, 2**40])
    csv = io.StringIO()
    pd.DataFrame(trained.history).to_csv(csv, index=False)
    qcsv = io.StringIO()
    pd.DataFrame(trained.quality).to_csv(qcsv, index=False)
    return {
        "weights": digest(models), "optimizers": digest(optimizers),
        "rng": digest(ckpt["rng"]), "history": digest(csv.getvalue()),
        "quality": digest(qcsv.getvalue()), "best": digest(ckpt["best_state"]),
        "samples": digest(trained.synthesizer.sample(ys, seeds).tobytes()),
        "loaded_samples": digest(load_synthesizer(path, device=CPU).sample(ys, seeds).tobytes()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, help="a JSON written by --out: list differences")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (method, _) in CONFIGS.items():
            if method in METHODS:
                out[name] = fingerprint(name, Path(tmp))
                print(name, json.dumps(out[name], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    if args.compare:
        ref = json.loads(args.compare.read_text())
        same = True
        for name, values in ref.items():
            for k, v in values.items():
                now = out.get(name, {}).get(k)
                ok = now == v
                same &= ok
                print(f"{name:<12} {k:<15} {'identical' if ok else 'DIFFERENT'}")
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
