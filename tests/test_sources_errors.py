"""pipeline/data/sources.py: the error paths a user's data can take, each one line (a
PipelineError) that names the file and what to change. Each test fails if its check is removed
from sources.py (planted fault: the check deleted, so the bad data goes on, or fails later with a
traceback or an unrelated message)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import parse_config
from pipeline.data import prepare_dataset
from pipeline.errors import PipelineError


def prepare(data: dict, **prepare_cfg):
    prepare_cfg.setdefault("imbalance", "none")
    cfg = parse_config({"data": {"workers": 1, **data}, "prepare": prepare_cfg})
    return prepare_dataset(cfg.data, cfg.prepare, seed=0)


def refused(match: str, data: dict, **prepare_cfg) -> str:
    with pytest.raises(PipelineError, match=match) as info:
        prepare(data, **prepare_cfg)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def medmnist(path: Path, *, size: int = 28, dtype=np.uint8, labels=None) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 200, (8, size, size)).astype(dtype)
        arrays[f"{split}_labels"] = (np.arange(8) % 2 if labels is None else labels)[:, None]
    np.savez(path, **arrays)
    return path


def pngs(root: Path, counts: dict[str, int], *, size: int = 12) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((size, size), 10 * i, np.uint8)).save(root / name / f"{i}.png")
    return root


# --- MedMNIST .npz ------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "flipped", "text"])
def test_a_corrupt_npz_is_one_line(tmp_path: Path, damage: str) -> None:
    """Found by this test: a truncated .npz raised zipfile.BadZipFile, which the loader did not
    catch (a traceback instead of one line)."""
    good = medmnist(tmp_path / "ok.npz").read_bytes()
    path = tmp_path / "broken.npz"
    if damage == "truncated":
        path.write_bytes(good[:300])
    elif damage == "flipped":  # a damaged byte inside the first array: its CRC fails
        path.write_bytes(good[:200] + bytes([good[200] ^ 0xFF]) + good[201:])
    else:
        path.write_text("train_images,train_labels\n")
    message = refused("not a readable .npz file", {"source": "medmnist", "path": str(path)})
    assert message.startswith(str(path))


def test_negative_labels_are_refused(tmp_path: Path) -> None:
    path = medmnist(tmp_path / "m.npz", labels=np.array([0, 1, -1, 1, 0, 1, 0, 1]))
    refused(r"labels must be >= 0, found -1", {"source": "medmnist", "path": str(path)})


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int64])
def test_non_uint8_medmnist_images_are_refused(tmp_path: Path, dtype) -> None:
    path = medmnist(tmp_path / "m.npz", dtype=dtype)
    message = refused("train_images must be uint8", {"source": "medmnist", "path": str(path)})
    assert np.dtype(dtype).name in message


@pytest.mark.parametrize("size", [3, 300])
def test_native_sizes_outside_4_to_256_px_ask_for_image_size(tmp_path: Path, size: int) -> None:
    path = medmnist(tmp_path / "m.npz", size=size)
    message = refused(f"images are {size}x{size}; the models take 4 to 256 pixels per side",
                      {"source": "medmnist", "path": str(path)}, image_size=None)
    assert f"set prepare.image_size (e.g. {min(max(size, 4), 256)})" in message


def test_a_folder_of_too_small_pngs_asks_for_image_size(tmp_path: Path) -> None:
    root = pngs(tmp_path / "imgs", {"a": 3, "b": 3}, size=2)
    refused("images are 2x2; the models take 4 to 256 pixels per side",
            {"source": "folder", "path": str(root)}, image_size=None)
    ds = prepare({"source": "folder", "path": str(root)}, image_size=8)  # the fix works
    assert ds.splits["train"].images.shape[1:] == (8, 8, 1)


# --- CSV manifests ------------------------------------------------------------------------------

def manifest(tmp_path: Path, rows: list[str], header: str = "path,label") -> Path:
    pngs(tmp_path / "imgs", {"x": 12})
    (tmp_path / "m.csv").write_text("\n".join([header, *rows]) + "\n")
    return tmp_path / "m.csv"


def test_an_unreadable_csv_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81path,label\n\x00\x9f")
    refused("not a readable CSV", {"source": "csv", "path": str(binary)})
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('path,label\na.png,0\n"b.png,1,2\n')  # an unclosed quote
    refused("not a readable CSV", {"source": "csv", "path": str(ragged)})


def test_a_split_value_that_is_not_train_val_or_test_is_named(tmp_path: Path) -> None:
    rows = [f"imgs/x/{i}.png,{i % 2},{('train', 'valid', 'test')[i % 3]}" for i in range(12)]
    path = manifest(tmp_path, rows, header="path,label,split")
    refused("split value 'valid' is not one of train, val, test",
            {"source": "csv", "path": str(path)})


def test_an_empty_patient_id_names_its_row(tmp_path: Path) -> None:
    rows = [f"imgs/x/{i}.png,{i % 2},{'' if i == 4 else f'P{i}'}" for i in range(12)]
    path = manifest(tmp_path, rows, header="path,label,patient_id")
    refused("row 6 has an empty patient_id; fill it in or drop the column",
            {"source": "csv", "path": str(path)})  # row 6: the header is row 1
