"""DVC stage `features`: train split -> the in-project feature extractor (models/features.pt).

Trained once per prepared dataset, so every GAN setting in a sweep is scored in the same feature
space (pipeline/features.py). Its validation balanced accuracy is the train-real-test-real reference
for train_gan's TSTR score; the test split is not read here (evaluate scores it once, at the end).
"""

import argparse
import time
from pathlib import Path

from sklearn.metrics import balanced_accuracy_score

from pipeline.artifacts import load_split, save_json
from pipeline.classify import predict_proba
from pipeline.cli import run_stage
from pipeline.config import as_flat_dict, load_config
from pipeline.device import resolve_device
from pipeline.features import save_extractor, train_extractor


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    fcfg, device = cfg.features, resolve_device(cfg.features.device)
    data = Path(args.data)
    images, labels = load_split(data / "train.npz")
    n_classes = int(labels.max()) + 1
    from pipeline.tracking import stage_run

    with stage_run("features", params_digest=cfg.digest) as run:
        run.log_params({"seed": cfg.seed, **as_flat_dict(fcfg, "features."),
                        "device_used": str(device)})
        history: list[tuple[int, dict]] = []
        start = time.perf_counter()
        model = train_extractor(images, labels, fcfg, n_classes=n_classes, seed=cfg.seed,
                                device=device, log=lambda m, step: history.append((step, m)))
        metrics = {"seconds": round(time.perf_counter() - start, 2),
                   "feature_dim": int(model.feature_dim), "n_train": len(labels)}
        x, y = load_split(data / "val.npz")
        pred = predict_proba(model, x, device=device).argmax(axis=1)
        metrics["val_balanced_accuracy"] = float(balanced_accuracy_score(y, pred))
        model_kwargs = dict(channels=images.shape[3], n_classes=n_classes,
                            image_size=images.shape[1], width=fcfg.width)
        # no timings in the checkpoint: the same data and params give the same bytes, so DVC
        # and train_gan's resume key see an unchanged extractor
        save_extractor(args.out, model, fcfg, model_kwargs=model_kwargs, seed=cfg.seed,
                       metrics={k: v for k, v in metrics.items() if k != "seconds"})
        save_json(args.metrics, metrics)
        run.log_history(history)
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
    print(f"features: {metrics['feature_dim']}-d extractor, validation balanced accuracy "
          f"{metrics['val_balanced_accuracy']:.3f}")


if __name__ == "__main__":
    run_stage("features", main, {
        "data": "folder with train.npz and val.npz",
        "out": "feature-extractor checkpoint to write", "metrics": "JSON metrics file",
    })
