"""Every synthesis method at the same training budget on one MedMNIST .npz, scored in one feature
space, then through the augmentation protocol.

    # 1. train each config for --seconds, scored at each of --marks (run configs side by side,
    #    one thread each: the budget is the process's CPU time, so they do not skew each other)
    OMP_NUM_THREADS=1 python bench/synthesizers.py train --data ../shared/data/breastmnist.npz \\
        --seconds 1800 --marks 300 600 900 1200 --configs "dcgan (default)" &
    OMP_NUM_THREADS=1 python bench/synthesizers.py train --data ... --configs "stylegan + ADA" &
    # 2. the downstream protocol (evaluate's variants, chosen on validation, test scored once)
    #    for every trained config; the baselines are trained once and shared
    python bench/synthesizers.py protocol --data ../shared/data/breastmnist.npz
    # 3. the tables (markdown) from what 1 and 2 wrote
    python bench/synthesizers.py table

`train`: each configuration trains through its method's `train` (pipeline/synthesizers) until
--seconds of training have passed, checked every --check-every steps through the quality hook
(which therefore scores nothing itself). At each mark the EMA generator is scored (fid_domain and
per-class FID, no TSTR; scoring time is not training time); at the end the full probe (with TSTR
on the validation split). Writes, per config, <slug>.json (curve and final metrics), <slug>.pt
(the synthesizer), <slug>_history.csv and <slug>_losses.png (losses, ADA's p and r_t) and
<slug>.png (real | synthetic rows per class). The feature extractor is trained once and cached (extractor.pt) so every config and run
scores in the same feature space.

`protocol`: for each <slug>.pt, the generate stage's scored pool and evaluate's protocol
(params.yaml's evaluate section + --set): the GAN share and the baseline are chosen on validation.
Fits are cached in protocol_fits.npz (keyed by training set, settings, seeds and scored splits),
so the baselines are trained once across configs and runs.

Library functions only (no DVC, no MLflow).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from gan_variants import ROOT
from overrides import medmnist, with_overrides

from pipeline.artifacts import grid_scale, image_grid, save_png
from pipeline.balance import balance_plan
from pipeline.config import Config, parse_config
from pipeline.data import prepare_dataset
from pipeline.data.prepare import PreparedDataset
from pipeline.device import resolve_device
from pipeline.evaluate import evaluate_variants
from pipeline.features import embed, load_extractor, save_extractor, train_extractor
from pipeline.metrics import memorization_audit
from pipeline.quality import QualityProbe
from pipeline.report import plot_losses
from pipeline.synthesize import pool_plan, synthesize
from pipeline.synthesizers.base import load_synthesizer
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


def slug(config: str) -> str:
    return config.split(" (")[0].replace(" + ", "-").replace(", ", "-").replace(" ", "-")


class Budget(Exception):
    """Raised from the quality hook when the training budget is spent; carries the model."""

    def __init__(self, synthesizer) -> None:
        super().__init__()
        self.synthesizer = synthesizer


class Clock:
    """Training seconds: the process's CPU time (`cpu`, one thread: equal to wall time on an idle
    core, and unmoved by other processes on the machine) or wall time; paused while scoring."""

    def __init__(self, kind: str) -> None:
        self.now = time.process_time if kind == "cpu" else time.perf_counter
        self.start, self.paused = self.now(), 0.0

    def seconds(self) -> float:
        return self.now() - self.start - self.paused

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        start = self.now()
        try:
            yield
        finally:
            self.paused += self.now() - start


def train_for(seconds: float, marks: list[float], cfg: Config, data: PreparedDataset, *,
              score, clock: str, device: torch.device):
    """(synthesizer at the first check past `seconds`, log rows, curve rows, training seconds)."""
    train = data.splits["train"]
    rows: list[dict] = []
    curve: list[dict] = []
    pending = sorted(m for m in marks if m < seconds)
    timer = Clock(clock)

    def deadline(synthesizer) -> dict[str, float]:
        elapsed = timer.seconds()
        if elapsed >= seconds:
            raise Budget(synthesizer)
        if pending and elapsed >= pending[0]:
            mark = pending.pop(0)
            with timer.pause():
                step = rows[-1]["step"] if rows else 0
                curve.append({"mark": mark, "seconds": round(elapsed, 1), "step": step,
                              **score(synthesizer)})
                print(f"  {elapsed:.0f} s, step {step}: fid_domain "
                      f"{curve[-1]['fid_domain']:.3g}", flush=True)
        return {"fid_domain": 0.0}

    try:
        done = method_module(cfg.train_gan.method).train(
            train.images, train.labels, cfg, n_classes=len(data.class_names), device=device,
            quality=deadline, log=lambda m, step: rows.append({"step": step, **m}))
        synthesizer = done.synthesizer  # train_gan.steps reached before the budget
    except Budget as b:
        synthesizer = b.synthesizer
    return synthesizer, rows, curve, timer.seconds()


def setup(args) -> tuple[dict, Config, PreparedDataset, torch.device, object]:
    """The base params, their config, the prepared dataset, the device and the (cached) feature
    extractor."""
    device = resolve_device(args.device)
    base = with_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), [
        *medmnist(args.data, image_size=args.image_size), "train_gan.steps=1000000",
        f"train_gan.eval_every={args.check_every}", f"train_gan.log_every={args.check_every}",
        *args.set])
    cfg = parse_config(base, source="bench")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    data = prepare_dataset(cfg.data, cfg.prepare, seed=cfg.seed)
    train = data.splits["train"]
    n_classes = len(data.class_names)
    print(f"classes {data.class_names}, train counts "
          f"{np.bincount(train.labels, minlength=n_classes).tolist()}, "
          f"val {len(data.splits['val'].labels)}, test {len(data.splits['test'].labels)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cached = out / "extractor.pt"
    key = {"data": str(Path(args.data).resolve()), "image_size": args.image_size,
           "features": dataclasses.asdict(cfg.features),
           "seed": cfg.seed}
    extractor = None
    if cached.exists():
        extractor, meta = load_extractor(cached, device=device)
        if meta["metrics"].get("key") != json.dumps(key, sort_keys=True):
            extractor = None
    if extractor is None:
        t = time.perf_counter()
        extractor = train_extractor(train.images, train.labels, cfg.features,
                                    n_classes=n_classes, seed=cfg.seed, device=device)
        print(f"feature extractor: {time.perf_counter() - t:.1f} s", flush=True)
        model_kwargs = {"channels": train.images.shape[3], "n_classes": n_classes,
                        "image_size": train.images.shape[1], "width": cfg.features.width}
        save_extractor(cached, extractor, cfg.features, model_kwargs=model_kwargs,
                       seed=cfg.seed, metrics={"key": json.dumps(key, sort_keys=True)})
        extractor, _ = load_extractor(cached, device=device)
    return base, cfg, data, device, extractor


def train_main(args) -> None:
    base, cfg, data, device, extractor = setup(args)
    train, val = data.splits["train"], data.splits["val"]
    n_classes = len(data.class_names)
    probe = QualityProbe(extractor, train.images, train.labels, val.images, val.labels,
                         cfg.features, n_classes=n_classes, device=device, seed=cfg.seed)
    quick = QualityProbe(extractor, train.images, train.labels, val.images, val.labels,
                         cfg.features, n_classes=n_classes, device=device, seed=cfg.seed,
                         tstr=False)
    out = Path(args.out)
    for config in args.configs:
        vcfg = parse_config(with_overrides(base, CONFIGS[config]), source=config)
        print(f"{config}: training for {args.seconds:.0f} {args.clock} s", flush=True)
        synthesizer, rows, curve, seconds = train_for(
            args.seconds, args.marks, vcfg, data, score=quick, clock=args.clock, device=device)
        metrics = probe(synthesizer)
        metrics.update(sampled(synthesizer, probe, val.images, device=device))
        history = pd.DataFrame(rows)
        steps = int(history["step"].iloc[-1]) if len(history) else 0
        ada_p = [] if "ada_p" not in history else history["ada_p"].tolist()
        curve.append({"mark": args.seconds, "seconds": round(seconds, 1), "step": steps,
                      **{k: v for k, v in metrics.items() if k != "tstr_balanced_accuracy"}})
        name = slug(config)
        synthesizer.save(out / f"{name}.pt")
        history.to_csv(out / f"{name}_history.csv", index=False)  # losses and ADA's p by step
        if len(history):  # the report's loss figure: losses, D's outputs, ADA's p and r_t
            plot_losses(history).savefig(out / f"{name}_losses.png")
        result = {"config": config, "overrides": CONFIGS[config] + args.set, "clock": args.clock,
                  "seconds": seconds, "steps": steps, "metrics": metrics, "curve": curve,
                  "ada_p_final": ada_p[-1] if ada_p else None,
                  "ada_p_max": max(ada_p) if ada_p else None,
                  "ada_rt_last": None if "ada_rt" not in history
                  else float(history["ada_rt"].iloc[-1]),
                  "class_names": data.class_names, "threads": torch.get_num_threads(),
                  "machine": platform.machine(), "torch": torch.__version__}
        (out / f"{name}.json").write_text(json.dumps(result, indent=1))
        labels = np.repeat(np.arange(n_classes), 12)
        fakes = synthesizer.sample(labels, np.arange(len(labels)))
        grid = []
        for c in range(n_classes):
            grid += [train.images[train.labels == c][:12], fakes[labels == c]]
        save_png(out / f"{name}.png", image_grid(grid, scale=grid_scale(args.image_size)))
        print(f"{config}: {steps} steps in {seconds:.0f} s, fid_domain "
              f"{metrics['fid_domain']:.3g}", flush=True)


def sampled(synthesizer, probe: QualityProbe, val_images: np.ndarray, *,
            device: torch.device) -> dict[str, float]:
    """Sampling seconds per 1,000 images (the process's CPU time, as the training budget) and
    the memorisation rate of the probe's draws (as many per class as the training split has),
    audited as the generate stage does: feature distance to the nearest training image below
    the 1st percentile of the validation images' (pipeline/synthesize.py)."""
    start = time.process_time()
    fakes = probe.samples(synthesizer)
    seconds = time.process_time() - start
    audit = memorization_audit(embed(probe.extractor, fakes, device=device), probe.real_features,
                               embed(probe.extractor, val_images, device=device))
    by_class = {f"memorization_rate/class_{c}": float(audit.memorized[probe.fake_labels == c]
                                                      .mean())
                for c in np.unique(probe.fake_labels)}
    return {"sampling_s_per_1000": 1000 * seconds / len(fakes),
            "memorization_rate": audit.memorization_rate, **by_class}


def protocol_main(args) -> None:
    _, cfg, data, device, extractor = setup(args)
    train, val, test = (data.splits[k] for k in ("train", "val", "test"))
    out = Path(args.out)
    counts = {c: int(n) for c, n in enumerate(np.bincount(train.labels))}
    plan = balance_plan(counts, target=cfg.generate.target, count=cfg.generate.count,
                        ratio=cfg.generate.ratio)
    candidates = pool_plan(plan, counts, candidates_per_image=cfg.generate.candidates_per_image)
    # Every fit's (val, test) probabilities, shared by every config (so the baselines are trained
    # once) and kept in protocol_fits.npz, so a later `protocol` run for other configs reuses them.
    cache = out / "protocol_fits.npz"
    fitted: dict = {}
    if cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            fitted = {k[:-4]: (f[k], f[k[:-4] + ".tst"]) for k in f.files if k.endswith(".val")}
    for config in args.configs:
        path = out / f"{slug(config)}.pt"
        if not path.exists():
            print(f"{config}: no {path} (run `train` first); skipped")
            continue
        t = time.perf_counter()
        synth = synthesize(load_synthesizer(path, device=device), candidates, seed=cfg.seed,
                           score=cfg.generate.score, device=device, extractor=extractor,
                           train_images=train.images, train_labels=train.labels, val_images=val.images,
                           reject_memorized=cfg.generate.reject_memorized,
                           quality_gate=cfg.generate.quality_gate,
                           batch_size=cfg.generate.batch_size)
        comparison = evaluate_variants(train, val, test, synth.pool, cfg.evaluate,
                                       n_classes=len(data.class_names), seed=cfg.seed,
                                       device=device, fitted=fitted)
        np.savez(cache, **{f"{k}.val": v for k, (v, _) in fitted.items()},
                 **{f"{k}.tst": t for k, (_, t) in fitted.items()})
        result = {"config": config, "evaluate": comparison.as_json(), "generate": synth.stats,
                  "seconds": time.perf_counter() - t,
                  "evaluate_settings": dataclasses.asdict(cfg.evaluate)}
        (out / f"{slug(config)}_protocol.json").write_text(json.dumps(result, indent=1,
                                                                      default=list))
        h = comparison.headline
        print(f"{config}: chosen {h['gan']} vs {h['baseline']}: balanced accuracy "
              f"{h['balanced_accuracy_delta']:+.3f} ({time.perf_counter() - t:.0f} s)",
              flush=True)


def table_main(args) -> None:
    out = Path(args.out)
    found = [(c, json.loads((out / f"{slug(c)}.json").read_text())) for c in args.configs
             if (out / f"{slug(c)}.json").exists()]
    if not found:
        print(f"nothing in {out}: run `train` first")
        return
    names = found[0][1]["class_names"]
    per_class = [f"fid_domain/class_{c}" for c in range(len(names))]
    header = ["config", *COLUMNS, *[f"FID {n}" for n in names], "steps", "train s",
              "ADA p final (max)"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for config, r in found:
        m = r["metrics"]
        ada = "-" if r["ada_p_final"] is None else f"{r['ada_p_final']:.3f} ({r['ada_p_max']:.3f})"
        print("| " + " | ".join([config, *[f"{m[k]:.4g}" for k in COLUMNS],
                                 *[f"{m[k]:.4g}" for k in per_class], str(r["steps"]),
                                 f"{r['seconds']:.0f}", ada]) + " |")
    print("\nPer class (precision, recall, coverage against that class's real images; "
          "memorisation rate of its draws), and sampling seconds per 1,000 images:\n")
    print("| config | class | FID | precision | recall | coverage | memorised | sampling s/1000 "
          "|\n|---|---|---|---|---|---|---|---|")
    for config, r in found:
        m = r["metrics"]
        for c, n in enumerate(names):
            cells = [m.get(f"{k}/class_{c}") for k in ("fid_domain", "precision", "recall",
                                                        "coverage", "memorization_rate")]
            rate = m.get("sampling_s_per_1000")
            cells.append(rate if c == 0 else None)  # one figure per config
            print(f"| {config} | {n} | "
                  + " | ".join("" if v is None else f"{v:.3g}" for v in cells) + " |")
    print("\nPer-class FID (fid_domain) by training seconds:\n")
    marks = sorted({row["mark"] for _, r in found for row in r["curve"]})
    print("| config | class | " + " | ".join(f"{m:.0f} s" for m in marks) + " |")
    print("|---|---|" + "---|" * len(marks))
    for config, r in found:
        for c, key in [("all", "fid_domain"), *[(names[c], k) for c, k in enumerate(per_class)]]:
            by = {row["mark"]: row[key] for row in r["curve"]}
            print(f"| {config} | {c} | " + " | ".join(
                f"{by[m]:.4g}" if m in by else "" for m in marks) + " |")
    rows = [(c, json.loads((out / f"{slug(c)}_protocol.json").read_text()))
            for c, _ in found if (out / f"{slug(c)}_protocol.json").exists()]
    if rows:
        print("\nDownstream (evaluate's protocol: chosen on validation, test scored once):\n")
        print("| config | chosen GAN variant | val bal. acc | test bal. acc [95% CI] | baseline "
              "(val-chosen) | test bal. acc | Δ [paired 95% CI] | minority recall Δ | ROC AUC Δ |")
        print("|---|---|---|---|---|---|---|---|---|")
        for config, r in rows:
            ev = r["evaluate"]
            h, v = ev["headline"], ev["variants"]
            g, b = v[h["gan"]], v[h["baseline"]]
            print(f"| {config} | {h['gan']} | {g['val_balanced_accuracy']:.3f} | "
                  f"{g['balanced_accuracy']:.3f} {_ci(g.get('balanced_accuracy_ci95'), '')} | "
                  f"{h['baseline']} | {b['balanced_accuracy']:.3f} | "
                  f"{h['balanced_accuracy_delta']:+.3f} "
                  f"{_ci(h.get('balanced_accuracy_delta_ci95'))} | "
                  f"{h['minority_recall_delta']:+.3f} | {h['roc_auc_delta']:+.3f} |")


def _ci(bounds: list[float] | None, sign: str = "+") -> str:
    return f"[{bounds[0]:{sign}.3f}, {bounds[1]:{sign}.3f}]" if bounds else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["train", "protocol", "table"])
    parser.add_argument("--data", help="a MedMNIST-style .npz (train, protocol)")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--seconds", type=float, default=300, help="training seconds per config")
    parser.add_argument("--marks", type=float, nargs="*", default=[],
                        help="training seconds at which to score the curve")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: the process's CPU time (run with one thread); wall: elapsed")
    parser.add_argument("--check-every", type=int, default=10, help="steps between time checks")
    parser.add_argument("--set", nargs="*", default=[], help="params overrides for every config")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", default="bench/out/synthesizers")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.command != "table" and not args.data:
        parser.error(f"{args.command} needs --data")
    if args.clock == "cpu" and torch.get_num_threads() > 1 and args.command == "train":
        print(f"note: {torch.get_num_threads()} threads: the CPU clock counts every thread's "
              "time; set OMP_NUM_THREADS=1 for a budget equal to wall time", flush=True)
    {"train": train_main, "protocol": protocol_main, "table": table_main}[args.command](args)


if __name__ == "__main__":
    main()
