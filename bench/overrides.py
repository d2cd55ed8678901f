"""`key.sub=value` overrides on a params dict, as `dvc exp run -S` takes them (for the benches)."""

from __future__ import annotations

import copy
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
