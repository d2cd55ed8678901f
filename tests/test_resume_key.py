"""pipeline/training/state_file.resume_key: a saved training state is continued only when nothing that
shapes the training changed. The key must change for every input that must restart training
(new data, a new extractor, another seed, device type, method section, train_gan setting other
than `steps`, training code) and for nothing else (steps, the params digest, sections the method
does not read, the stages before and after train_gan).

Planted faults each test catches: an input left out of the key (e.g. the seed or the method's
own section), `steps` put into it (a finished run could not be extended), or a section the method
does not read put into it (a change to evaluate would throw away hours of GAN training)."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import pipeline
from pipeline.config import Config
from pipeline.synthesizers.registry import method_module
from pipeline.training.state_file import resume_key

CPU = torch.device("cpu")
TRAIN_GAN_FIELDS = [f.name for f in dataclasses.fields(Config().train_gan)]


def other(value: Any) -> Any:
    """A different value of the same kind (validation is bypassed: the key only hashes it)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "_other"
    if isinstance(value, (tuple, list)):
        return type(value)([*value, value[0] if value else "translation"])
    if isinstance(value, dict):
        return {**value, "another": 1}
    if value is None:
        return 1
    raise TypeError(f"no other value for {value!r}")


def changed(cfg: Config, section: str, name: str, value: Any = None) -> Config:
    """cfg with one field of one section changed, bypassing the dataclasses' validation."""
    part = copy.copy(getattr(cfg, section))
    object.__setattr__(part, name, other(getattr(part, name)) if value is None else value)
    out = copy.copy(cfg)
    object.__setattr__(out, section, part)
    return out


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    train, features = tmp_path / "train.npz", tmp_path / "features.pt"
    train.write_bytes(b"the training split")
    features.write_bytes(b"the feature extractor")
    return train, features


def key(cfg: Config, files: tuple[Path, Path], device: torch.device = CPU) -> str:
    """The key as the train_gan stage computes it: with the sections the method reads."""
    sections = method_module(cfg.train_gan.method).SECTIONS
    return resume_key(cfg, device, *files, sections=sections)


@pytest.mark.parametrize("name", [n for n in TRAIN_GAN_FIELDS if n != "steps"])
def test_every_train_gan_setting_but_steps_restarts_training(files, name: str) -> None:
    cfg = Config()
    new = changed(cfg, "train_gan", name, "stylegan" if name == "method" else None)
    assert key(new, files) != key(cfg, files), name


@pytest.mark.parametrize(("method", "section"), [("dcgan", "dcgan"), ("stylegan", "stylegan"),
                                                 ("cyclegan", "cyclegan"),
                                                 ("diffusion", "diffusion")])
def test_the_methods_own_section_restarts_it(files, method: str, section: str) -> None:
    cfg = changed(Config(), "train_gan", "method", method)
    for name in (f.name for f in dataclasses.fields(getattr(cfg, section))):
        assert key(changed(cfg, section, name), files) != key(cfg, files), f"{section}.{name}"


def test_new_data_a_new_extractor_another_seed_or_device_restart_training(
        files, tmp_path: Path) -> None:
    cfg, (train, features) = Config(), files
    base = key(cfg, files)
    assert key(dataclasses.replace(cfg, seed=1), files) != base
    assert key(changed(cfg, "features", "width"), files) != base  # TSTR's classifier settings
    assert key(cfg, files, torch.device("cuda")) != base
    for path in (train, features):
        kept = path.read_bytes()
        path.write_bytes(kept + b".")
        assert key(cfg, files) != base, path.name
        path.write_bytes(kept)
    assert key(cfg, files) == base  # the same bytes again: the same key


def test_steps_the_digest_and_sections_train_gan_does_not_read_keep_the_key(files) -> None:
    cfg = Config()
    base = key(cfg, files)
    assert key(changed(cfg, "train_gan", "steps"), files) == base  # extends a finished run
    assert key(dataclasses.replace(cfg, digest="another params file"), files) == base
    for section in ("data", "prepare", "generate", "evaluate", "export", "stylegan", "cyclegan",
                    "diffusion"):
        for f in dataclasses.fields(getattr(cfg, section)):
            assert key(changed(cfg, section, f.name), files) == base, f"{section}.{f.name}"
    # under stylegan, the cyclegan section is not read (and vice versa)
    style = changed(cfg, "train_gan", "method", "stylegan")
    assert key(changed(style, "cyclegan", "cycle_weight"), files) == key(style, files)


def test_the_training_code_restarts_it_and_other_code_does_not(
        files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = Path(pipeline.__file__).parent
    copied = tmp_path / "pipeline"
    shutil.copytree(code, copied, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline, "__file__", str(copied / "__init__.py"))
    cfg = Config()
    base = key(cfg, files)
    with (copied / "report/page.py").open("a") as f:  # not training code
        f.write("\n# a comment\n")
    assert key(cfg, files) == base
    for part in ("training/loop.py", "models/dcgan.py", "synthesizers/dcgan.py"):
        with (copied / part).open("a") as f:
            f.write("\n# a change\n")
        assert key(cfg, files) != base, part
        base = key(cfg, files)
