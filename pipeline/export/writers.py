"""Write an ExportSet in one of FORMATS into a folder that replaces the previous export whole.

Every format reads back through the pipeline's own source readers (pipeline/data/sources.py) to
the same images and labels, byte for byte (tests/test_export.py):

    folder  <split>/<class>/<real|synthetic>_<row>.png (data.source: folder, torchvision
            ImageFolder on <out>/train) + manifest.csv (one row per image, with its provenance)
    csv     images/<split>/<real|synthetic>_<row>.png + dataset.csv (data.source: csv)
    npz     dataset.npz with the MedMNIST keys <split>_images, <split>_labels (data.source:
            medmnist) and <split>_synthetic + manifest.csv

The folder is written beside the old one and swapped in only when complete (atomic_dir): a full
disk or any other error leaves the previous export as it was. A folder that holds anything this
stage did not write is refused, never replaced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.artifacts import atomic_dir
from pipeline.errors import PipelineError
from pipeline.export.rows import SPLITS, ExportSet, Part

MARKER = ".export.json"  # says: this folder was written by the export stage
DATASHEET = "DATASHEET.md"
# what an export folder may hold: these top-level names, and row images below them
OWN_TOP = {MARKER, DATASHEET, "manifest.csv", "dataset.csv", "dataset.npz", "images", *SPLITS}
ROW_FILE = re.compile(r"(real|synthetic)_\d{6,}\.png")
MAX_NAMED = 10


def write_png(path: Path, image: np.ndarray) -> None:
    """(H, W, C) uint8 -> an 8-bit grey (C = 1) or RGB PNG; tests replace it to fill the disk."""
    from PIL import Image

    Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(
        path, format="PNG", compress_level=1)  # level 1: ~3x faster, files ~10% larger


def row_name(part: Part, i: int) -> str:
    return f"{'synthetic' if part.synthetic[i] else 'real'}_{i:06d}.png"


def provenance(ex: ExportSet, split: str, part: Part, *, where: list[str], column: str
               ) -> pd.DataFrame:
    """One row per image: where it is, its class, real or synthetic, and what regenerates it."""
    table = pd.DataFrame({column: where, "label": [ex.class_names[c] for c in part.labels],
                          "split": split})
    if part.patient_ids is not None:
        table["patient_id"] = part.patient_ids
    synthetic = part.synthetic
    table["synthetic"] = synthetic
    table["seed"] = pd.Series(part.seeds, dtype="Int64").mask(~synthetic)  # empty on real rows
    table["score"] = part.scores.round(6)
    table["checkpoint_sha256"] = np.where(synthetic, ex.checkpoint_sha256, "")
    if part.sample_weights is not None:  # the loss weight the chosen variant trains each row with
        table["sample_weight"] = part.sample_weights
    return table


def _write_images(part: Part, folder: Path, names: list[str], writer: Callable) -> None:
    for d in sorted({str(Path(n).parent) for n in names}):
        (folder / d).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        writer(folder / name, part.images[i])


def write_folder(ex: ExportSet, out: Path, *, writer: Callable = write_png) -> None:
    tables = []
    for split, part in ex.parts.items():
        names = [f"{split}/{_folder_name(ex.class_names[c])}/{row_name(part, i)}"
                 for i, c in enumerate(part.labels)]
        _write_images(part, out, names, writer)
        tables.append(provenance(ex, split, part, where=names, column="path"))
    pd.concat(tables).to_csv(out / "manifest.csv", index=False)


def write_csv(ex: ExportSet, out: Path, *, writer: Callable = write_png) -> None:
    tables = []
    for split, part in ex.parts.items():
        names = [f"images/{split}/{row_name(part, i)}" for i in range(len(part.labels))]
        _write_images(part, out, names, writer)
        tables.append(provenance(ex, split, part, where=names, column="path"))
    pd.concat(tables).to_csv(out / "dataset.csv", index=False)


def write_npz(ex: ExportSet, out: Path, *, writer: Callable = write_png) -> None:
    arrays: dict[str, np.ndarray] = {}
    tables = []
    for split, part in ex.parts.items():
        images = part.images[:, :, :, 0] if part.images.shape[3] == 1 else part.images
        arrays[f"{split}_images"] = images  # MedMNIST: (N, H, W) grey or (N, H, W, 3)
        arrays[f"{split}_labels"] = part.labels.reshape(-1, 1)  # MedMNIST: (N, 1)
        arrays[f"{split}_synthetic"] = part.synthetic
        if part.sample_weights is not None:
            arrays[f"{split}_sample_weight"] = part.sample_weights
        tables.append(provenance(ex, split, part, where=list(range(len(part.labels))),
                                 column="index"))
    with open(out / "dataset.npz", "wb") as f:
        np.savez(f, **arrays)
    pd.concat(tables).to_csv(out / "manifest.csv", index=False)


FORMATS: dict[str, Callable[..., None]] = {"folder": write_folder, "csv": write_csv,
                                           "npz": write_npz}
# export.format: same -> the writer for each data.source (digits: arrays in, arrays out)
SAME = {"folder": "folder", "csv": "csv", "medmnist": "npz", "digits": "npz"}


def resolve_format(fmt: str, source: str) -> str:
    return SAME[source] if fmt == "same" else fmt


def write_export(ex: ExportSet, out: Path, *, fmt: str, datasheet: str,
                 writer: Callable = write_png) -> None:
    """Write `ex` as `fmt` with its datasheet into `out`, replacing the previous export whole."""
    if fmt not in FORMATS:
        raise PipelineError(f"export.format: {fmt!r} is not a format; choose one of: same, "
                            f"{', '.join(FORMATS)}")
    refuse_foreign(out)
    for name in ex.class_names:
        _folder_name(name)
    try:
        with atomic_dir(out) as tmp:
            FORMATS[fmt](ex, tmp, writer=writer)
            (tmp / DATASHEET).write_text(datasheet)
            (tmp / MARKER).write_text(json.dumps({"written_by": "dvc stage export",
                                                  "format": fmt}) + "\n")
    except OSError as e:
        raise PipelineError(
            f"export: writing the export failed ({e.strerror or e}: {e.filename or out}); "
            f"nothing was changed: {out} still holds the previous export, if any. Free disk "
            f"space (about {_size_mb(ex)} MB of images) and rerun `dvc repro export`") from None


def foreign_files(out: Path) -> list[Path]:
    """What `out` holds that this stage did not write (in a folder without the marker: every
    file; empty folders lose nothing)."""
    if not out.exists():
        return []
    if not out.is_dir():
        return [out]
    if not (out / MARKER).is_file():
        return sorted(p for p in out.rglob("*") if p.is_file() or p.is_symlink())
    found = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if rel.parts[0] not in OWN_TOP or p.is_symlink():
            found.append(p)
        elif p.is_file() and len(rel.parts) > 1 and not ROW_FILE.fullmatch(p.name):
            found.append(p)
    return found


def refuse_foreign(out: Path) -> None:
    found = foreign_files(out)
    if not found:
        return
    named = ", ".join(str(p) for p in found[:MAX_NAMED])
    more = f" and {len(found) - MAX_NAMED} more" if len(found) > MAX_NAMED else ""
    raise PipelineError(
        f"export: {out} holds {len(found)} file(s) that this stage did not write: {named}{more}. "
        f"The export replaces {out} as a whole: move them elsewhere (or delete them), then rerun "
        "`dvc repro export`")


def _folder_name(name: str) -> str:
    """A class name as a folder name: refused when it cannot be one (the readers need it)."""
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise PipelineError(f"export: class name {name!r} cannot be a folder name; set "
                            "data.classes to names without '/', '\\' or a leading '.'")
    return name


def _size_mb(ex: ExportSet) -> int:
    return max(1, round(sum(p.images.nbytes for p in ex.parts.values()) / 2**20))
