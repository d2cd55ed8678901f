"""Atomic file outputs: datasets (.npz), JSON metrics, CSV tables, PNG grids and checkpoints.

Every writer goes through `atomic_path`: the content lands in a temporary file in the target folder
and is moved into place with `os.replace`, so a crash never leaves a half-written output behind.
Temporary names say whose they are (`.<name>.tmp-<host>-<pid>-<random>`): a process killed with
SIGKILL cannot clean up, so the next write to the same output removes the temporaries of processes
on this host that no longer exist, and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError


@dataclass(frozen=True)
class Split:
    """One split of a dataset in memory."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    patient_ids: np.ndarray | None = None  # (N,) str, where the source has them


# Who owns a temporary: the host (hashed: names stay short and portable) and the process id.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_OWNER = re.compile(r"\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[^/]*$")


def temporary_prefix(path: Path) -> str:
    """The start of every temporary name this process uses for `path`."""
    return f".{path.name}.tmp-{_HOST}-{os.getpid()}-"


def sweep_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of `path` left by killed processes of this host; return them.

    Only names of our own pattern count, and only when their process is gone: a live process
    (this one, a concurrent stage) or another host's temporary (shared storage) is never touched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    head = f".{path.name}.tmp-{_HOST}-"
    for entry in path.parent.iterdir():
        owner = _OWNER.search(entry.name) if entry.name.startswith(head) else None
        if owner is None or entry.name[: owner.start()] != f".{path.name}":
            continue
        if _alive(int(owner["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_SWEPT: set[Path] = set()  # outputs whose stale temporaries this process has already removed


def _sweep_once(path: Path) -> None:
    """One sweep per output and process: a folder of many outputs is not listed once per write."""
    key = path.absolute()
    if key not in _SWEPT:
        sweep_stale_temporaries(path)
        _SWEPT.add(key)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def save_split(path: str | Path, images: np.ndarray, labels: np.ndarray, **extra: np.ndarray) -> None:
    """One split as `.npz`: images (N, H, W, C) uint8, labels (N,) int64, plus optional columns.

    Uncompressed: writing is I/O-bound instead of zlib-bound (100k 64x64 images: ~0.5 s, not ~20 s),
    and the DVC cache deduplicates whole files anyway.
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) uint8, got {images.shape} {images.dtype}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must be ({len(images)},), got {labels.shape}")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels.astype(np.int64), **extra)


def load_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a split written by `save_split` (never unpickles: allow_pickle=False)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the stage that writes it (`dvc repro`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except (KeyError, ValueError, OSError) as e:
        raise PipelineError(f"{path}: not a valid split file ({e}); rerun `dvc repro`") from None
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (len(images),):
        raise PipelineError(
            f"{path}: expected images (N, H, W, C) uint8 and labels (N,), got "
            f"{images.shape} {images.dtype} and {labels.shape}; rerun `dvc repro`"
        )
    return images, labels.astype(np.int64)


def save_json(path: str | Path, obj: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def save_csv(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_png(path: str | Path, image: np.ndarray) -> None:
    """(H, W) or (H, W, C) uint8 -> PNG."""
    from PIL import Image

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def image_grid(rows: list[np.ndarray], *, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile rows of images, each row (n, H, W, C) uint8, into one (H', W', C) uint8 picture.

    Short rows are padded with blank tiles; `scale` enlarges tiny images (8x8 digits) for people.
    """
    n_cols = max((len(r) for r in rows), default=0)
    if n_cols == 0:
        raise ValueError("image_grid needs at least one image")
    h, w, c = next(r for r in rows if len(r)).shape[1:]
    grid = np.full(
        (len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, c), 255, dtype=np.uint8
    )
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = img
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def grid_scale(image_size: int, *, target: int = 48) -> int:
    """Integer upscaling so that each tile is at least ~`target` pixels wide."""
    return max(1, math.ceil(target / image_size))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Save tensors + plain Python values (loadable with `torch.load(weights_only=True)`)."""
    import torch

    # A file object, not the path: torch then names the records inside the zip archive/..., not
    # after the temporary file, so the same payload always gives the same bytes (and DVC hash).
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(dict(payload), f)


def load_checkpoint(path: str | Path, *, stage: str = "train_gan") -> dict[str, Any]:
    """Load a checkpoint safely: weights_only=True never runs code from the file. `stage`: the
    DVC stage that writes it (named in the error messages)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: checkpoint not found; run `dvc repro {stage}`")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is the same user problem
        raise PipelineError(
            f"{path}: not a loadable checkpoint ({type(e).__name__}); rerun `dvc repro {stage}`"
        ) from None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; on success it replaces `path` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
