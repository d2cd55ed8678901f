"""The prepare stage's work: source -> sized uint8 images -> splits -> checks -> imbalanced train."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from pipeline.artifacts import Split
from pipeline.config import DataConfig, PrepareConfig
from pipeline.data.imbalance import (
    keep_counts, keep_fractions, nested_indices, resolve_imbalance, subsample_indices,
)
from pipeline.data.sources import SOURCES, RawDataset, require_two_classes
from pipeline.errors import PipelineError

SPLITS = ("train", "val", "test")
MAX_LISTED = 20  # bad files / duplicates named in errors and reports


@dataclass(frozen=True)
class PreparedDataset:
    splits: dict[str, Split]
    class_names: list[str]
    report: dict[str, Any]  # class counts, bad files, duplicates: metrics/prepare.json
    source: str = ""


def class_counts(labels: np.ndarray, n_classes: int) -> dict[int, int]:
    counts = np.bincount(labels, minlength=n_classes)
    return {c: int(counts[c]) for c in range(n_classes)}


def stratified_split(
    labels: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int,
    class_names: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Indices of train/val/test (sorted). Per class: round(fraction * n) images, at least one, go
    to test and to val; the rest to train. So every class with >= 3 images is in every split.
    `class_names` only make errors readable."""
    _require_per_class(labels, 3, "images", class_names)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, int(np.floor(test_fraction * len(idx) + 0.5)))
        n_val = max(1, int(np.floor(val_fraction * len(idx) + 0.5)))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {s: np.sort(np.concatenate(parts[s])) for s in SPLITS}


def grouped_split(
    labels: np.ndarray, groups: np.ndarray, *, val_fraction: float, test_fraction: float,
    seed: int, class_names: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Like `stratified_split`, but no group (patient) has images in two splits.

    Uses StratifiedGroupKFold: test is one fold of round(1 / test_fraction); val one fold of the
    rest. Fractions are therefore approximate (0.15 -> 1/7 = 0.143).
    """
    _require_per_class(np.array([labels[groups == g][0] for g in np.unique(groups)]), 3,
                       "patients", class_names)
    idx = np.arange(len(labels))
    rest, test = _one_fold(idx, labels, groups, round(1 / test_fraction), seed)
    k_val = max(2, round((1 - test_fraction) / val_fraction))
    train_r, val_r = _one_fold(np.arange(len(rest)), labels[rest], groups[rest], k_val, seed)
    return {"train": np.sort(rest[train_r]), "val": np.sort(rest[val_r]), "test": np.sort(test)}


def _one_fold(idx, labels, groups, k, seed):
    n_groups = len(np.unique(groups))
    if n_groups < k:
        raise PipelineError(f"only {n_groups} patients: too few for a patient-grouped split "
                            f"into {k} folds; add patients or lower prepare.val/test_fraction")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    keep, held = next(folds.split(idx, labels, groups))
    return idx[keep], idx[held]


def _require_per_class(labels: np.ndarray, minimum: int, what: str,
                       class_names: list[str] | None) -> None:
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if len(present) and present.min() < minimum:
        rare = int(np.flatnonzero((counts > 0) & (counts == present.min()))[0])
        raise PipelineError(
            f"class {_name(rare, class_names)} has only {present.min()} {what}; each class needs "
            f"at least {minimum} to be split into train/val/test: add data for it or remove the "
            "class"
        )


def _name(label: int, class_names: list[str] | None) -> str:
    """How errors name a class: by its name (folder, CSV label, data.classes), else its index."""
    if class_names and label < len(class_names) and class_names[label] != str(label):
        return f"{class_names[label]!r} (label {label})"
    return str(label)


def prepare_dataset(data: DataConfig, cfg: PrepareConfig, *, seed: int) -> PreparedDataset:
    raw = _check_bad_files(SOURCES[data.source](data, cfg), cfg)
    n_classes = len(raw.class_names)
    if len(raw.labels) == 0:
        raise PipelineError(f"data.source {data.source}: no images found in {raw.source}")
    require_two_classes(raw.labels, raw.class_names, where=raw.source)
    index = _split_indices(raw, cfg, seed=seed)
    for s in SPLITS:
        if len(index[s]) == 0:
            raise PipelineError(f"the {s} split is empty; add images or adjust the source splits")
    missing = sorted(set(range(n_classes)) - set(raw.labels[index["train"]].tolist()))
    if missing:
        raise PipelineError(f"class {_name(missing[0], raw.class_names)} has no training images; "
                            "add some or remove the class")

    hashes = image_hashes(raw.images)
    duplicates = duplicate_report(hashes, index)
    if cfg.drop_duplicates:
        leaked = set(hashes[index["val"]]) | set(hashes[index["test"]])
        n_train = len(index["train"])
        index["train"] = index["train"][~np.isin(hashes[index["train"]], list(leaked))]
        duplicates["dropped_from_train"] = n_train - len(index["train"])

    train_before = class_counts(raw.labels[index["train"]], n_classes)
    kept, fractions = _kept(raw, index["train"], cfg, source=data.source, seed=seed)
    index["train"] = index["train"][kept]
    splits = {s: _take(raw, index[s]) for s in ("val", "test")}
    splits["train"] = _take_in_place(raw, index["train"])
    counts = {s: class_counts(splits[s].labels, n_classes) for s in SPLITS}
    train_counts = list(counts["train"].values())
    report = {
        "source": data.source, "n_classes": n_classes, "class_names": raw.class_names,
        "image_shape": list(raw.images.shape[1:]),
        "split_method": _split_method(raw),
        "n_images": {s: len(splits[s].labels) for s in SPLITS},
        "counts": counts,
        "train_counts_before_imbalance": train_before,
        "imbalance": resolve_imbalance(cfg.imbalance, source=data.source),
        "imbalance_setting": cfg.imbalance,
        "train_keep_fraction": {c: round(f, 4) for c, f in fractions.items()},
        "simulated_imbalance": _simulated_imbalance(
            train_before, counts["train"], method=resolve_imbalance(cfg.imbalance,
                                                                    source=data.source)),
        "imbalance_ratio": round(max(train_counts) / max(1, min(train_counts)), 3),
        "native_sizes": raw.native_sizes,
        "colour_images": raw.n_colour,
        "resized": _resized(raw.native_sizes, splits["train"].images.shape[1:3]),
        "bad_images_skipped": {"count": len(raw.bad_files),
                       "files": [f"{f}: {why}" for f, why in raw.bad_files[:MAX_LISTED]]},
        "duplicates": duplicates,
    }
    report["data_changes"] = data_changes(report, image_size=cfg.image_size,
                                          imbalance=cfg.imbalance, channels=cfg.channels)
    return PreparedDataset(splits, raw.class_names, report, source=raw.source)


def _kept(raw: RawDataset, train: np.ndarray, cfg: PrepareConfig, *, source: str,
          seed: int) -> tuple[np.ndarray, dict[int, float]]:
    """Positions in `train` of the training images the imbalance setting keeps, and the share
    of each class kept."""
    labels, n_classes = raw.labels[train], len(raw.class_names)
    if resolve_imbalance(cfg.imbalance, source=source) == "counts":
        counts = keep_counts(labels, cfg, n_classes=n_classes, class_names=raw.class_names)
        have = np.bincount(labels, minlength=n_classes)
        return (nested_indices(labels, counts, seed=seed),
                {c: n / have[c] for c, n in counts.items()})
    fractions = keep_fractions(n_classes, cfg, source=source, class_names=raw.class_names)
    return subsample_indices(labels, fractions, seed=seed), fractions


def _resized(native: dict[str, int], shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Which native sizes were resized to the prepared size (None: no image was resized)."""
    to = f"{shape[1]}x{shape[0]}"
    changed = {size: n for size, n in native.items() if size != to}
    if not changed:
        return None
    return {"count": sum(changed.values()), "from": changed, "to": to}


def _simulated_imbalance(before: dict[int, int], after: dict[int, int], *,
                         method: str) -> dict[str, Any] | None:
    """Training images removed per class to simulate imbalance (None: nothing removed)."""
    # keyed by label like `counts` (class names can hold characters MLflow metric names cannot)
    removed = {c: before[c] - after[c] for c in before}
    if not any(removed.values()):
        return None
    return {"method": method, "removed": removed, "count": sum(removed.values()),
            "of": sum(before.values())}


def data_changes(report: dict[str, Any], *, image_size: int | None, imbalance: str,
                 channels: int = 1) -> list[str]:
    """One sentence per way `prepare` changed the data it was given (resizing, colour dropped,
    simulated imbalance, skipped files, dropped duplicates): printed by the stage, shown atop the
    report."""
    out = []
    if (r := report.get("resized")) is not None:
        sizes = ", ".join(f"{n} at {s}" for s, n in r["from"].items())
        out.append(f"Resized {r['count']} images ({sizes}) to {r['to']} "
                   f"(prepare.image_size: {image_size}; null keeps the native size).")
    if channels == 1 and (n := report.get("colour_images", 0)):
        out.append(f"Converted {n} colour images to grayscale (prepare.channels: 1); set "
                   "prepare.channels: 3 to keep colour.")
    if (s := report.get("simulated_imbalance")) is not None:
        names = report["class_names"]
        per = ", ".join(f"{n} of class {names[c]!r}" for c, n in s["removed"].items() if n)
        why = ("prepare.imbalance: auto, which does this on the digits demo only"
               if imbalance == "auto" else f"prepare.imbalance: {imbalance}")
        out.append(f"Removed {s['count']} of {s['of']} training images to simulate imbalance "
                   f"({why}): {per}. Set prepare.imbalance: none to keep them all.")
    if (bad := report.get("bad_images_skipped", {}).get("count", 0)):
        out.append(f"Skipped {bad} unreadable image files (prepare.on_bad_image: skip).")
    if (dropped := report.get("duplicates", {}).get("dropped_from_train", 0)):
        out.append(f"Dropped {dropped} training images whose exact copy is in val or test "
                   "(prepare.drop_duplicates: true).")
    return out


def image_hashes(images: np.ndarray) -> np.ndarray:
    """Content hash of each prepared image (N,): equal hashes = pixel-identical images."""
    return np.array([hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest() for img in images])


def duplicate_report(hashes: np.ndarray, index: dict[str, np.ndarray]) -> dict[str, Any]:
    """Exact duplicates within train and across splits (leakage), counted and listed by hash."""
    train = hashes[index["train"]]
    _, n_each = np.unique(train, return_counts=True)
    report: dict[str, Any] = {"within_train": int((n_each - 1).sum())}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = np.intersect1d(hashes[index[a]], hashes[index[b]])
        report[f"{a}_{b}"] = len(shared)
        report[f"{a}_{b}_hashes"] = shared[:MAX_LISTED].tolist()
    return report


def _check_bad_files(raw: RawDataset, cfg: PrepareConfig) -> RawDataset:
    if raw.bad_files and cfg.on_bad_image == "fail":
        listed = "; ".join(f"{f} ({why})" for f, why in raw.bad_files[:MAX_LISTED])
        more = len(raw.bad_files) - MAX_LISTED
        raise PipelineError(
            f"{len(raw.bad_files)} unreadable image file(s): {listed}"
            + (f"; and {more} more" if more > 0 else "")
            + ". Fix or remove them, or set prepare.on_bad_image: skip to leave them out"
        )
    return raw


def _split_indices(raw: RawDataset, cfg: PrepareConfig, *, seed: int) -> dict[str, np.ndarray]:
    if raw.split is not None:
        return {s: np.flatnonzero(raw.split == s) for s in SPLITS}
    if raw.patient_ids is not None:
        return grouped_split(raw.labels, raw.patient_ids, val_fraction=cfg.val_fraction,
                             test_fraction=cfg.test_fraction, seed=seed,
                             class_names=raw.class_names)
    return stratified_split(raw.labels, val_fraction=cfg.val_fraction,
                            test_fraction=cfg.test_fraction, seed=seed,
                            class_names=raw.class_names)


def _split_method(raw: RawDataset) -> str:
    if raw.split is not None:
        return "source"
    return "patient_grouped_stratified" if raw.patient_ids is not None else "stratified"


def _take(raw: RawDataset, idx: np.ndarray) -> Split:
    patients = raw.patient_ids[idx] if raw.patient_ids is not None else None
    return Split(raw.images[idx], raw.labels[idx], patients)


def _take_in_place(raw: RawDataset, idx: np.ndarray, *, chunk: int = 4096) -> Split:
    """Like `_take` for sorted `idx`, but moves the rows to the front of raw.images instead of
    copying them: the largest split costs no second copy of the dataset (peak ~1.3x, not 2x).

    Safe because idx is sorted and unique, so idx[j] >= j: a chunk only reads rows at or after
    its own start, which earlier chunks (writing rows before it) have not touched.
    """
    if np.any(np.diff(idx) <= 0):
        raise ValueError("_take_in_place needs sorted, unique indices")
    images = raw.images
    for start in range(0, len(idx), chunk):
        stop = min(start + chunk, len(idx))
        images[start:stop] = images[idx[start:stop]]
    patients = raw.patient_ids[idx] if raw.patient_ids is not None else None
    return Split(images[: len(idx)], raw.labels[idx], patients)

