"""The shortcut issue measured: can a classifier tell the synthetic images from real ones, and do
the remedies keep synthetic images from costing the minority class recall?

    python bench/shortcut.py                                   # the digits demo (params.yaml)
    python bench/shortcut.py --data ../shared/data/breastmnist.npz --protocol

Runs prepare, features, train_gan and generate in one process (pipeline_inprocess.run; no DVC,
no MLflow), then prints, per class, the shortcut test's ROC AUC (pixels and features, 95% CI) for
the three synthetic sets of generate's `shortcut` metrics: today's selection (`generate.score`),
the most real-looking by the cross-fitted realness (selection by indistinguishability), and
unselected draws. With --protocol, evaluate's variants (PROTOCOL below, chosen on validation,
test scored once): balanced accuracy and minority recall of each variant against `real` and
against `class_weight`, with paired 95% intervals (test images and seeds resampled together).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from augmentation_protocol import _ci
from overrides import medmnist
from pipeline_inprocess import config_with, run

from pipeline.device import resolve_device
from pipeline.evaluate import bootstrap_draws, paired
from pipeline.synthesize import SHORTCUT_SETS, shortcut_summary

PROTOCOL = [
    "evaluate.variants=[real, class_weight, oversample, gan, gan_random, gan_real, gan_mix, "
    "gan_downweight]",
    "evaluate.synthetic_ratios=[0.5, 1, balance]",
]
QUICK = ["evaluate.variants=[real]", "evaluate.seeds=1", "evaluate.steps=1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a MedMNIST-style .npz (default: params.yaml's data)")
    parser.add_argument("--classes", default="[malignant, benign]",
                        help="class names in label order with --data (YAML list)")
    parser.add_argument("--protocol", action="store_true", help="also run evaluate's protocol")
    parser.add_argument("--set", nargs="*", default=[], help="further params overrides")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="write every number here too")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = [*medmnist(args.data), f"data.classes={args.classes}"] if args.data else []
    cfg = config_with([*data, *(PROTOCOL if args.protocol else QUICK), *args.set])
    print(f"device: {device} ({platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; data {args.data or cfg.data.source}; overrides "
          f"{args.set or 'none'}")
    start = time.perf_counter()
    out = run(cfg, device)
    train, val, test = out["splits"]
    short = shortcut_summary(out["synth"], extractor=out["extractor"], device=device,
                             train_images=train.images, train_labels=train.labels,
                             val_images=val.images, val_labels=val.labels, seed=cfg.seed)
    print(f"stages: {', '.join(f'{k} {v:.0f} s' for k, v in out['times'].items())}; "
          f"generate: score {cfg.generate.score}, candidates quantised to "
          f"{len(out['generate'].get('grey_levels') or []) or 'no'} grey levels\n")
    print_shortcut(short)
    result = {"shortcut": short, "generate": out["generate"]}
    if args.protocol:
        result["protocol"] = print_protocol(out, test.labels, cfg.evaluate.bootstrap, cfg.seed)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))


def print_shortcut(short: dict) -> None:
    print("| class | " + " | ".join(f"{k}: pixels AUC [95% CI] | {k}: features AUC"
                                     for k in SHORTCUT_SETS) + " |")
    print("|---" * (1 + 2 * len(SHORTCUT_SETS)) + "|")
    for c in short["selected"]:
        cells = []
        for k in SHORTCUT_SETS:
            for kind in ("pixels", "features"):
                t = short[k][c][kind]
                cells.append(f"{t['auc']:.3f} {_ci(t.get('auc_ci95'))}" if t["measured"]
                             else "not measured")
        n = short["selected"][c]["pixels"]
        print(f"| {c} (real held {n['n_real_held']}, synthetic held {n['n_synthetic_held']}) | "
              + " | ".join(cells) + " |")


def print_protocol(out: dict, y_test: np.ndarray, n_boot: int, seed: int) -> dict:
    comparison = out["comparison"]
    results = comparison.variants
    minority = next(iter(results.values())).metrics["minority_class"]
    draws = bootstrap_draws(results, y_test, minority=minority, n_boot=n_boot, seed=seed)
    print("\n| variant | val bal. acc | test bal. acc | minority recall | Δ bal. acc vs real "
          "| Δ recall vs real | Δ bal. acc vs class_weight | Δ recall vs class_weight |")
    print("|---|---|---|---|---|---|---|---|")
    rows = {}
    for name, res in results.items():
        m = res.metrics
        vs = {b: paired(results, draws, name, b) for b in ("real", "class_weight")
              if b in results and b != name}
        rows[name] = {"val_balanced_accuracy": m["val_balanced_accuracy"],
                      "balanced_accuracy": m["balanced_accuracy"],
                      "minority_recall": m["minority_recall"], "vs": vs}
        cells = []
        for b in ("real", "class_weight"):
            for key in ("balanced_accuracy", "minority_recall"):
                d = vs.get(b)
                cells.append("—" if d is None else
                             f"{d[f'{key}_delta']:+.3f} {_ci(d.get(f'{key}_delta_ci95'), signed=True)}")
        print(f"| {name} | {m['val_balanced_accuracy']:.3f} | {m['balanced_accuracy']:.3f} | "
              f"{m['minority_recall']:.3f} | " + " | ".join(cells) + " |")
    sel = comparison.selection
    print(f"\nchosen on validation: gan={sel['gan']}, baseline={sel['baseline']}")
    return {"variants": rows, "selection": sel, "headline": comparison.headline}


if __name__ == "__main__":
    main()
