"""`train_gan.method` name -> the module implementing it. The names are pipeline/registries.py's
`METHODS` (a leaf, so config validation imports no method); modules are imported on use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pipeline.registries import METHODS

__all__ = ["METHODS", "method_module"]


def method_module(name: str) -> ModuleType:
    """The module of method `name` (config validation has already rejected unknown names)."""
    return importlib.import_module(METHODS[name])
