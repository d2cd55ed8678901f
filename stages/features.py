"""DVC stage `features`: train split -> the in-project feature extractor (models/features.pt).

Trained once per prepared dataset, so every GAN setting in a sweep is scored in the same feature
space (pipeline/features.py). Its validation balanced accuracy is the train-real-test-real reference
for train_gan's TSTR score; the test split is not read here (evaluate scores it once, at the end).
"""

import time
from pathlib import Path

from sklearn.metrics import balanced_accuracy_score

from pipeline.artifacts import load_split
from pipeline.classify import predict_proba
from pipeline.features import save_extractor, train_extractor
from pipeline.stage import Stage, n_classes_of, run


def main(s: Stage) -> None:
    cfg, data, device = s.cfg, Path(s.args.data), s.device
    images, labels = load_split(data / "train.npz")
    n_classes = n_classes_of(labels)
    s.log_params("features", device_used=str(device))
    history: list[tuple[int, dict]] = []
    start = time.perf_counter()
    model = train_extractor(images, labels, cfg.features, n_classes=n_classes, seed=cfg.seed,
                            device=device, log=lambda m, step: history.append((step, m)))
    metrics = {"seconds": round(time.perf_counter() - start, 2),
               "feature_dim": int(model.feature_dim), "n_train": len(labels)}
    x, y = load_split(data / "val.npz")
    pred = predict_proba(model, x, device=device).argmax(axis=1)
    metrics["val_balanced_accuracy"] = float(balanced_accuracy_score(y, pred))
    model_kwargs = dict(channels=images.shape[3], n_classes=n_classes,
                        image_size=images.shape[1], width=cfg.features.width)
    # no timings in the checkpoint: the same data and params give the same bytes, so DVC and
    # train_gan's resume key see an unchanged extractor
    save_extractor(s.args.out, model, cfg.features, model_kwargs=model_kwargs, seed=cfg.seed,
                   metrics={k: v for k, v in metrics.items() if k != "seconds"})
    s.run.log_history(history)
    s.finish(metrics)
    print(f"features: {metrics['feature_dim']}-d extractor, validation balanced accuracy "
          f"{metrics['val_balanced_accuracy']:.3f}")


if __name__ == "__main__":
    run("features", main, {
        "data": "folder with train.npz and val.npz",
        "out": "feature-extractor checkpoint to write", "metrics": "JSON metrics file",
    }, device="features")
