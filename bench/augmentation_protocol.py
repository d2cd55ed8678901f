"""The augmentation protocol on a MedMNIST file: does the validation-chosen GAN configuration beat
the best non-GAN variant on the test split?

    python bench/augmentation_protocol.py --data ../shared/data/breastmnist.npz
    python bench/augmentation_protocol.py --data ... --set train_gan.steps=2000 evaluate.seeds=5

Runs prepare, features, train_gan, generate (scored pool) and evaluate in one process (no DVC, no
MLflow), with every variant of the protocol: real without and with classifier augmentation,
class_weight, oversample, smote, gan (selected) and gan_random (unselected) at every synthetic
share, and gan_pretrain. Every choice is made on the validation split; the test split is scored
once. Prints one row per variant: validation balanced accuracy (what selection sees), test balanced
accuracy with its 95% interval, the paired difference against the validation-chosen baseline,
minority recall, ROC AUC; then the selection and the headline.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from overrides import medmnist
from pipeline_inprocess import config_with, run

from pipeline.device import resolve_device

PROTOCOL = [
    "evaluate.variants=[real, real_noaug, class_weight, oversample, smote, gan, gan_random, "
    "gan_pretrain]",
    "evaluate.synthetic_ratios=[0.25, 0.5, 1, balance]",
    "evaluate.seeds=5",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a MedMNIST-style .npz")
    parser.add_argument("--classes", default="[malignant, benign]",
                        help="class names in label order (YAML list)")
    parser.add_argument("--set", nargs="*", default=[], help="further params overrides")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the evaluate metrics here")
    args = parser.parse_args()
    device = resolve_device(args.device)
    overrides = [*medmnist(args.data), f"data.classes={args.classes}", *PROTOCOL, *args.set]
    cfg = config_with(overrides)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; overrides: {args.set or 'none'}")
    start = time.perf_counter()
    out = run(cfg, device)
    comparison = out["comparison"]
    print("seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in out["times"].items())
          + f"; total {time.perf_counter() - start:.0f}")
    q = out["quality"]
    print(f"generator kept at step {q['step']}: fid_domain {q['fid_domain']:.2f}, "
          f"TSTR (validation) {q.get('tstr_balanced_accuracy', float('nan')):.3f}; generate: "
          f"{json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out['generate'].items()})}")
    base = comparison.selection["baseline"]
    print(f"\n| variant | synthetic | val bal. acc | test bal. acc [95% CI] | Δ vs {base} "
          "[paired 95% CI] | minority recall [95% CI] | ROC AUC |")
    print("|---|---|---|---|---|---|---|")
    for variant, m in out["metrics"].items():
        vs = m.get("vs_baseline")
        delta = "—" if vs is None else (f"{vs['balanced_accuracy_delta']:+.3f} "
                                         f"{_ci(vs.get('balanced_accuracy_delta_ci95'))}")
        print(f"| {variant} | {m['n_synthetic'] or m['n_pretrain'] or 0} | "
              f"{m['val_balanced_accuracy']:.3f} | {m['balanced_accuracy']:.3f} "
              f"{_ci(m.get('balanced_accuracy_ci95'))} | {delta} | {m['minority_recall']:.3f} "
              f"{_ci(m.get('minority_recall_ci95'))} | {m['roc_auc']:.3f} |")
    h = comparison.headline
    print(f"\nselection (validation, {comparison.selection['by']}): gan={h['gan']}, "
          f"baseline={h['baseline']}")
    print(f"headline (test, {h['n_test']} images, {h['n_seeds']} seeds): {h['gan']} - "
          f"{h['baseline']}: balanced accuracy {h['balanced_accuracy_delta']:+.3f} "
          f"{_ci(h.get('balanced_accuracy_delta_ci95'), signed=True)} (width "
          f"{h.get('balanced_accuracy_delta_ci95_width', float('nan')):.3f}), minority recall "
          f"{h['minority_recall_delta']:+.3f} {_ci(h.get('minority_recall_delta_ci95'), signed=True)}"
          f", ROC AUC {h['roc_auc_delta']:+.3f}")
    goal = h["balanced_accuracy_delta"] >= 0.02 and h["roc_auc_delta"] >= 0
    print(f"goal (>= +0.02 balanced accuracy, no loss of AUC): {'MET' if goal else 'NOT MET'}")
    if args.json:
        args.json.write_text(json.dumps(comparison.as_json(), indent=2))


def _ci(bounds: list[float] | None, *, signed: bool = False) -> str:
    if not bounds:
        return ""
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"[{fmt.format(bounds[0])}, {fmt.format(bounds[1])}]"


if __name__ == "__main__":
    main()
