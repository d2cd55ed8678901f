"""Every GAN variant on one dataset with the same step budget, scored in one run: fid_domain,
kid_domain, precision/recall/density/coverage (overall and per class), TSTR balanced accuracy and
training time; per-class sample grids are written for inspection.

    python bench/gan_variants.py --data ../shared/data/breastmnist.npz --steps 800 \
        --set dcgan.width=16 --grids bench/out/gan_variants

Library functions only (no DVC, no MLflow). The feature extractor is trained once, so every variant
is scored in the same feature space; each variant keeps its best generator by fid_domain, as the
train_gan stage does.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from overrides import medmnist, with_overrides
from sklearn.metrics import balanced_accuracy_score

from pipeline.artifacts import grid_scale, image_grid, save_png
from pipeline.classify import predict_proba
from pipeline.config import parse_config
from pipeline.data import prepare_dataset
from pipeline.device import resolve_device
from pipeline.features import train_extractor
from pipeline.quality import QualityProbe, tstr_balanced_accuracy
from pipeline.synthesizers import dcgan

ROOT = Path(__file__).resolve().parents[1]
SEED_RECIPE = ["dcgan.spectral_norm=false", "dcgan.diffaugment=[]",
               "dcgan.balanced_sampling=false"]
# name -> train_gan overrides on top of params.yaml (+ --set)
VARIANTS = {
    "mlp-bce (seed vanilla GAN)": ["dcgan.arch=mlp", "dcgan.loss=bce", *SEED_RECIPE],
    "dcgan-bce (seed DCGAN)": ["dcgan.arch=dcgan", "dcgan.loss=bce", *SEED_RECIPE],
    "dcgan-wgan-gp": ["dcgan.loss=wgan-gp", "dcgan.spectral_norm=false",
                      "dcgan.d_steps=2", "dcgan.lr_d=0.0001", "dcgan.lr_g=0.0001",
                      "dcgan.betas=[0.0, 0.9]", "dcgan.diffaugment=[]"],
    "dcgan-wgan-gp-d1": ["dcgan.loss=wgan-gp", "dcgan.spectral_norm=false",
                         "dcgan.d_steps=1", "dcgan.lr_d=0.0001", "dcgan.lr_g=0.0001",
                         "dcgan.betas=[0.0, 0.9]", "dcgan.diffaugment=[]"],
    "dcgan-hinge-sn": ["dcgan.loss=hinge", "dcgan.diffaugment=[]"],
    "dcgan-hinge-sn-diffaug": ["dcgan.loss=hinge",
                               "dcgan.diffaugment=[translation, cutout]"],
    "dcgan-hinge-sn-diffaug-r1": ["dcgan.loss=hinge",
                                  "dcgan.diffaugment=[translation, cutout]",
                                  "dcgan.r1_gamma=0.1"],
}
COLUMNS = ["fid_domain", "kid_domain", "precision", "recall", "density", "coverage",
           "tstr_balanced_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a MedMNIST-style .npz")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--set", nargs="*", default=[], help="params overrides for every variant")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--grids", default=None, help="folder for one per-class grid per variant")
    parser.add_argument("--tstr-seeds", type=int, default=1,
                        help="TSTR of the kept generator as the mean over this many classifier "
                             "seeds (one seed is noisy on a 78-image validation split)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    base = with_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), [
        *medmnist(args.data, image_size=args.image_size), f"train_gan.steps={args.steps}",
        *args.set])
    cfg = parse_config(base, source="bench")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.steps} generator steps per variant")

    data = prepare_dataset(cfg.data, cfg.prepare, seed=cfg.seed)
    # TSTR/TRTR on validation, as train_gan does: comparing GAN variants is a choice, and choices
    # never look at the test split
    train, val = data.splits["train"], data.splits["val"]
    n_classes = len(data.class_names)
    print(f"train class counts {np.bincount(train.labels).tolist()}, validation {len(val.labels)}")
    t = time.perf_counter()
    extractor = train_extractor(train.images, train.labels, cfg.features, n_classes=n_classes,
                                seed=cfg.seed, device=device)
    trtr = balanced_accuracy_score(
        val.labels, predict_proba(extractor, val.images, device=device).argmax(axis=1))
    print(f"feature extractor: {time.perf_counter() - t:.1f} s; TRTR balanced accuracy {trtr:.3f}")

    header = ["variant", *COLUMNS, *[f"fid_domain/class_{c}" for c in range(n_classes)],
              "best step", "train s", "s/step"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    for variant in args.variants:
        vcfg = parse_config(with_overrides(base, VARIANTS[variant]), source=variant)
        probe = QualityProbe(extractor, train.images, train.labels, val.images, val.labels,
                             cfg.features, n_classes=n_classes, device=device, seed=cfg.seed)
        quality_seconds = []

        def timed(G, probe=probe, quality_seconds=quality_seconds):
            t0 = time.perf_counter()
            out = probe(G)
            quality_seconds.append(time.perf_counter() - t0)
            return out

        result = dcgan.train(train.images, train.labels, vcfg, n_classes=n_classes,
                             device=device, quality=timed)
        train_s = result.seconds - sum(quality_seconds)
        best = dict(result.best)
        synthesizer = result.synthesizer  # the best generator by fid_domain
        if args.tstr_seeds > 1:
            fakes = probe.samples(synthesizer)
            scores = [best["tstr_balanced_accuracy"]] + [
                tstr_balanced_accuracy(fakes, probe.fake_labels, val.images, val.labels,
                                       cfg.features, n_classes=n_classes, seed=cfg.seed + i,
                                       device=device)
                for i in range(1, args.tstr_seeds)]
            best["tstr_balanced_accuracy"] = float(np.mean(scores))
            best["tstr_sd"] = float(np.std(scores, ddof=1))
        tstr_sd = f" ± {best['tstr_sd']:.3f}" if "tstr_sd" in best else ""
        row = [variant, *[f"{best[k]:.4g}" for k in COLUMNS[:-1]],
               f"{best['tstr_balanced_accuracy']:.3f}{tstr_sd}",
               *[f"{best.get(f'fid_domain/class_{c}', float('nan')):.4g}"
                 for c in range(n_classes)],
               str(best["step"]), f"{train_s:.0f}", f"{train_s / args.steps:.3f}"]
        print("| " + " | ".join(row) + " |", flush=True)
        if args.grids:
            labels = np.repeat(np.arange(n_classes), 12)
            fakes = synthesizer.sample(labels, np.arange(len(labels)))
            rows = []
            for c in range(n_classes):
                rows += [train.images[train.labels == c][:12], fakes[labels == c]]
            slug = variant.split(" ")[0]
            save_png(Path(args.grids) / f"{slug}.png",
                     image_grid(rows, scale=grid_scale(args.image_size)))
    print("per-class grids: real row, then synthetic row, for each class"
          + (f" -> {args.grids}" if args.grids else ""))


if __name__ == "__main__":
    main()
