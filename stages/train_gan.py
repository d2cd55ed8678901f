"""DVC stage `train_gan`: train split -> synthesizer checkpoint, quality metrics, sample grid,
curves.

The method (`train_gan.method`) comes from pipeline/synthesizers/registry.py; this stage only
talks to it through the synthesizer contract (pipeline/synthesizers/base.py) and shows the loss
columns its update declares.

The full training state is written to `--state` (outside DVC's outs, so `dvc repro` never deletes
it) every `train_gan.checkpoint_every` steps: a killed run resumes where it stopped, and raising
`train_gan.steps` continues a finished run instead of starting over.
"""

from pathlib import Path

import pandas as pd

from pipeline.artifacts import load_split, save_csv, save_png
from pipeline.features import load_extractor
from pipeline.quality import QualityProbe
from pipeline.stage import Stage, n_classes_of, run
from pipeline.synthesizers.registry import method_module
from pipeline.training.progress import class_samples, done_line, progress, summary
from pipeline.training.state_file import resume_key


def main(s: Stage) -> None:
    cfg, data, device, world = s.cfg, Path(s.args.data), s.device, s.world
    images, labels = load_split(data / "train.npz")
    n_classes = n_classes_of(labels)
    method = method_module(cfg.train_gan.method)
    key = resume_key(cfg, device, data / "train.npz", s.args.features, sections=method.SECTIONS)
    if not world.is_main:  # the other ranks train; rank 0 alone evaluates and writes
        method.train(images, labels, cfg, n_classes=n_classes, device=device,
                     checkpoint=s.args.state, resume_key=key)
        return
    val_images, val_labels = load_split(data / "val.npz")  # model selection never sees test
    extractor, extractor_meta = load_extractor(s.args.features, device=device)
    probe = QualityProbe(extractor, images, labels, val_images, val_labels, cfg.features,
                         n_classes=n_classes, device=device, seed=cfg.seed)
    s.log_params(*method.SECTIONS, device_used=str(device), n_train=len(labels),
                 n_processes=world.world_size)
    with progress(cfg.train_gan.steps) as (log, notify):
        result = method.train(images, labels, cfg, n_classes=n_classes, device=device, log=log,
                              quality=probe, checkpoint=s.args.state, resume_key=key,
                              notify=notify)
    for rows in (result.history, result.quality):  # curves in the MLflow UI
        s.run.log_history([(r["step"], {k: v for k, v in r.items() if k != "step"})
                           for r in rows])
    # What ships is the model at the step with the lowest fid_domain (EMA generator).
    result.synthesizer.save(s.args.checkpoint)
    plots = Path(s.args.plots)
    save_png(plots / "samples.png", class_samples(result.synthesizer, n_classes, images.shape[1]))
    save_csv(plots / "losses.csv", pd.DataFrame(result.history))
    save_csv(plots / "quality.csv", pd.DataFrame(result.quality))
    metrics = summary(result, method=cfg.train_gan.method, n_train=len(labels),
                      trtr=extractor_meta["metrics"]["val_balanced_accuracy"],
                      n_classes=n_classes, device=device, n_processes=world.world_size)
    # at the last step, so the run's headline values are the kept generator's, not the last
    # evaluation's (strings, e.g. the device, are not MLflow metrics)
    s.finish(metrics, [s.args.checkpoint, plots / "samples.png", plots / "losses.csv",
                       plots / "quality.csv"], step=result.steps)
    print(done_line(result, method=cfg.train_gan.method, device=device,
                    n_processes=world.world_size))


if __name__ == "__main__":
    run("train_gan", main, {
        "data": "folder with train.npz and val.npz", "features": "feature-extractor checkpoint",
        "checkpoint": "generator checkpoint to write",
        "state": "resumable training state (kept between runs; not a DVC output)",
        "plots": "folder for samples.png, losses.csv and quality.csv",
        "metrics": "JSON metrics file",
    }, device="train_gan", distributed=True)
