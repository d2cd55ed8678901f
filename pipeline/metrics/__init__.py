"""Pure metrics: arrays in, dict of floats out."""

from pipeline.metrics.classification import classification_metrics, confusion_table
from pipeline.metrics.generative import (
    MemorizationAudit,
    frechet_distance,
    generative_metrics,
    kernel_inception_distance,
    memorization_audit,
    nearest_distances,
    prdc,
    realism_score,
)

__all__ = [
    "MemorizationAudit",
    "classification_metrics",
    "confusion_table",
    "frechet_distance",
    "generative_metrics",
    "kernel_inception_distance",
    "memorization_audit",
    "nearest_distances",
    "prdc",
    "realism_score",
]
