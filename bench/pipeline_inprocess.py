"""The stages' work in one process, through the library functions only (no DVC, no MLflow),
timed per stage: for comparing GAN settings quickly and for machines without dvc/mlflow.

    python bench/pipeline_inprocess.py --set train_gan.steps=3000 dcgan.loss=bce
    python bench/pipeline_inprocess.py --compare "dcgan.arch=mlp" "dcgan.arch=dcgan"
    python bench/pipeline_inprocess.py --device cuda --random-dataset 4000   # 28x28, 2 classes

prepare, features (the extractor), train_gan (with its quality evaluations), generate (with the
memorization audit) and evaluate, as the DVC stages run them.

Each configuration is a list of params overrides on top of params.yaml. Prints one table row per
configuration: seconds per stage and the evaluate metrics per variant.
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

from pipeline.balance import balance_plan
from pipeline.config import Config, parse_config
from pipeline.data import prepare_dataset
from pipeline.device import resolve_device
from pipeline.evaluate import evaluate_variants
from pipeline.features import train_extractor
from pipeline.quality import QualityProbe
from pipeline.synthesize import pool_plan, synthesize
from pipeline.synthesizers.registry import method_module

ROOT = Path(__file__).resolve().parents[1]


def config_with(overrides: list[str]) -> Config:
    params = with_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    return parse_config(params, source=f"params.yaml + {overrides}")


def run(cfg: Config, device: torch.device) -> dict[str, object]:
    times: dict[str, float] = {}
    t = time.perf_counter()
    data = prepare_dataset(cfg.data, cfg.prepare, seed=cfg.seed)
    train, val, test = (data.splits[k] for k in ("train", "val", "test"))
    n_classes = len(data.class_names)
    times["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    extractor = train_extractor(train.images, train.labels, cfg.features, n_classes=n_classes,
                                seed=cfg.seed, device=device)
    times["features"] = time.perf_counter() - t

    t = time.perf_counter()
    probe = QualityProbe(extractor, train.images, train.labels, val.images, val.labels,
                         cfg.features, n_classes=n_classes, device=device, seed=cfg.seed)
    result = method_module(cfg.train_gan.method).train(
        train.images, train.labels, cfg, n_classes=n_classes, device=device, quality=probe)
    times["train_gan"] = time.perf_counter() - t

    t = time.perf_counter()
    counts = data.report["counts"]["train"]
    plan = balance_plan(counts, target=cfg.generate.target, count=cfg.generate.count,
                        ratio=cfg.generate.ratio)
    candidates = pool_plan(plan, counts, candidates_per_image=cfg.generate.candidates_per_image)
    synth = synthesize(result.synthesizer, candidates, seed=cfg.seed, device=device,
                       extractor=extractor, train_images=train.images, train_labels=train.labels,
                       val_images=val.images, reject_memorized=cfg.generate.reject_memorized,
                       quality_gate=cfg.generate.quality_gate,
                       batch_size=cfg.generate.batch_size, score=cfg.generate.score)
    times["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    comparison = evaluate_variants(train, val, test, synth.pool, cfg.evaluate,
                                   n_classes=n_classes, seed=cfg.seed, device=device)
    times["evaluate"] = time.perf_counter() - t
    return {"times": times, "metrics": comparison.as_json()["variants"],
            "comparison": comparison, "quality": result.best, "generate": synth.stats,
            "pool": synth.pool, "synth": synth, "extractor": extractor,
            "splits": (train, val, test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every configuration")
    parser.add_argument("--compare", nargs="*", default=[""],
                        help="configurations to compare, each a space-separated override list")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--random-dataset", type=int, default=0, metavar="N",
                        help="instead of params.yaml's data: N random 28x28 images, 2 classes "
                             "(1:9), written as a MedMNIST-style .npz and prepared from it")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.random_dataset:
        args.set = [*_random_dataset(args.random_dataset), *args.set]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"device: {device} ({gpu}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| config | prepare s | features s | train_gan s | generate s | evaluate s | total s | "
          "variant | bal. acc [95% CI] | Δ vs real [95% CI] | minority recall [95% CI] | "
          "macro F1 | AUC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.compare:
        overrides = args.set + spec.split()
        out = run(config_with(overrides), device)
        t = out["times"]
        for variant, m in out["metrics"].items():
            vs = m.get("vs_real", {})
            delta = (f"{vs['balanced_accuracy_delta']:+.3f} "
                     f"{_ci(vs['balanced_accuracy_delta_ci95'])}" if vs else "—")
            print(f"| {spec or 'params.yaml'} | {t['prepare']:.1f} | {t['features']:.1f} | "
                  f"{t['train_gan']:.1f} | {t['generate']:.1f} | {t['evaluate']:.1f} | "
                  f"{sum(t.values()):.1f} | {variant} | "
                  f"{m['balanced_accuracy']:.3f} {_ci(m.get('balanced_accuracy_ci95'))} | "
                  f"{delta} | {m['minority_recall']:.3f} {_ci(m.get('minority_recall_ci95'))} | "
                  f"{m['macro_f1']:.3f} | {m['roc_auc']:.3f} |", flush=True)


def _random_dataset(n: int) -> list[str]:
    """A blob-on-noise two-class dataset (minority 10%) as a MedMNIST-style .npz in a temp dir."""
    import tempfile

    rng = np.random.default_rng(0)
    labels = (rng.random(n) < 0.1).astype(np.int64)
    images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    images[labels == 1, 8:20, 8:20] += 150
    n_val = n_test = n // 10
    path = Path(tempfile.mkdtemp()) / "random.npz"
    splits = {"train": slice(n_val + n_test, None), "val": slice(0, n_val),
              "test": slice(n_val, n_val + n_test)}
    np.savez(path, **{f"{k}_images": images[s] for k, s in splits.items()},
             **{f"{k}_labels": labels[s] for k, s in splits.items()})
    return medmnist(path)


def _ci(bounds: list[float] | None) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""


if __name__ == "__main__":
    main()
