"""The four stages' work in one process, through the library functions only (no DVC, no MLflow),
timed per stage: for comparing GAN settings quickly and for machines without dvc/mlflow.

    python bench/pipeline_inprocess.py --set train_gan.steps=3000 train_gan.loss=bce
    python bench/pipeline_inprocess.py --compare "train_gan.arch=mlp" "train_gan.arch=dcgan"

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
from overrides import with_overrides

from pipeline.balance import balance_plan
from pipeline.config import Config, parse_config
from pipeline.data import Split, prepare_dataset
from pipeline.device import resolve_device
from pipeline.evaluate import evaluate_variants
from pipeline.gan.train import fit, sample

ROOT = Path(__file__).resolve().parents[1]


def config_with(overrides: list[str]) -> Config:
    params = with_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    return parse_config(params, source=f"params.yaml + {overrides}")


def run(cfg: Config, device: torch.device) -> dict[str, object]:
    times: dict[str, float] = {}
    t = time.perf_counter()
    data = prepare_dataset(cfg.data, cfg.prepare, seed=cfg.seed)
    train, test = data.splits["train"], data.splits["test"]
    n_classes = len(data.class_names)
    times["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    result = fit(train.images, train.labels, cfg.train_gan, n_classes=n_classes, seed=cfg.seed,
                 device=device)
    times["train_gan"] = time.perf_counter() - t

    t = time.perf_counter()
    plan = balance_plan(data.report["counts"]["train"], target=cfg.generate.target,
                        count=cfg.generate.count, ratio=cfg.generate.ratio)
    labels = np.repeat(np.arange(n_classes), [plan[c] for c in range(n_classes)])
    seeds = cfg.seed * 2**32 + np.arange(len(labels), dtype=np.int64)
    images = sample(result.state.G_ema, labels, seeds, latent_dim=cfg.train_gan.latent_dim,
                    device=device, batch_size=cfg.generate.batch_size)
    times["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = evaluate_variants(train, Split(images, labels), test, cfg.evaluate,
                               n_classes=n_classes, seed=cfg.seed, device=device)
    times["evaluate"] = time.perf_counter() - t
    return {"times": times, "metrics": {v: r.metrics for v, r in scores.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every configuration")
    parser.add_argument("--compare", nargs="*", default=[""],
                        help="configurations to compare, each a space-separated override list")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"device: {device} ({gpu}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| config | prepare s | train_gan s | generate s | evaluate s | variant | "
          "bal. acc [95% CI] | Δ vs real [95% CI] | minority recall [95% CI] | macro F1 | AUC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.compare:
        overrides = args.set + spec.split()
        out = run(config_with(overrides), device)
        t = out["times"]
        for variant, m in out["metrics"].items():
            vs = m.get("vs_real", {})
            delta = (f"{vs['balanced_accuracy_delta']:+.3f} "
                     f"{_ci(vs['balanced_accuracy_delta_ci95'])}" if vs else "—")
            print(f"| {spec or 'params.yaml'} | {t['prepare']:.1f} | {t['train_gan']:.1f} | "
                  f"{t['generate']:.1f} | {t['evaluate']:.1f} | {variant} | "
                  f"{m['balanced_accuracy']:.3f} {_ci(m.get('balanced_accuracy_ci95'))} | "
                  f"{delta} | {m['minority_recall']:.3f} {_ci(m.get('minority_recall_ci95'))} | "
                  f"{m['macro_f1']:.3f} | {m['roc_auc']:.3f} |", flush=True)


def _ci(bounds: list[float] | None) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""


if __name__ == "__main__":
    main()
