"""`key.sub=value` overrides on a params dict, as `dvc exp run -S` takes them (for the benches)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml


def with_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `params` with each `a.b=value` (value parsed as YAML) set."""
    params = copy.deepcopy(params)
    for item in overrides:
        key, value = item.split("=", 1)
        *path, last = key.split(".")
        node = params
        for p in path:
            node = node.setdefault(p, {})
        node[last] = yaml.safe_load(value)
    return params


def medmnist(path: str | Path, *, image_size: int = 28) -> list[str]:
    """Overrides that prepare a MedMNIST-style .npz as it is: its own splits and class counts."""
    return ["data.source=medmnist", f"data.path={Path(path).resolve()}",
            f"prepare.image_size={image_size}", "prepare.imbalance=none"]
