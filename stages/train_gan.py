"""DVC stage `train_gan`: train split -> synthesizer checkpoint, quality metrics, sample grid, curves.

The method (`train_gan.method`) comes from pipeline/synthesizers/registry.py; this stage only
talks to it through the synthesizer contract (pipeline/synthesizers/base.py).

The full training state is written to `--state` (outside DVC's outs, so `dvc repro` never deletes
it) every `train_gan.checkpoint_every` steps: a killed run resumes where it stopped, and raising
`train_gan.steps` continues a finished run instead of starting over.
"""

import argparse
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import pipeline

from pipeline.artifacts import (
    file_sha256, grid_scale, image_grid, load_split, save_csv, save_json, save_png,
)
from pipeline.cli import run_stage
from pipeline.config import Config, as_flat_dict, load_config
from pipeline.device import resolve_device
from pipeline.distributed import Dist, process_group
from pipeline.features import load_extractor
from pipeline.gan.quality import QualityProbe
from pipeline.synthesizers.registry import method_module

SAMPLES_PER_CLASS = 10


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    # Under `torchrun --nproc-per-node N` this joins the process group (pipeline/distributed.py).
    with process_group(resolve_device(cfg.train_gan.device)) as world:
        _train(args, cfg, world)


def _train(args: argparse.Namespace, cfg: Config, world: Dist) -> None:
    gcfg, device = cfg.train_gan, world.device
    data = Path(args.data)
    images, labels = load_split(data / "train.npz")
    n_classes = int(labels.max()) + 1
    method = method_module(gcfg.method)
    key = _resume_key(cfg, device, data / "train.npz", args.features)
    if not world.is_main:  # the other ranks train; rank 0 alone evaluates and writes
        method.train(images, labels, cfg, n_classes=n_classes, device=device,
                     checkpoint=args.state, resume_key=key)
        return
    val_images, val_labels = load_split(data / "val.npz")  # model selection never sees test
    extractor, extractor_meta = load_extractor(args.features, device=device)
    probe = QualityProbe(extractor, images, labels, val_images, val_labels, cfg.features,
                         n_classes=n_classes, device=device, seed=cfg.seed)
    from pipeline.tracking import stage_run

    with stage_run("train_gan", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed,
                        **{k: v for n in {"train_gan", *method.SECTIONS}
                           for k, v in as_flat_dict(getattr(cfg, n), f"{n}.").items()},
                        "device_used": str(device), "n_train": len(labels),
                        "n_processes": world.world_size})
        history: list[tuple[int, dict]] = []
        # disable=None: a bar on a terminal, nothing in captured logs (CI, files)
        bar = tqdm(total=gcfg.steps, desc="train_gan", unit="step", mininterval=1.0,
                   dynamic_ncols=True, disable=None)

        def log(metrics: dict, step: int) -> None:
            history.append((step, metrics))
            bar.update(step - bar.n)
            bar.set_postfix(d_loss=f"{metrics['d_loss']:.3f}", g_loss=f"{metrics['g_loss']:.3f}")

        def notify(message: str) -> None:
            tqdm.write(f"train_gan: {message}")

        try:
            result = method.train(images, labels, cfg, n_classes=n_classes, device=device,
                                  log=log, quality=probe, checkpoint=args.state,
                                  resume_key=key, notify=notify)
        finally:
            bar.close()  # before any error line, so the error starts on a line of its own
        for rows in (result.history, result.quality):  # curves in the MLflow UI
            run.log_history([(r["step"], {k: v for k, v in r.items() if k != "step"})
                             for r in rows])
        best, synthesizer = result.best, result.synthesizer
        assert best is not None  # quality runs at the last step
        # What ships is the model at the step with the lowest fid_domain (EMA generator).
        synthesizer.save(args.checkpoint)
        class_labels = np.repeat(np.arange(n_classes), SAMPLES_PER_CLASS)
        fakes = synthesizer.sample(class_labels, np.arange(len(class_labels)))
        grid = image_grid([fakes[class_labels == c] for c in range(n_classes)],
                          scale=grid_scale(images.shape[1]))
        plots = Path(args.plots)
        save_png(plots / "samples.png", grid)
        save_csv(plots / "losses.csv", pd.DataFrame(result.history))
        save_csv(plots / "quality.csv", pd.DataFrame(result.quality))
        last = result.history[-1]
        metrics = {
            "method": gcfg.method, "steps": result.steps, "best_step": int(best["step"]),
            **{k: v for k, v in best.items() if k != "step"},
            "trtr_balanced_accuracy": extractor_meta["metrics"]["val_balanced_accuracy"],
            "seconds": round(result.seconds, 2),
            "images_per_second": round(result.images_per_second, 1),
            "final_d_loss": last["d_loss"], "final_g_loss": last["g_loss"],
            # method-specific curves' last values (stylegan: ada_p, ada_rt)
            **{f"final_{k}": v for k, v in last.items()
               if k not in ("step", "d_loss", "g_loss", "d_real", "d_fake")},
            "n_train": len(labels), "n_classes": n_classes, "device": str(device),
            "n_processes": world.world_size,
        }
        save_json(args.metrics, metrics)
        # at the last step, so the run's headline values are the kept generator's, not the last
        # evaluation's
        run.log_metrics({k: v for k, v in metrics.items() if k not in ("device", "method")},
                        step=result.steps)
        for path in (args.metrics, args.checkpoint, plots / "samples.png",
                     plots / "losses.csv", plots / "quality.csv"):
            run.log_artifact(path)
    on = f"{device}" if world.world_size == 1 else f"{world.world_size} processes ({device.type})"
    print(f"train_gan: {gcfg.method}, {result.steps} steps in {result.seconds:.1f}s on {on}; "
          f"kept step {best['step']} (fid_domain {best['fid_domain']:.3f}, tstr balanced accuracy "
          f"{best['tstr_balanced_accuracy']:.3f})")


def _resume_key(cfg: Config, device, train: Path, features: str) -> str:
    """What a saved training state must match to be continued: every train_gan setting except
    `steps` (so a finished run can be extended), every section the method reads, the seed, the
    device type, the exact data and feature extractor, and the training code (a state from other
    code is not continued)."""
    settings = {k: v for k, v in dataclasses.asdict(cfg.train_gan).items() if k != "steps"}
    method = method_module(cfg.train_gan.method)
    others = {n: dataclasses.asdict(getattr(cfg, n)) for n in method.SECTIONS if n != "train_gan"}
    code = Path(pipeline.__file__).parent
    sources = sorted([*(code / "gan").glob("*.py"), *(code / "models").glob("*.py"),
                      *(code / "synthesizers").glob("*.py")])
    payload = json.dumps({"train_gan": settings, **others, "seed": cfg.seed, "device": device.type,
                          "train": file_sha256(train), "features": file_sha256(features),
                          "features_cfg": dataclasses.asdict(cfg.features),
                          "code": [file_sha256(f) for f in sources]},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


if __name__ == "__main__":
    run_stage("train_gan", main, {
        "data": "folder with train.npz and val.npz", "features": "feature-extractor checkpoint",
        "checkpoint": "generator checkpoint to write",
        "state": "resumable training state (kept between runs; not a DVC output)",
        "plots": "folder for samples.png, losses.csv and quality.csv",
        "metrics": "JSON metrics file",
    })
