"""Does the validation choice hold? evaluate rerun with several classifier seed sets on one
prepared dataset and one synthetic pool: how often each selection rule picks the same
(GAN configuration, baseline) pair.

    # 1. a prepared dataset and a pool: any pipeline run, e.g. in a temporary copy
    #    (dvc repro generate with train_gan.steps=600); then
    OMP_NUM_THREADS=1 python bench/selection_stability.py --prepared DIR/data/prepared \
        --pool DIR/data/synthetic/pool.npz --sets 5 --set evaluate.width=16

Seed set k trains every variant with evaluate seeds k*S .. k*S+S-1 (S = evaluate.seeds), disjoint
sets. Each set's fits are made once; every rule (SELECTION_RULES) is applied to the same
validation probabilities: `max` is the rule before issue 21, `one_se` the default. Each set's
selection is appended to --out (JSON lines) as it finishes, so a cut-short run keeps what it did.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
from pipeline_inprocess import config_with

from pipeline.artifacts import Split, load_split
from pipeline.evaluate import evaluate_variants
from pipeline.pool import load_pool
from pipeline.selection import SELECTION_RULES


def one_set(k: int, args: argparse.Namespace, splits: dict[str, Split], pool) -> dict:
    cfg = args.set_cfg.evaluate
    seed = k * cfg.seeds
    start = time.perf_counter()
    comparison = evaluate_variants(
        splits["train"], splits["val"], splits["test"], pool, cfg, n_classes=args.n_classes,
        seed=seed, device=torch.device("cpu"))
    sel = comparison.selection
    picks = {rule: _pick(sel, rule) for rule in SELECTION_RULES}
    return {"set": k, "seeds": list(range(seed, seed + cfg.seeds)), "picks": picks,
            "stability_in_run": sel.get("stability"), "seconds": time.perf_counter() - start,
            "val": {n: r.metrics["val_balanced_accuracy"] for n, r in comparison.variants.items()},
            "headline_delta": comparison.headline.get("balanced_accuracy_delta"),
            "mdd80": comparison.headline.get("balanced_accuracy_mdd80")}


def _pick(sel: dict, rule: str) -> list:
    """The pair `rule` picks: the selection's own for its rule; `max` is recorded as `highest`."""
    if rule == sel["rule"]:
        return [sel["gan"], sel["baseline"]]
    if rule == "max":
        return [sel["highest"]["gan"], sel["highest"]["baseline"]]
    raise SystemExit(f"rule {rule} needs its own run: pass --set evaluate.selection={rule}")


def table(rows: list[dict]) -> str:
    lines = ["| rule | pairs picked (seed sets) | most common pair | same pair |", "|---|---|---|---|"]
    for rule in SELECTION_RULES:
        pairs = collections.Counter(tuple(r["picks"][rule]) for r in rows)
        (top, n), = pairs.most_common(1)
        shown = "; ".join(f"{g} + {b}: {c}" for (g, b), c in pairs.most_common())
        lines.append(f"| {rule} | {shown} | {top[0]} + {top[1]} | {n} of {len(rows)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True, help="train/val/test.npz folder")
    parser.add_argument("--pool", type=Path, required=True, help="generate's pool.npz")
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--first", type=int, default=0, help="first seed set (continue a run)")
    parser.add_argument("--out", type=Path, default=Path("selection_stability.jsonl"))
    parser.add_argument("--set", nargs="*", default=[], help="params overrides key=value")
    args = parser.parse_args()
    splits = {s: Split(*load_split(args.prepared / f"{s}.npz")) for s in ("train", "val", "test")}
    args.n_classes = int(max(s.labels.max() for s in splits.values())) + 1
    pool = load_pool(args.pool)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()
            if json.loads(line)["set"] < args.first] if args.out.exists() else []
    cfg = config_with(args.set)  # read once: params.yaml may change while this runs
    args.set_cfg = cfg
    for k in range(args.first, args.sets):
        rows.append(one_set(k, args, splits, pool))
        with args.out.open("a") as f:
            f.write(json.dumps(rows[-1]) + "\n")
        print(f"set {k}: {rows[-1]['picks']} ({rows[-1]['seconds']:.0f} s)", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}; commit {commit}; overrides {args.set}")
    print(table(rows))


if __name__ == "__main__":
    main()
