"""Data sources, splits and the training-split imbalance used by the prepare stage."""

from pipeline.data.prepare import Split, prepare_dataset

__all__ = ["Split", "prepare_dataset"]
