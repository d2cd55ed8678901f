"""The one registry of synthesis methods: `train_gan.method` name -> the module implementing it.

Adding a method is one module (with `SECTIONS`, `train` and `load`; see
pipeline/synthesizers/base.py), its params section in pipeline/config.py and one line here.
Modules are imported on use, so pipeline/config.py can validate the name without importing the
torch models.
"""

from __future__ import annotations

import importlib
from types import ModuleType

METHODS: dict[str, str] = {
    "dcgan": "pipeline.synthesizers.dcgan",  # conditional DCGAN / MLP GAN (pipeline/gan/train.py)
    "stylegan": "pipeline.synthesizers.stylegan",  # style-based conditional G with ADA
    "cyclegan": "pipeline.synthesizers.cyclegan",  # majority -> minority translation
}


def method_module(name: str) -> ModuleType:
    """The module of method `name` (config validation has already rejected unknown names)."""
    return importlib.import_module(METHODS[name])
