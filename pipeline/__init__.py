"""Class-conditional GAN augmentation for class-imbalanced (medical) image datasets."""

from collections.abc import Callable

__version__ = "0.1.0"

# How training code reports metrics: log(metrics, step). Stages pass one that feeds MLflow;
# tests pass a list-appending fake. Nothing in the library talks to a tracker directly.
LogFn = Callable[[dict[str, float], int], None]
