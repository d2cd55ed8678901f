"""Pure metrics: arrays in, dict of floats out."""

from pipeline.metrics.classification import classification_metrics, confusion_table

__all__ = ["classification_metrics", "confusion_table"]
