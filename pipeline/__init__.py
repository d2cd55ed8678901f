"""Class-conditional GAN augmentation for class-imbalanced (medical) image datasets."""

__version__ = "0.1.0"
