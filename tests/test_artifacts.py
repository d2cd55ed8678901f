"""pipeline/artifacts.py: atomic writes, split files, JSON, grids and checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.artifacts import (
    atomic_dir,
    atomic_path,
    file_sha256,
    grid_scale,
    image_grid,
    load_checkpoint,
    load_split,
    save_checkpoint,
    save_json,
    save_split,
    sweep_stale_temporaries,
    temporary_prefix,
)
from pipeline.errors import PipelineError


class _Touch:
    """Unpickling this object creates `marker`: proves whether a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def strict_json(path: Path) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


# --- splits -------------------------------------------------------------------------------------

def test_save_and_load_split_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 2, 1, 2, 0], dtype=np.int32)
    path = tmp_path / "sub" / "train.npz"
    save_split(path, images, labels, patient_ids=np.array(["a", "b", "c", "d", "e"]))
    got_images, got_labels = load_split(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["images", "labels", "patient_ids"]
        assert z["patient_ids"].tolist() == ["a", "b", "c", "d", "e"]
    assert os.listdir(path.parent) == ["train.npz"]


def test_an_empty_split_roundtrips(tmp_path: Path) -> None:
    save_split(tmp_path / "s.npz", np.zeros((0, 8, 8, 1), np.uint8), np.zeros(0, np.int64))
    images, labels = load_split(tmp_path / "s.npz")
    assert images.shape == (0, 8, 8, 1) and labels.shape == (0,)


@pytest.mark.parametrize(("images", "labels", "match"), [
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros(2), "must be \\(N, H, W, C\\) uint8"),
    (np.zeros((2, 8, 8), np.uint8), np.zeros(2), "must be \\(N, H, W, C\\) uint8"),
    (np.zeros((2, 8, 8, 1), np.uint8), np.zeros(3), "labels must be \\(2,\\)"),
])
def test_save_split_refuses_malformed_arrays(tmp_path: Path, images, labels, match) -> None:
    with pytest.raises(ValueError, match=match):
        save_split(tmp_path / "bad.npz", images, labels)
    assert list(tmp_path.iterdir()) == []


def test_load_split_of_a_missing_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"train\.npz: not found; run the stage that writes it"):
        load_split(tmp_path / "train.npz")


def test_load_split_with_wrong_keys_is_an_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 8, 8, 1), np.uint8), y=np.zeros(2))
    with pytest.raises(PipelineError, match="not a valid split file"):
        load_split(tmp_path / "x.npz")


def test_load_split_of_a_non_npz_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_bytes(b"this is not a zip archive")
    with pytest.raises(PipelineError, match="x.npz"):
        load_split(tmp_path / "x.npz")


def test_load_split_with_the_wrong_dtype_is_an_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", images=np.zeros((2, 8, 8, 1), np.float32), labels=np.zeros(2))
    with pytest.raises(PipelineError, match=r"expected images \(N, H, W, C\) uint8"):
        load_split(tmp_path / "x.npz")


def test_load_split_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    objects = np.empty(1, dtype=object)
    objects[0] = _Touch(marker)
    np.savez(tmp_path / "evil.npz", images=objects, labels=np.zeros(1, np.int64))
    pickle.loads(pickle.dumps(_Touch(tmp_path / "control")))  # the payload does work when unpickled
    assert (tmp_path / "control").exists()
    with pytest.raises(PipelineError, match="not a valid split file"):
        load_split(tmp_path / "evil.npz")
    assert not marker.exists()


# --- atomic writes --------------------------------------------------------------------------------

def test_atomic_path_replaces_the_target_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "m.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["m.json"]


def test_atomic_path_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="crash"), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["m.json"]


def test_atomic_dir_replaces_the_folder_as_a_whole(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "stale.npz").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "train.npz").write_text("new")
        assert (target / "stale.npz").exists()  # the old folder stays until the end
    assert sorted(os.listdir(target)) == ["train.npz"]
    assert os.listdir(tmp_path) == ["prepared"]


def test_atomic_dir_keeps_the_old_folder_on_error(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "train.npz").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "train.npz").write_text("new")
        raise RuntimeError("crash")
    assert (target / "train.npz").read_text() == "old"
    assert os.listdir(tmp_path) == ["prepared"]


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_sweep_removes_only_our_temporaries_of_dead_processes(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    ours = temporary_prefix(target)  # .prepared.tmp-<host>-<this pid>-
    host_part = ours[: ours.rindex("-", 0, len(ours) - 1) + 1]  # .prepared.tmp-<host>-
    dead = _dead_pid()
    stale_dir = tmp_path / f"{host_part}{dead}-abc123.tmp"
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "train.npz").write_text("half")
    stale_file = tmp_path / f".prepared.json.tmp-{host_part.split('-')[1]}-{dead}-x.tmp"
    stale_file.write_text("half")  # another output's temporary: swept only when it is written
    keep = [
        tmp_path / f"{ours}live.tmp",  # this (live) process
        tmp_path / f".prepared.tmp-00000000-{dead}-other-host.tmp",  # another host's (shared FS)
        tmp_path / ".prepared.backup",  # the user's own files
        tmp_path / f".prepared.old.tmp-{host_part.split('-')[1]}-{dead}-x.tmp",  # other output
        tmp_path / "prepared",
    ]
    for k in keep:
        k.mkdir()
    assert sweep_stale_temporaries(target) == [stale_dir]
    assert sorted(os.listdir(tmp_path)) == sorted([k.name for k in keep] + [stale_file.name])
    assert sweep_stale_temporaries(tmp_path / "prepared.json") == [stale_file]


_KILLED_WRITER = """
import sys, time
from pipeline.artifacts import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "train.npz").write_bytes(b"x" * 1000)
    print(tmp.name, flush=True)
    time.sleep(60)
"""


def test_a_killed_stage_leaves_a_temporary_that_the_next_run_removes(tmp_path: Path) -> None:
    target = tmp_path / "data" / "prepared"
    names = []
    for _ in range(3):  # repeated kills do not pile up: each run sweeps the one before
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)],
                                stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
        names.append(proc.stdout.readline().strip())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        # SIGKILL: the killed run could not clean up; the earlier ones' folders are gone
        assert os.listdir(target.parent) == [names[-1]]
    assert len(set(names)) == 3
    with atomic_dir(target) as tmp:
        (tmp / "train.npz").write_text("new")
    assert os.listdir(target.parent) == ["prepared"]
    assert (target / "train.npz").read_text() == "new"


def test_atomic_files_get_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        save_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644


def test_atomic_dirs_get_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "prepared") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "prepared").stat().st_mode & 0o777 == 0o755


# --- JSON ---------------------------------------------------------------------------------------

def test_save_json_writes_strict_json_with_null_for_nan(tmp_path: Path) -> None:
    save_json(tmp_path / "m.json", {
        "auc": float("nan"), "inf": float("inf"), "n": np.int64(3), "f": np.float32(0.5),
        "recall": {0: 1.0, 1: float("nan")}, "list": [1, float("-inf")], "name": "x",
    })
    assert strict_json(tmp_path / "m.json") == {
        "auc": None, "inf": None, "n": 3, "f": 0.5, "recall": {"0": 1.0, "1": None},
        "list": [1, None], "name": "x",
    }


def test_save_json_turns_numpy_nan_into_null(tmp_path: Path) -> None:
    save_json(tmp_path / "m.json", {"a": np.float64("nan"), "b": np.float32("inf")})
    assert strict_json(tmp_path / "m.json") == {"a": None, "b": None}


# --- grids and hashes ---------------------------------------------------------------------------

def test_image_grid_shape_and_placement() -> None:
    rows = [np.full((3, 4, 5, 1), 10 * (i + 1), np.uint8) for i in range(2)]
    rows[1] = rows[1][:2]  # a short row is padded with blank tiles
    grid = image_grid(rows, pad=1)
    # height 2 * (4 + 1) + 1, width 3 * (5 + 1) + 1
    assert grid.shape == (11, 19, 1) and grid.dtype == np.uint8
    assert np.all(grid[1:5, 1:6] == 10)  # row 0, tile 0
    assert np.all(grid[6:10, 7:12] == 20)  # row 1, tile 1
    assert np.all(grid[6:10, 13:18] == 255)  # row 1, missing tile 2: blank
    assert np.all(grid[0, :] == 255) and np.all(grid[5, :] == 255)  # padding lines
    big = image_grid(rows, pad=1, scale=3)
    assert big.shape == (33, 57, 1)
    np.testing.assert_array_equal(big[::3, ::3], grid)


def test_image_grid_of_rgb_tiles_without_padding() -> None:
    rows = [np.zeros((2, 8, 8, 3), np.uint8)]
    assert image_grid(rows, pad=0).shape == (8, 16, 3)


def test_image_grid_needs_an_image() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        image_grid([np.zeros((0, 8, 8, 1), np.uint8)])


@pytest.mark.parametrize(("size", "scale"), [(8, 6), (28, 2), (48, 1), (64, 1), (5, 10)])
def test_grid_scale(size: int, scale: int) -> None:
    assert grid_scale(size) == scale


def test_file_sha256(tmp_path: Path) -> None:
    data = os.urandom(3_000_000)  # more than one read block
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


# --- checkpoints --------------------------------------------------------------------------------

def test_checkpoint_roundtrip_loads_with_weights_only(tmp_path: Path) -> None:
    payload = {"format": "x/v1", "state_dict": {"w": torch.arange(6.0).view(2, 3)},
               "step": 7, "betas": (0.5, 0.999), "names": ["a", "b"], "seed": None}
    save_checkpoint(tmp_path / "c.pt", payload)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    loaded = load_checkpoint(tmp_path / "c.pt")
    for got in (raw, loaded):
        assert got.keys() == payload.keys()
        torch.testing.assert_close(got["state_dict"]["w"], payload["state_dict"]["w"])
        assert (got["step"], got["betas"], got["names"], got["seed"]) == (
            7, (0.5, 0.999), ["a", "b"], None)
    assert os.listdir(tmp_path) == ["c.pt"]


def test_the_same_checkpoint_payload_gives_the_same_bytes(tmp_path: Path) -> None:
    payload = {"w": torch.arange(6.0).view(2, 3), "step": 3, "name": "x"}
    save_checkpoint(tmp_path / "a.pt", payload)
    save_checkpoint(tmp_path / "a.pt", payload)  # overwritten through another temporary file
    save_checkpoint(tmp_path / "b.pt", payload)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_load_checkpoint_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="checkpoint not found; run `dvc repro train_gan`"):
        load_checkpoint(tmp_path / "nope.pt")


def test_load_checkpoint_of_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "c.pt").write_text("definitely not torch")
    with pytest.raises(PipelineError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "c.pt")


def test_load_checkpoint_never_runs_code_from_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {}, "evil": _Touch(marker)}, tmp_path / "c.pt")
    with pytest.raises(PipelineError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "c.pt")
    assert not marker.exists()
