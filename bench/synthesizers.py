"""Every synthesis method at the same wall-clock budget on one MedMNIST .npz, scored in one
feature space: fid_domain, kid_domain, precision/recall/coverage, TSTR (validation split),
per-class fid_domain, steps reached and ADA's final p; per-class grids and ADA p histories are
written to --out.

    OMP_NUM_THREADS=1 python bench/synthesizers.py --data ../shared/data/breastmnist.npz \
        --seconds 300 --out bench/out/synthesizers

Library functions only (no DVC, no MLflow). Each configuration trains through its method's
`train` (pipeline/synthesizers) until --seconds of training have passed (checked every
`--check-every` steps through the quality hook, which therefore never scores anything during
training); the EMA generator at that step is scored once, with the shared feature extractor
(trained once on the real training split) and the TSTR classifier scored on the validation split.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from gan_variants import ROOT
from overrides import medmnist, with_overrides

from pipeline.artifacts import grid_scale, image_grid, save_png
from pipeline.config import parse_config
from pipeline.data import prepare_dataset
from pipeline.device import resolve_device
from pipeline.features import train_extractor
from pipeline.gan.quality import QualityProbe
from pipeline.synthesizers.registry import METHODS, method_module

# A method's rows when it has other than one row named after it with params.yaml's settings:
# method -> {row name: overrides}
VARIANTS = {
    "dcgan": {"dcgan (default)": []},
    "stylegan": {"stylegan + ADA": ["stylegan.ada=true"],
                 "stylegan, no ADA": ["stylegan.ada=false"]},
}
# name -> params overrides on top of params.yaml (+ --set): every method of the registry
CONFIGS = {name: [f"train_gan.method={method}", *overrides] for method in METHODS
           for name, overrides in VARIANTS.get(method, {method: []}).items()}
COLUMNS = ["fid_domain", "kid_domain", "precision", "recall", "coverage",
           "tstr_balanced_accuracy"]


class Budget(Exception):
    """Raised from the quality hook when the training budget is spent; carries the model."""

    def __init__(self, synthesizer) -> None:
        super().__init__()
        self.synthesizer = synthesizer


def train_for(seconds: float, method: str, train, cfg, *, n_classes: int, device):
    """(synthesizer at the first check past `seconds`, log rows, training seconds)."""
    rows: list[dict] = []
    start = time.perf_counter()

    def deadline(synthesizer) -> dict[str, float]:
        if time.perf_counter() - start >= seconds:
            raise Budget(synthesizer)
        return {"fid_domain": 0.0}

    try:
        done = method_module(method).train(
            train.images, train.labels, cfg, n_classes=n_classes, device=device,
            quality=deadline, log=lambda m, step: rows.append({"step": step, **m}))
        synthesizer = done.synthesizer  # train_gan.steps reached before the budget
    except Budget as b:
        synthesizer = b.synthesizer
    return synthesizer, rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a MedMNIST-style .npz")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--seconds", type=float, default=300, help="training seconds per config")
    parser.add_argument("--check-every", type=int, default=10, help="steps between time checks")
    parser.add_argument("--set", nargs="*", default=[], help="params overrides for every config")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--out", default="bench/out/synthesizers")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    base = with_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), [
        *medmnist(args.data, image_size=args.image_size), "train_gan.steps=1000000", f"train_gan.eval_every={args.check_every}",
        f"train_gan.log_every={args.check_every}", *args.set])
    cfg = parse_config(base, source="bench")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.seconds:.0f} s of training per config")
    data = prepare_dataset(cfg.data, cfg.prepare, seed=cfg.seed)
    train, val = data.splits["train"], data.splits["val"]
    n_classes = len(data.class_names)
    counts = np.bincount(train.labels, minlength=n_classes)
    minority = int(np.argmin(counts))
    print(f"classes {data.class_names}, train counts {counts.tolist()}, val {len(val.labels)}; "
          f"minority class {minority} ({data.class_names[minority]})")
    t = time.perf_counter()
    extractor = train_extractor(train.images, train.labels, cfg.features, n_classes=n_classes,
                                seed=cfg.seed, device=device)
    print(f"feature extractor: {time.perf_counter() - t:.1f} s", flush=True)
    probe = QualityProbe(extractor, train.images, train.labels, val.images, val.labels,
                         cfg.features, n_classes=n_classes, device=device, seed=cfg.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for config in args.configs:
        vcfg = parse_config(with_overrides(base, CONFIGS[config]), source=config)
        synthesizer, rows, seconds = train_for(args.seconds, vcfg.train_gan.method, train, vcfg,
                                               n_classes=n_classes, device=device)
        metrics = probe(synthesizer)
        history = pd.DataFrame(rows)
        steps = int(history["step"].iloc[-1]) if len(history) else 0
        ada_p = float(history["ada_p"].iloc[-1]) if "ada_p" in history else float("nan")
        results.append({"config": config, **metrics, "steps": steps, "seconds": seconds,
                        "ada_p": ada_p})
        slug = config.split(" (")[0].replace(" + ", "-").replace(", ", "-").replace(" ", "-")
        history.to_csv(out / f"{slug}_history.csv", index=False)  # losses and ADA's p by step
        labels = np.repeat(np.arange(n_classes), 12)
        fakes = synthesizer.sample(labels, np.arange(len(labels)))
        grid = []
        for c in range(n_classes):
            grid += [train.images[train.labels == c][:12], fakes[labels == c]]
        save_png(out / f"{slug}.png", image_grid(grid, scale=grid_scale(args.image_size)))
        print(f"{config}: {steps} steps in {seconds:.0f} s, "
              f"fid_domain {metrics['fid_domain']:.3g}, class {minority} fid_domain {metrics[f'fid_domain/class_{minority}']:.3g}",
              flush=True)
    _table(results, n_classes, minority, data.class_names)


def _table(results: list[dict], n_classes: int, minority: int, names: list[str]) -> None:
    per_class = [f"fid_domain/class_{c}" for c in range(n_classes)]
    header = ["config", *COLUMNS, *[f"fid {names[c]}" for c in range(n_classes)], "steps",
              "train s", "ADA p (final)"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        cells = [r["config"], *[f"{r[k]:.4g}" for k in COLUMNS],
                 *[f"**{r[k]:.4g}**" if k.endswith(f"_{minority}") else f"{r[k]:.4g}"
                   for k in per_class],
                 str(r["steps"]), f"{r['seconds']:.0f}",
                 "-" if np.isnan(r["ada_p"]) else f"{r['ada_p']:.3f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
