"""Pick the compute device: CUDA when present, else CPU, with no code change."""

from __future__ import annotations

import torch

from pipeline.errors import PipelineError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("device: cuda was asked for but no CUDA GPU is visible; use auto or cpu")
    return torch.device(name)
