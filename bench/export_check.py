"""Check a finished pipeline's export against its metrics (the issue's BreastMNIST bar).

In a project where `dvc repro` has run (any data source, any `export.format`): the export's class
counts per split equal the real counts of metrics/prepare.json plus, for the training split, the
chosen share's synthetic counts (metrics/evaluate.json's `selection.gan`, through
`synthetic_counts`), and the datasheet's figures equal metrics/*.json. Prints each check.

    python bench/export_check.py /path/to/project
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.variants import synthetic_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    root = parser.parse_args().project
    m = {n: json.loads((root / "metrics" / f"{n}.json").read_text())
         for n in ("prepare", "generate", "evaluate", "export", "train_gan")}
    names, k = m["prepare"]["class_names"], m["prepare"]["n_classes"]
    table = pd.read_csv(next(p for p in (root / "data/export/manifest.csv",
                                         root / "data/export/dataset.csv") if p.is_file()),
                        keep_default_na=False, dtype={"label": str})
    chosen = m["evaluate"]["selection"]["gan"]
    train_real = np.repeat(np.arange(k), [m["prepare"]["counts"]["train"][str(c)]
                                          for c in range(k)])
    ratio = chosen.split("@")[1] if chosen and "@" in chosen else None
    share = synthetic_counts(train_real, k, ratio if ratio == "balance" else float(ratio)
                             ) if ratio else None
    for split in ("train", "val", "test"):
        rows = table[table["split"] == split]
        real = rows[~rows["synthetic"]]["label"].value_counts().reindex(names, fill_value=0)
        synth = rows[rows["synthetic"]]["label"].value_counts().reindex(names, fill_value=0)
        want_real = [m["prepare"]["counts"][split][str(c)] for c in range(k)]
        want_synth = [share[c] for c in range(k)] if split == "train" and share else [0] * k
        if split == "train" and not share:
            want_synth = synth.tolist()  # gan_pretrain or no choice: reported, not derived
        ok = real.tolist() == want_real and synth.tolist() == want_synth
        print(f"{split}: real {real.tolist()} (prepare.json {want_real}), synthetic "
              f"{synth.tolist()} (share {chosen}: {want_synth}): {'OK' if ok else 'MISMATCH'}")
    sheet = (root / "data/export/DATASHEET.md").read_text()
    g, h = m["generate"], m["evaluate"]["headline"]
    lo, hi = h.get("balanced_accuracy_delta_ci95", [None, None])
    expect = [f"| memorization rate | {g['memorization_rate']:.4f} |",
              f"| memorization threshold | {g['memorization_threshold']:.4f} |",
              f"| checkpoint sha256 | {g['checkpoint_sha256']} |",
              f"| fid_domain | {m['train_gan']['fid_domain']:.4f} |",
              f"| chosen configuration | {chosen} |",
              f"| balanced accuracy difference (test) | {h['balanced_accuracy_delta']:.4f} |",
              f"| its 95% interval | [{lo:.4f}, {hi:.4f}] |"]
    for c, name in enumerate(names):
        r = m["export"]["real_per_class"][str(c)]
        s = m["export"]["synthetic_per_class"][str(c)]
        expect.append(f"| {name} | {r} | {s} | {r + s} | {m['prepare']['counts']['val'][str(c)]} "
                      f"| {m['prepare']['counts']['test'][str(c)]} |")
    for line in expect:
        print(f"datasheet {'OK' if line in sheet else 'MISSING'}: {line}")
    warned = next((ln for ln in sheet.splitlines() if ln.startswith("> **Warning")), "none")
    print(f"warning: {warned[:120]}")


if __name__ == "__main__":
    main()
