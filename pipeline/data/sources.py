"""Readers that turn a data source into images of the configured size, labels and metadata.

Sources are looked up by name in `SOURCES` (params.yaml `data.source`). Every reader returns a
`RawDataset` with images already at `prepare.image_size` x `prepare.channels` (or at their native
size when `prepare.image_size` is null), so a dataset is held once, as uint8, never as a float copy.
Each reader records the images' native sizes, so the report can say what was resized.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import DataConfig, PrepareConfig
from pipeline.data.decode import SUFFIXES
from pipeline.data.files import decode_many, native_size
from pipeline.data.transforms import resize, to_channels
from pipeline.errors import PipelineError

SPLIT_NAMES = ("train", "val", "test")
MEDMNIST_URL = "https://zenodo.org/records/10519652"


@dataclass(frozen=True)
class RawDataset:
    images: np.ndarray  # (N, H, W, C) uint8 at the configured size
    labels: np.ndarray  # (N,) int64 in [0, len(class_names))
    class_names: list[str]
    split: np.ndarray | None = None  # (N,) of "train"/"val"/"test" where the source has splits
    patient_ids: np.ndarray | None = None  # (N,) str where the source has them
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), not loaded
    source: str = ""  # where the data came from, for the MLflow dataset record
    native_sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> images of that size
    n_colour: int = 0  # images whose R, G, B differ (what prepare.channels: 1 turns grey)


def load_digits_source(data: DataConfig, cfg: PrepareConfig) -> RawDataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real scans; ships with the package)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16 (counts of set pixels in 4x4 blocks of the original 32x32 bitmaps).
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    names = _class_names(data, [str(n) for n in bunch.target_names])
    return RawDataset(_fit(images, cfg), bunch.target.astype(np.int64), names,
                      source="sklearn.datasets.load_digits", native_sizes={"8x8": len(images)})


def load_medmnist_source(data: DataConfig, cfg: PrepareConfig) -> RawDataset:
    """A MedMNIST .npz: train_/val_/test_ images (N, H, W[, 3]) and labels (N,) or (N, 1)."""
    path = Path(data.path) if data.path else _download_medmnist(data.name or "",
                                                                 cfg.image_size or 28)
    if not path.is_file():
        raise PipelineError(f"data.path: {path} does not exist; point it at a MedMNIST .npz file")
    images, labels, split = [], [], []
    try:
        with np.load(path, allow_pickle=False) as z:
            for s in SPLIT_NAMES:
                if f"{s}_images" not in z or f"{s}_labels" not in z:
                    raise PipelineError(
                        f"{path}: missing {s}_images/{s}_labels; a MedMNIST file has "
                        f"train_/val_/test_ images and labels (found: {', '.join(z.files)})"
                    )
                x, y = z[f"{s}_images"], z[f"{s}_labels"]
                if y.ndim == 2 and y.shape[1] > 1:
                    raise PipelineError(
                        f"{path}: {s}_labels has shape {y.shape}: multi-label datasets "
                        "(e.g. ChestMNIST) are not supported; use a single-label one"
                    )
                if x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) != len(y):
                    raise PipelineError(
                        f"{path}: {s}_images must be uint8 (N, H, W) or (N, H, W, 3) with one "
                        f"label each, got {x.dtype} {x.shape} and {len(y)} labels"
                    )
                images.append(x if x.ndim == 4 else x[..., None])
                labels.append(y.reshape(-1).astype(np.int64))
                split.append(np.full(len(y), s))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # truncated, not a zip, ...
        raise PipelineError(f"{path}: not a readable .npz file ({e})") from None
    sizes: Counter[str] = Counter()
    for x in images:
        sizes[_wxh(x.shape[1], x.shape[2])] += len(x)
    _check_native(sizes, cfg, where=str(path))
    n_colour = sum(_count_colour(x) for x in images)
    images = [_fit(x, cfg) for x in images]
    all_labels = np.concatenate(labels)
    if len(all_labels) and all_labels.min() < 0:
        raise PipelineError(f"{path}: labels must be >= 0, found {all_labels.min()}")
    n = int(all_labels.max()) + 1 if len(all_labels) else 0
    names = _class_names(data, [str(i) for i in range(n)])
    _check_label_range(all_labels, names, where=str(path))
    return RawDataset(np.concatenate(images), all_labels, names, split=np.concatenate(split),
                      source=str(path), native_sizes=dict(sizes), n_colour=n_colour)


def load_folder_source(data: DataConfig, cfg: PrepareConfig) -> RawDataset:
    """root/<class>/**/<image> or root/{train,val,test}/<class>/**/<image>."""
    root = _existing_dir(data.path)
    subdirs = _subdirs(root)
    has_splits = bool(subdirs) and {d.name for d in subdirs} <= set(SPLIT_NAMES)
    split_roots = [(d.name, d) for d in subdirs] if has_splits else [(None, root)]
    found = {name for _, r in split_roots for name in (d.name for d in _subdirs(r))}
    if not found:
        raise PipelineError(f"data.path: {root} has no class subfolders; expected "
                            "<root>/<class>/<images> (the torchvision ImageFolder layout)")
    names = _class_names(data, _natural_sorted(found))
    unknown = sorted(found - set(names))
    if unknown:
        raise PipelineError(f"data.path: folder {unknown[0]!r} is not in data.classes "
                            f"({', '.join(names)}); add it there or remove the folder")
    paths, labels, split = [], [], []
    for split_name, split_root in split_roots:
        for class_dir in _subdirs(split_root):
            files = sorted(p for p in class_dir.rglob("*")
                           if p.is_file() and p.suffix.lower() in SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(root).parts))
            paths += [str(_inside(root, p)) for p in files]
            labels += [names.index(class_dir.name)] * len(files)
            split += [split_name] * len(files)
    return _decode(paths, np.array(labels, dtype=np.int64), names, cfg, data,
                   split=np.array(split) if has_splits else None, source=str(root))


def load_csv_source(data: DataConfig, cfg: PrepareConfig) -> RawDataset:
    """A manifest with columns path,label[,patient_id][,split]; paths relative to its folder."""
    import pandas as pd

    manifest = Path(data.path)
    if not manifest.is_file():
        raise PipelineError(f"data.path: {manifest} does not exist; point it at a CSV manifest")
    try:
        frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - any unparsable CSV is the same user problem
        raise PipelineError(f"{manifest}: not a readable CSV ({type(e).__name__}: {e})") from None
    missing = [c for c in ("path", "label") if c not in frame.columns]
    if missing:
        raise PipelineError(f"{manifest}: missing column(s) {', '.join(missing)}; the manifest "
                            "needs path,label and optionally patient_id,split")
    if frame.empty:
        raise PipelineError(f"{manifest}: the manifest has no rows")
    root = manifest.resolve().parent
    paths = [str(_inside(root, root / p, row=i + 2)) for i, p in enumerate(frame["path"])]
    names = _class_names(data, _natural_sorted(set(frame["label"])))
    unknown = sorted(set(frame["label"]) - set(names))
    if unknown:
        raise PipelineError(f"{manifest}: label {unknown[0]!r} is not in data.classes "
                            f"({', '.join(names)}); fix the label or add the class")
    labels = frame["label"].map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
    split = None
    if "split" in frame.columns:
        bad = sorted(set(frame["split"]) - set(SPLIT_NAMES))
        if bad:
            raise PipelineError(f"{manifest}: split value {bad[0]!r} is not one of "
                                f"{', '.join(SPLIT_NAMES)}")
        split = frame["split"].to_numpy(str)
    patients = frame["patient_id"].to_numpy(str) if "patient_id" in frame.columns else None
    # Empty ids matter only where the split is made by patient: with a split column (e.g. an
    # export, whose synthetic rows belong to no patient) they are allowed.
    if patients is not None and split is None and (patients == "").any():
        row = int(np.flatnonzero(patients == "")[0]) + 2
        raise PipelineError(f"{manifest}: row {row} has an empty patient_id; fill it in or drop "
                            "the column (with a split column, empty ids are allowed)")
    return _decode(paths, labels, names, cfg, data, split=split, patient_ids=patients,
                   source=str(manifest))


SOURCES: dict[str, Callable[[DataConfig, PrepareConfig], RawDataset]] = {
    "digits": load_digits_source,
    "medmnist": load_medmnist_source,
    "folder": load_folder_source,
    "csv": load_csv_source,
}


def _decode(
    paths: list[str], labels: np.ndarray, names: list[str], cfg: PrepareConfig,
    data: DataConfig, *, source: str, split: np.ndarray | None = None,
    patient_ids: np.ndarray | None = None,
) -> RawDataset:
    if len(labels):
        require_two_classes(labels, names, where=source)  # before decoding thousands of files
    size = cfg.image_size or native_size(paths) or 4  # 4: nothing readable, reported below
    decoded = decode_many(paths, size=size, channels=cfg.channels, workers=data.workers)
    images, bad = decoded.images, decoded.bad
    keep = np.ones(len(paths), dtype=bool)
    keep[[i for i, _ in bad]] = False
    native = decoded.native[keep]
    sizes = Counter(_wxh(h, w) for h, w, _ in native.tolist())
    example = {_wxh(h, w): paths[i] for i, (h, w, _) in reversed(list(enumerate(decoded.native)))}
    _check_native(sizes, cfg, where=source, example=example)
    pick = (lambda a: a[keep] if a is not None else None)
    return RawDataset(
        images[keep] if bad else images, labels[keep], names, split=pick(split),
        patient_ids=pick(patient_ids), bad_files=[(paths[i], why) for i, why in bad],
        source=source, native_sizes=dict(sizes), n_colour=int(native[:, 2].sum()),
    )


def require_two_classes(labels: np.ndarray, names: list[str], *, where: str) -> None:
    """Balancing needs a minority and a majority: one class is nothing to compare. Checked on the
    labels before any file is decoded, and again after unreadable files were skipped."""
    present = np.unique(labels)
    if len(present) >= 2:
        return
    found = ", ".join(f"{names[c]!r} ({int((labels == c).sum())} images)" for c in present)
    empty = [n for i, n in enumerate(names) if i not in present]
    listed = f"; data.classes also lists {', '.join(map(repr, empty))} with no images" if empty else ""
    raise PipelineError(
        f"{where}: only one class found: {found or 'none'}{listed}; class balancing needs at "
        "least two classes: add the images of the other class(es) (one subfolder or label per "
        "class)"
    )


def _fit(images: np.ndarray, cfg: PrepareConfig) -> np.ndarray:
    """(N, H, W, C) -> the configured channels and size (native size when image_size is null;
    `_check_native` has made sure that it is one square size)."""
    return resize(to_channels(images, cfg.channels), cfg.image_size or images.shape[1])


def _count_colour(images: np.ndarray) -> int:
    """Images of (N, H, W, C) whose R, G, B differ somewhere."""
    if images.shape[-1] < 3:
        return 0
    rgb = images[..., :3]
    differs = (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])  # (N, H, W)
    return int(differs.reshape(len(images), -1).any(axis=1).sum())


def _wxh(h: int, w: int) -> str:
    return f"{w}x{h}"


def _check_native(sizes: Counter[str], cfg: PrepareConfig, *, where: str,
                  example: dict[str, str] | None = None) -> None:
    """With prepare.image_size null, every image must already be one square size of 4..256 px."""
    if cfg.image_size is not None or not sizes:
        return
    common = sizes.most_common(1)[0][0]
    w, h = map(int, common.split("x"))
    if len(sizes) > 1:
        shown = ", ".join(f"{n} at {k}" + (f" (e.g. {example[k]})" if example else "")
                          for k, n in sizes.most_common(3))
        more = f" and {len(sizes) - 3} other sizes" if len(sizes) > 3 else ""
        raise PipelineError(
            f"{where}: images have different sizes ({shown}{more}); set prepare.image_size "
            f"(e.g. {min(w, h, 256)}) to resize them all to one square size")
    if w != h:
        raise PipelineError(f"{where}: images are {common} (width x height), not square; set "
                            f"prepare.image_size (e.g. {min(w, h, 256)}) to resize them to a square")
    if not 4 <= w <= 256:
        raise PipelineError(f"{where}: images are {common}; the models take 4 to 256 pixels per "
                            f"side: set prepare.image_size (e.g. {min(max(w, 4), 256)}) to resize them")


def _class_names(data: DataConfig, found: list[str]) -> list[str]:
    return list(data.classes) if data.classes else found


def _check_label_range(labels: np.ndarray, names: list[str], *, where: str) -> None:
    if len(labels) and labels.max() >= len(names):
        raise PipelineError(f"{where}: label {labels.max()} is not in data.classes "
                            f"({len(names)} classes: {', '.join(names)})")


def _natural_sorted(names: set[str]) -> list[str]:
    """'2' before '10'; plain alphabetical for words."""
    return sorted(names, key=lambda s: [int(t) if t.isdigit() else t
                                        for t in re.split(r"(\d+)", s)])


def _existing_dir(path: str | None) -> Path:
    root = Path(path or "")
    if not root.is_dir():
        raise PipelineError(f"data.path: {root} is not a folder; point it at the dataset root")
    return root.resolve()


def _subdirs(path: Path) -> list[Path]:
    return sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))


def _inside(root: Path, path: Path, *, row: int | None = None) -> Path:
    """The resolved path, refused if it (or a symlink on the way) leaves the dataset root."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        where = f" (manifest row {row})" if row is not None else ""
        raise PipelineError(f"{path}{where} resolves to {resolved}, outside the dataset root "
                            f"{root}; keep every image inside it")
    return resolved


def _download_medmnist(name: str, size: int) -> Path:
    advice = (f"download {name}.npz from {MEDMNIST_URL} (or the medmnist package) and set "
              "data.path to it")
    try:
        import medmnist
        from medmnist import INFO
    except ImportError:
        raise PipelineError(f"data.name {name}: the medmnist package is not installed; "
                            f"pip install medmnist, or {advice}") from None
    if name not in INFO:
        raise PipelineError(f"data.name {name!r} is not a MedMNIST dataset; choose one of: "
                            f"{', '.join(sorted(INFO))}")
    kwargs = {} if size == 28 else {"size": size}
    try:
        dataset = getattr(medmnist, INFO[name]["python_class"])(
            split="train", download=True, **kwargs)
    except Exception as e:  # noqa: BLE001 - offline networks fail in many ways
        raise PipelineError(f"data.name {name}: download failed ({type(e).__name__}); this "
                            f"machine may be offline: {advice}") from None
    return Path(dataset.root) / (f"{name}.npz" if size == 28 else f"{name}_{size}.npz")
