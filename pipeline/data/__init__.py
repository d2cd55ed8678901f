"""Data sources, splits and the training-split imbalance used by the prepare stage."""

from pipeline.artifacts import Split
from pipeline.data.prepare import prepare_dataset

__all__ = ["Split", "prepare_dataset"]
