"""Where do synthetic images pay off? The pipeline over a grid of minority counts x synthesis
methods, as DVC experiments, collected into one page (docs/study.md).

    OMP_NUM_THREADS=1 python bench/regime.py --class malignant --counts 10 25 50 147 \
        --methods dcgan stylegan --data ../shared/data/breastmnist.npz \
        --set data.source=medmnist "data.classes=[malignant, benign]" prepare.image_size=28

Each point is one `dvc exp run --temp -n <prefix>-<class><count>-<method>` with
`-S prepare.imbalance=counts -S ++prepare.keep_counts={<class>:<count>}
-S train_gan.method=<method>` plus every `--set` (tiny runs: `--set train_gan.steps=200 ...`),
one after another (parallel workers would fight over the cores): `dvc exp show` lists them and
`dvc exp apply <name>` restores one. A point whose experiment already exists is not rerun, so a
cut-short study continues where it stopped. A failed point is reported as failed; the others
still land. The stages tag their MLflow runs with prepare.keep_counts and train_gan.method
(pipeline/stage.py); MLFLOW_TRACKING_URI defaults to this project's mlflow.db, so the runs of
the temporary copies land there.

Results come from `dvc exp show --json` (evaluate.json of each experiment) and go to
`--out` (default regime/regime.html, beside regime.json): the validation-chosen synthetic
configuration against class_weight and against real, paired 95% intervals, per count and
method, and one sentence per method. Outside `reports/`, which is the report stage's DVC output
(`dvc repro` would delete anything else in it).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

REFERENCES = ("class_weight", "real")  # what the chosen synthetic configuration is held against
METRICS = (("balanced_accuracy", "Δ balanced accuracy"), ("minority_recall", "Δ minority recall"))


def point_name(prefix: str, cls: str, count: int, method: str) -> str:
    """An experiment name git accepts as a ref: letters, digits, - and _ only."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in f"{cls}{count}")
    return f"{prefix}-{safe}-{method}"


def exp_args(cls: str, count: int, method: str, overrides: list[str]) -> list[str]:
    args = ["-S", "prepare.imbalance=counts", "-S", f"++prepare.keep_counts={{{cls}:{count}}}",
            "-S", f"train_gan.method={method}"]
    for item in overrides:
        args += ["-S", item]
    return args


def run_point(dvc: str, project: Path, name: str, args: list[str], env: dict[str, str]) -> dict:
    """One experiment; its status, seconds and (failed) the end of its output."""
    start = time.perf_counter()
    proc = subprocess.run([dvc, "exp", "run", "--temp", "-n", name, *args], cwd=project,
                          env=env, capture_output=True, text=True)
    out = {"status": "ok" if proc.returncode == 0 else "failed",
           "seconds": round(time.perf_counter() - start, 1)}
    if proc.returncode != 0:
        out["error"] = (proc.stderr.strip() or proc.stdout.strip())[-600:]
    return out


def experiments(dvc: str, project: Path, env: dict[str, str]) -> dict[str, dict]:
    """name -> {"params": params.yaml, "evaluate": metrics/evaluate.json} of every experiment
    `dvc exp show --json` lists (those of the current commit). evaluate.json is read from the
    experiment's commit (it is committed, cache: false): `dvc exp show` drops its intervals."""
    proc = subprocess.run([dvc, "exp", "show", "--json"], cwd=project, env=env,
                          capture_output=True, text=True, check=True)
    found: dict[str, dict] = {}
    for baseline in json.loads(proc.stdout):
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                shown = ((data.get("metrics") or {}).get("metrics/evaluate.json") or {})
                found[rev.get("name") or exp.get("name")] = {
                    "params": ((data.get("params") or {}).get("params.yaml") or {}).get("data"),
                    "evaluate": _committed(project, rev.get("rev"), env) or shown.get("data")}
    return found


def _committed(project: Path, rev: str | None, env: dict[str, str]) -> dict | None:
    proc = subprocess.run(["git", "show", f"{rev}:metrics/evaluate.json"], cwd=project, env=env,
                          capture_output=True, text=True)
    return json.loads(proc.stdout) if rev and proc.returncode == 0 else None


def point_row(evaluate: dict | None) -> dict[str, Any]:
    """What the page shows of one experiment: the validation-chosen synthetic configuration and
    its paired test differences against each of REFERENCES."""
    if not evaluate or not (evaluate.get("selection") or {}).get("gan"):
        return {"status": "failed", "error": "no metrics/evaluate.json with a chosen GAN "
                "configuration (evaluate.variants needs a synthetic variant)"}
    sel, head = evaluate["selection"], evaluate.get("headline") or {}
    gan = evaluate["variants"][sel["gan"]]
    row: dict[str, Any] = {"status": "ok", "gan": sel["gan"], "baseline": sel.get("baseline"),
                           "mdd80": head.get("balanced_accuracy_mdd80"),
                           "stability": (sel.get("stability") or {}).get(sel.get("rule"))}
    for ref in REFERENCES:
        vs = gan.get(f"vs_{ref}") or {}
        for key, _ in METRICS:
            row[f"{key}_vs_{ref}"] = vs.get(f"{key}_delta")
            row[f"{key}_vs_{ref}_ci95"] = vs.get(f"{key}_delta_ci95")
    return row


def verdict_of(row: dict[str, Any], ref: str = "class_weight") -> str:
    """helped / hurt / cannot tell: where the paired 95% interval of Δ balanced accuracy lies."""
    ci = row.get(f"balanced_accuracy_vs_{ref}_ci95")
    if row.get("status") != "ok" or not ci:
        return "failed" if row.get("status") != "ok" else "cannot tell"
    return "helped" if ci[0] > 0 else "hurt" if ci[1] < 0 else "cannot tell"


def sentences(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per method: at which counts the chosen synthetic configuration helped, hurt
    or could not be told apart from class weighting (with the largest undetectable difference)."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["count"])
        parts = []
        for label in ("helped", "hurt", "cannot tell", "failed"):
            at = [r for r in mine if verdict_of(r) == label]
            if not at:
                continue
            counts = ", ".join(str(r["count"]) for r in at)
            if label == "cannot tell":
                mdds = [r["mdd80"] for r in at if isinstance(r.get("mdd80"), (int, float))]
                limit = (f" (no difference larger than {100 * max(mdds):.1f} points of balanced "
                         "accuracy detectable at 80% power)") if mdds else ""
                parts.append(f"could not be told apart from it at {counts}{limit}")
            elif label == "failed":
                parts.append(f"the run failed at {counts}")
            else:
                parts.append(f"{label} at {counts}")
        out.append(f"{method}: against class weighting, by minority training images, the "
                   "validation-chosen synthetic configuration " + "; ".join(parts) + ".")
    return out


def figure(rows: list[dict[str, Any]]) -> bytes:
    """Δ of the chosen synthetic configuration vs class_weight (left) and vs real (right), balanced
    accuracy (top) and minority recall (bottom), paired 95% intervals, one line per method."""
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(len(METRICS), len(REFERENCES), sharex=True, squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, (key, label) in enumerate(METRICS):
        for j, ref in enumerate(REFERENCES):
            ax = axes[i][j]
            ax.axhline(0, color="grey", lw=0.8)
            for k, method in enumerate(methods):
                ok = sorted((r for r in rows if r["method"] == method and r["status"] == "ok"
                             and r.get(f"{key}_vs_{ref}") is not None), key=lambda r: r["count"])
                if not ok:
                    continue
                x = [r["count"] * (1 + 0.03 * (k - (len(methods) - 1) / 2)) for r in ok]
                y = [r[f"{key}_vs_{ref}"] for r in ok]
                ci = [r.get(f"{key}_vs_{ref}_ci95") or [v, v] for r, v in zip(ok, y)]
                err = [[v - c[0] for v, c in zip(y, ci)], [c[1] - v for v, c in zip(y, ci)]]
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=method)
            ax.set_xscale("log")
            counts = sorted({r["count"] for r in rows})
            ax.set_xticks(counts, [str(c) for c in counts])
            ax.minorticks_off()
            ax.set_title(f"{label} vs {ref}", fontsize=10)
            ax.set_xlabel("minority training images (count)")
            if methods:
                ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def page(rows: list[dict[str, Any]], text: list[str], png: bytes, *, title: str) -> str:
    cells = []
    for r in sorted(rows, key=lambda r: (r["method"], r["count"])):
        def d(key: str, r: dict = r) -> str:
            v, ci = r.get(key), r.get(f"{key}_ci95")
            return "" if v is None else f"{v:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
        cells.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                r["method"], r["count"], r["name"], r["status"], r.get("gan", ""),
                d("balanced_accuracy_vs_class_weight"), d("minority_recall_vs_class_weight"),
                d("balanced_accuracy_vs_real"), d("minority_recall_vs_real"),
                "" if r.get("mdd80") is None else f"{r['mdd80']:.3f}",
                r.get("error", ""))) + "</tr>")
    head = ("method", "minority count", "experiment", "status", "chosen on validation",
            "Δ bal. acc. vs class_weight [95% CI]", "Δ minority recall vs class_weight",
            "Δ bal. acc. vs real", "Δ minority recall vs real", "MDD (80% power)", "error")
    img = base64.b64encode(png).decode()
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1>"
            f"<figure><img alt='regime figure' src='data:image/png;base64,{img}'><figcaption>"
            "The validation-chosen synthetic configuration against class weighting and against "
            "real, on the test split, paired 95% intervals, by minority count.</figcaption>"
            "</figure>" + "".join(f"<p>{html.escape(s)}</p>" for s in text)
            + "<table border='1'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr>" + "".join(cells) + "</table></body></html>")


def _write(path: Path, text: str) -> None:
    """Atomically: a reader never sees half a page."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--class", dest="cls", required=True, help="the class thinned (name or label)")
    parser.add_argument("--counts", type=int, nargs="+", required=True)
    parser.add_argument("--methods", nargs="+", default=["dcgan"])
    parser.add_argument("--data", type=Path, help="data.path for every point (made absolute: "
                        "the experiments run in temporary copies)")
    parser.add_argument("--set", nargs="*", default=[], help="dvc -S overrides for every point")
    parser.add_argument("--prefix", default="regime", help="experiment names start with this")
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--out", type=Path, default=Path("regime/regime.html"))
    parser.add_argument("--collect-only", action="store_true", help="build the page, run nothing")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    if args.data is not None:
        args.set = [f"data.path={args.data.resolve()}", *args.set]
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{project}/mlflow.db")
    grid = [(c, m, point_name(args.prefix, args.cls, c, m)) for m in args.methods
            for c in args.counts]
    runs: dict[str, dict] = {}
    done = experiments(dvc, project, env)
    for count, method, name in grid:
        if args.collect_only or name in done:
            continue
        print(f"regime: {name} ...", flush=True)
        runs[name] = run_point(dvc, project, name,
                               exp_args(args.cls, count, method, args.set), env)
        print(f"regime: {name}: {runs[name]['status']} ({runs[name]['seconds']:.0f} s)",
              flush=True)
    done = experiments(dvc, project, env)
    rows = []
    for count, method, name in grid:
        if name in done:
            row = point_row(done[name]["evaluate"])
        else:
            row = runs.get(name) or {"status": "failed", "error": "not run (--collect-only)"}
        rows.append({"method": method, "count": count, "name": name,
                     "seconds": (runs.get(name) or {}).get("seconds"), **row})
    text = sentences(rows)
    out = args.out if args.out.is_absolute() else project / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out.with_suffix(".json"), json.dumps({"rows": rows, "sentences": text}, indent=1))
    _write(out, page(rows, text, figure(rows),
                     title=f"Where synthetic images pay off: {args.cls} by count"))
    for line in text:
        print(line)
    print(f"regime: wrote {out}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
