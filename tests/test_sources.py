"""Data sources for medical images: MedMNIST files, folders (8/16-bit, DICOM), CSV manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import parse_config
from pipeline.data import prepare_dataset
from pipeline.data.decode import BadImage, decode_file
from pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]


def _cfg(data: dict, **prepare):
    prepare.setdefault("imbalance", "none")
    prepare.setdefault("image_size", 16)
    return parse_config({"data": {"workers": 1, **data}, "prepare": prepare})


def _prepare(data: dict, **prepare):
    cfg = _cfg(data, **prepare)
    return prepare_dataset(cfg.data, cfg.prepare, seed=0)


def _png_folder(root: Path, counts: dict[str, int], *, size=(12, 10), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 256, size, dtype=np.uint8)
            Image.fromarray(img).save(root / name / f"{name}_{i:03d}.png")
    return root


def write_dicom(path: Path, pixels: np.ndarray, *, photometric="MONOCHROME2", slope=1.0,
                intercept=0.0, window=None) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


# --- decoding ---------------------------------------------------------------------------------


def test_16bit_png_is_scaled_by_its_real_range_not_clamped(tmp_path):
    ramp = np.tile(np.linspace(1000, 3000, 32).astype(np.uint16), (32, 1))  # 12-bit-ish values
    Image.fromarray(ramp).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode.startswith("I;16")
    out = decode_file(tmp_path / "x.png", size=32, channels=1)
    assert out.dtype == np.uint8 and out.shape == (32, 32, 1)
    assert out.min() == 0 and out.max() == 255  # full range used, not clamped to white
    assert len(np.unique(out[0, :, 0])) == 32  # the ramp's steps survive
    assert np.all(np.diff(out[0, :, 0].astype(int)) > 0)


def test_dicom_modality_lut_and_monochrome1_inversion(tmp_path):
    ramp = np.tile(np.arange(0, 4096, 128, dtype=np.uint16), (32, 1))  # (32, 32), 0..3968
    write_dicom(tmp_path / "m2.dcm", ramp)
    write_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1")
    m2 = decode_file(tmp_path / "m2.dcm", size=32, channels=1)[0, :, 0].astype(int)
    m1 = decode_file(tmp_path / "m1.dcm", size=32, channels=1)[0, :, 0].astype(int)
    assert m2[0] == 0 and m2[-1] == 255 and np.all(np.diff(m2) > 0)
    assert np.array_equal(m1, 255 - m2)  # MONOCHROME1: low values are bright


def test_dicom_voi_window_is_applied(tmp_path):
    ramp = np.tile(np.arange(0, 4096, 128, dtype=np.uint16), (32, 1))
    write_dicom(tmp_path / "w.dcm", ramp, window=(1000, 400))  # shows 800..1200 only
    row = decode_file(tmp_path / "w.dcm", size=32, channels=1)[0, :, 0].astype(int)
    inside = (ramp[0] > 800) & (ramp[0] < 1200)
    assert row[ramp[0] <= 700].max() == 0 and row[ramp[0] >= 1300].min() == 255
    assert 0 < row[inside].min() < 255  # the window's inside spans grey levels


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"not an image"])
def test_bad_files_raise_badimage(tmp_path, content):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(BadImage):
        decode_file(tmp_path / "bad.png", size=8, channels=1)


def test_mixed_sizes_and_modes_become_one_shape(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / "a" / "rgb.jpg")
    Image.fromarray(np.zeros((9, 9), np.uint8)).convert("P").save(tmp_path / "a" / "pal.bmp")
    Image.fromarray(np.zeros((20, 20, 4), np.uint8)).save(tmp_path / "a" / "rgba.png")
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "a" / "g.tif")
    for f in sorted((tmp_path / "a").iterdir()):
        assert decode_file(f, size=16, channels=3).shape == (16, 16, 3)
        assert decode_file(f, size=16, channels=1).shape == (16, 16, 1)


# --- medmnist ---------------------------------------------------------------------------------


def _medmnist(path: Path, *, rgb=False, labels_2d=True, counts=(20, 8, 8)) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in zip(("train", "val", "test"), counts):
        shape = (n, 28, 28, 3) if rgb else (n, 28, 28)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        y = np.arange(n) % 2
        arrays[f"{split}_labels"] = y[:, None] if labels_2d else y
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("labels_2d", [False, True])
def test_medmnist_keeps_its_own_splits(tmp_path, rgb, labels_2d):
    path = _medmnist(tmp_path / "m.npz", rgb=rgb, labels_2d=labels_2d)
    ds = _prepare({"source": "medmnist", "path": str(path)}, image_size=28, channels=3 if rgb else 1)
    assert ds.report["split_method"] == "source"
    assert ds.report["n_images"] == {"train": 20, "val": 8, "test": 8}
    assert ds.report["counts"]["train"] == {0: 10, 1: 10}
    assert ds.splits["train"].images.shape == (20, 28, 28, 3 if rgb else 1)
    with np.load(path) as z:  # untouched pixels at native size
        expected = z["val_images"] if rgb else z["val_images"][..., None]
    assert np.array_equal(ds.splits["val"].images, expected)


def test_medmnist_rejects_multilabel_and_missing_keys(tmp_path):
    np.savez(tmp_path / "multi.npz", **{f"{s}_{k}": np.zeros((4, 3) if k == "labels" else
                                                             (4, 28, 28), np.uint8)
                                        for s in ("train", "val", "test")
                                        for k in ("images", "labels")})
    with pytest.raises(PipelineError, match="multi-label"):
        _prepare({"source": "medmnist", "path": str(tmp_path / "multi.npz")})
    np.savez(tmp_path / "partial.npz", train_images=np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(PipelineError, match="missing train_images/train_labels|train_labels"):
        _prepare({"source": "medmnist", "path": str(tmp_path / "partial.npz")})


def test_medmnist_by_name_without_package_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", None)  # import fails as if not installed/offline
    with pytest.raises(PipelineError, match="set data.path"):
        _prepare({"source": "medmnist", "name": "pneumoniamnist"}, image_size=28)


def test_imbalance_applies_to_medmnist_train_only(tmp_path):
    path = _medmnist(tmp_path / "m.npz", counts=(40, 8, 8))
    ds = _prepare({"source": "medmnist", "path": str(path)}, image_size=28,
                  imbalance="fractions", keep_fractions={0: 0.25})
    assert ds.report["counts"]["train"] == {0: 5, 1: 20}
    assert ds.report["counts"]["val"] == {0: 4, 1: 4}


# --- folders ----------------------------------------------------------------------------------


def test_folder_source_counts_and_class_order(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"benign": 20, "malignant": 10})
    ds = _prepare({"source": "folder", "path": str(root), "classes": ["malignant", "benign"]})
    assert ds.class_names == ["malignant", "benign"]
    total = {c: sum(ds.report["counts"][s][c] for s in ("train", "val", "test")) for c in (0, 1)}
    assert total == {0: 10, 1: 20}
    for s in ("train", "val", "test"):
        assert ds.splits[s].images.shape[1:] == (16, 16, 1)
        assert set(ds.report["counts"][s].values()) != {0}


def test_folder_with_split_subfolders_uses_them(tmp_path):
    for split, n in (("train", 6), ("val", 3), ("test", 4)):
        _png_folder(tmp_path / "root" / split, {"a": n, "b": n}, seed=n)
    ds = _prepare({"source": "folder", "path": str(tmp_path / "root")})
    assert ds.report["split_method"] == "source"
    assert ds.report["n_images"] == {"train": 12, "val": 6, "test": 8}


def test_bad_image_fails_naming_every_file(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"a": 6, "b": 6})
    (root / "a" / "empty.png").write_bytes(b"")
    good = (root / "b" / "b_000.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(PipelineError) as err:
        _prepare({"source": "folder", "path": str(root)})
    msg = str(err.value)
    assert "2 unreadable" in msg and "empty.png" in msg and "truncated.png" in msg
    assert "on_bad_image: skip" in msg
    ds = _prepare({"source": "folder", "path": str(root)}, on_bad_image="skip")
    assert ds.report["bad_images_skipped"]["count"] == 2
    assert sum(ds.report["n_images"].values()) == 12


def test_symlink_escaping_the_root_is_refused(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"a": 4, "b": 4})
    outside = _png_folder(tmp_path / "elsewhere", {"x": 1})
    os.symlink(outside / "x" / "x_000.png", root / "a" / "link.png")
    with pytest.raises(PipelineError, match="outside the dataset root"):
        _prepare({"source": "folder", "path": str(root)})


@pytest.mark.parametrize("data, match", [
    ({"source": "folder", "path": "/nonexistent/dir"}, "is not a folder"),
    ({"source": "csv", "path": "/nonexistent/m.csv"}, "does not exist"),
    ({"source": "medmnist", "path": "/nonexistent/m.npz"}, "does not exist"),
])
def test_missing_path_is_one_clear_error(data, match):
    with pytest.raises(PipelineError, match=match):
        _prepare(data)


def test_empty_folder_and_class_with_too_few_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match="no class subfolders"):
        _prepare({"source": "folder", "path": str(tmp_path / "empty")})
    root = _png_folder(tmp_path / "imgs", {"a": 10, "b": 2})
    with pytest.raises(PipelineError, match="^class 'b' \\(label 1\\) has only 2 images"):
        _prepare({"source": "folder", "path": str(root)})


def test_folder_not_in_class_list_is_an_error(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"a": 4, "b": 4, "c": 4})
    with pytest.raises(PipelineError, match="'c' is not in data.classes"):
        _prepare({"source": "folder", "path": str(root), "classes": ["a", "b"]})


# --- CSV manifests with patients --------------------------------------------------------------


def _manifest(tmp_path: Path, *, n_patients=20, per_patient=3, extra_rows=()) -> Path:
    _png_folder(tmp_path / "imgs", {"all": n_patients * per_patient})
    rows = ["path,label,patient_id"]
    for p in range(n_patients):
        label = "malignant" if p % 4 == 0 else "benign"
        for k in range(per_patient):
            rows.append(f"imgs/all/all_{p * per_patient + k:03d}.png,{label},P{p:03d}")
    rows += list(extra_rows)
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "manifest.csv"


def test_csv_patient_grouped_split_has_no_patient_in_two_splits(tmp_path):
    ds = _prepare({"source": "csv", "path": str(_manifest(tmp_path))})
    assert ds.report["split_method"] == "patient_grouped_stratified"
    ids = {s: set(ds.splits[s].patient_ids.tolist()) for s in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"]
    assert not ids["val"] & ids["test"]
    assert len(ids["train"] | ids["val"] | ids["test"]) == 20
    for s in ("train", "val", "test"):  # stratified: both classes everywhere
        assert min(ds.report["counts"][s].values()) > 0
        assert len(ds.splits[s].patient_ids) == len(ds.splits[s].labels)


def test_csv_split_column_is_used(tmp_path):
    _png_folder(tmp_path / "imgs", {"x": 12})
    rows = ["path,label,split"] + [
        f"imgs/x/x_{i:03d}.png,{i % 2},{('train', 'train', 'val', 'test')[i % 4]}"
        for i in range(12)]
    (tmp_path / "m.csv").write_text("\n".join(rows))
    ds = _prepare({"source": "csv", "path": str(tmp_path / "m.csv")})
    assert ds.report["n_images"] == {"train": 6, "val": 3, "test": 3}


def test_csv_path_escaping_the_manifest_folder_is_refused(tmp_path):
    path = _manifest(tmp_path, extra_rows=["../secret.png,benign,P999"])
    with pytest.raises(PipelineError, match="outside the dataset root"):
        _prepare({"source": "csv", "path": str(path)})


def test_csv_unknown_label_and_missing_columns(tmp_path):
    path = _manifest(tmp_path)
    with pytest.raises(PipelineError, match="'malignant' is not in data.classes"):
        _prepare({"source": "csv", "path": str(path), "classes": ["benign", "other"]})
    (tmp_path / "bad.csv").write_text("file,label\na.png,0\n")
    with pytest.raises(PipelineError, match="missing column"):
        _prepare({"source": "csv", "path": str(tmp_path / "bad.csv")})


def test_duplicates_are_counted_and_dropped_from_train(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"a": 30, "b": 30})
    for cls in ("a", "b"):  # every image twice: copies land in different splits
        for f in list((root / cls).glob("*.png")):
            (root / cls / f"copy_{f.name}").write_bytes(f.read_bytes())
    ds = _prepare({"source": "folder", "path": str(root)})
    dup = ds.report["duplicates"]
    cross = dup["train_val"] + dup["train_test"]
    assert cross > 0 and dup["within_train"] > 0
    dropped = _prepare({"source": "folder", "path": str(root)}, drop_duplicates=True)
    assert dropped.report["n_images"]["train"] == ds.report["n_images"]["train"] - sum(
        1 for img in ds.splits["train"].images
        if any(np.array_equal(img, v) for s in ("val", "test") for v in ds.splits[s].images))


# --- the stage ----------------------------------------------------------------------------------


@pytest.mark.slow  # starts the stage
def test_prepare_stage_bad_image_exit_1_no_traceback_no_output(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"a": 6, "b": 6})
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    work = tmp_path / "proj"
    work.mkdir()
    (work / "params.yaml").write_text(
        f"data:\n  source: folder\n  path: {root}\nprepare:\n  image_size: 16\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--out", "data/prepared",
         "--metrics", "metrics/prepare.json"], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "broken.png" in proc.stderr
    assert not (work / "data").exists() and not (work / "metrics").exists()


# --- a user's own data: native size, no silent thinning, one-class folders -------------------


def _defaults(data: dict) -> object:
    """prepare_dataset with only data.* set: every prepare key at its params.yaml default."""
    cfg = parse_config({"data": {"workers": 1, **data}})
    return prepare_dataset(cfg.data, cfg.prepare, seed=0)


def test_medmnist_with_only_source_and_path_keeps_size_and_counts(tmp_path):
    # BreastMNIST's shape: 28x28, 147 malignant (0) / 399 benign (1) training images
    rng = np.random.default_rng(0)
    arrays = {}
    for split, (n0, n1) in {"train": (147, 399), "val": (21, 57), "test": (42, 114)}.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n0 + n1, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.repeat([0, 1], [n0, n1])[:, None]
    np.savez(tmp_path / "breast.npz", **arrays)
    ds = _defaults({"source": "medmnist", "path": str(tmp_path / "breast.npz")})
    assert ds.splits["train"].images.shape == (546, 28, 28, 1)
    assert ds.report["counts"]["train"] == {0: 147, 1: 399}
    assert ds.report["counts"]["test"] == {0: 42, 1: 114}
    assert ds.report["imbalance"] == "none" and ds.report["simulated_imbalance"] is None
    assert ds.report["resized"] is None and ds.report["native_sizes"] == {"28x28": 780}
    assert ds.report["data_changes"] == []
    np.testing.assert_array_equal(ds.splits["train"].images[..., 0], arrays["train_images"])


def test_explicit_imbalance_on_user_data_is_honoured_and_reported(tmp_path):
    path = _medmnist(tmp_path / "m.npz", counts=(40, 8, 8))  # train: 20 of class 0, 20 of 1
    ds = _prepare({"source": "medmnist", "path": str(path), "classes": ["malignant", "benign"]},
                  image_size=14, imbalance="fractions", keep_fractions={0: 0.25})
    assert ds.report["counts"]["train"] == {0: 5, 1: 20}
    assert ds.report["simulated_imbalance"] == {
        "method": "fractions", "removed": {0: 15, 1: 0}, "count": 15, "of": 40}
    assert ds.report["resized"] == {"count": 56, "from": {"28x28": 56}, "to": "14x14"}
    assert ds.report["data_changes"] == [
        ("Resized 56 images (56 at 28x28) to 14x14 (prepare.image_size: 14; null keeps the "
         "native size)."),
        ("Removed 15 of 40 training images to simulate imbalance (prepare.imbalance: fractions): "
         "15 of class 'malignant'. Set prepare.imbalance: none to keep them all."),
    ]


def test_folder_keeps_the_native_size_when_image_size_is_null(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"benign": 6, "malignant": 4}, size=(12, 12))
    ds = _prepare({"source": "folder", "path": str(root)}, image_size=None)
    assert ds.splits["train"].images.shape[1:] == (12, 12, 1)
    assert ds.report["native_sizes"] == {"12x12": 10} and ds.report["resized"] is None
    first = np.asarray(Image.open(root / "benign" / "benign_000.png"))
    assert any(np.array_equal(img[..., 0], first) for s in ds.splits.values() for img in s.images)


def test_mixed_sizes_with_native_size_are_one_line_naming_the_key(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"a": 5, "b": 4}, size=(16, 16))
    _png_folder(root, {"b": 1}, size=(20, 24), seed=1)  # b_000.png again, now 24 wide, 20 high
    with pytest.raises(PipelineError) as e:
        _prepare({"source": "folder", "path": str(root)}, image_size=None)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{root}: images have different sizes (8 at 16x16 (e.g. ")
    assert "1 at 24x20 (e.g. " in msg and "b_000.png" in msg
    assert msg.endswith("set prepare.image_size (e.g. 16) to resize them all to one square size")
    # with the key set, the same folder is accepted and the resizing is recorded
    ds = _prepare({"source": "folder", "path": str(root)}, image_size=16)
    assert ds.report["resized"] == {"count": 1, "from": {"24x20": 1}, "to": "16x16"}


def test_non_square_native_images_ask_for_image_size(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"a": 4, "b": 4}, size=(12, 10))
    with pytest.raises(PipelineError, match=r"images are 10x12 \(width x height\), not square; "
                                            r"set prepare.image_size \(e.g. 10\)"):
        _prepare({"source": "folder", "path": str(root)}, image_size=None)


@pytest.mark.parametrize("classes", [[], ["benign", "malignant"]])
def test_a_one_class_folder_is_refused_naming_the_class(tmp_path, classes):
    root = _png_folder(tmp_path / "imgs", {"benign": 12})
    with pytest.raises(PipelineError) as e:
        _prepare({"source": "folder", "path": str(root), "classes": classes})
    msg = str(e.value)
    listed = "; data.classes also lists 'malignant' with no images" if classes else ""
    assert msg == (f"{root}: only one class found: 'benign' (12 images){listed}; class balancing "
                   "needs at least two classes: add the images of the other class(es) (one "
                   "subfolder or label per class)")


def test_a_one_class_csv_is_refused(tmp_path):
    _png_folder(tmp_path / "imgs", {"x": 6})
    rows = "".join(f"imgs/x/x_{i:03d}.png,benign\n" for i in range(6))
    (tmp_path / "m.csv").write_text("path,label\n" + rows)
    with pytest.raises(PipelineError, match=r"only one class found: 'benign' \(6 images\)"):
        _prepare({"source": "csv", "path": str(tmp_path / "m.csv")})


def _run_prepare_stage(tmp_path: Path, params: str) -> subprocess.CompletedProcess:
    work = tmp_path / "proj"
    work.mkdir(exist_ok=True)
    (work / "params.yaml").write_text(params)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("PIPELINE_RUN_ID", None)
    return subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--out", "data/prepared",
         "--metrics", "metrics/prepare.json"], cwd=work, env=env, capture_output=True, text=True,
        check=False)


@pytest.mark.slow  # starts the stage
def test_prepare_stage_refuses_a_one_class_folder_in_one_line(tmp_path):
    root = _png_folder(tmp_path / "imgs", {"benign": 9})
    proc = _run_prepare_stage(tmp_path, f"data:\n  source: folder\n  path: {root}\n")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [(
        f"prepare: error: {root}: only one class found: 'benign' (9 images); class balancing "
        "needs at least two classes: add the images of the other class(es) (one subfolder or "
        "label per class)")]
    assert not (tmp_path / "proj" / "data").exists()
    assert not (tmp_path / "proj" / "metrics").exists()


@pytest.mark.slow  # starts the stage
def test_prepare_stage_prints_every_change_it_made_to_the_data(tmp_path):
    path = _medmnist(tmp_path / "m.npz", labels_2d=False, counts=(40, 8, 8))
    proc = _run_prepare_stage(tmp_path, (
        f"data:\n  source: medmnist\n  path: {path}\n  classes: [malignant, benign]\n"
        "prepare:\n  image_size: 14\n  imbalance: fractions\n  keep_fractions: {0: 0.25}\n"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines == [
        ("prepare: {'train': 25, 'val': 8, 'test': 8} images at 14x14; train class counts: "
         "malignant: 5, benign: 20"),
        ("prepare: NOTE: Resized 56 images (56 at 28x28) to 14x14 (prepare.image_size: 14; null "
         "keeps the native size)."),
        ("prepare: NOTE: Removed 15 of 40 training images to simulate imbalance "
         "(prepare.imbalance: fractions): 15 of class 'malignant'. Set prepare.imbalance: none "
         "to keep them all."),
    ]
    report = json.loads((tmp_path / "proj" / "metrics" / "prepare.json").read_text())
    assert report["data_changes"] == [line.removeprefix("prepare: NOTE: ") for line in lines[1:]]
    assert report["resized"] == {"count": 56, "from": {"28x28": 56}, "to": "14x14"}
    assert report["simulated_imbalance"]["removed"] == {"0": 15, "1": 0}


def test_colour_turned_grey_is_reported_and_grey_saved_as_rgb_is_not(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(4):
            grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            rgb = np.stack([grey] * 3, axis=-1)  # grey saved as RGB: nothing lost by going grey
            Image.fromarray(rgb).save(tmp_path / "imgs" / name / f"g{i}.png")
    colour = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "imgs" / "a" / "c.png")
    ds = _prepare({"source": "folder", "path": str(tmp_path / "imgs")}, image_size=None)
    assert ds.report["colour_images"] == 1
    assert ds.report["data_changes"] == [
        ("Converted 1 colour images to grayscale (prepare.channels: 1); set prepare.channels: 3 "
         "to keep colour.")]
    kept = _prepare({"source": "folder", "path": str(tmp_path / "imgs")}, image_size=None,
                    channels=3)
    assert kept.report["data_changes"] == [] and kept.splits["train"].images.shape[-1] == 3
    medmnist = _prepare({"source": "medmnist", "path": str(_medmnist(tmp_path / "m.npz",
                                                                      rgb=True))}, image_size=None)
    assert medmnist.report["colour_images"] == 36  # random RGB noise: every image has colour
