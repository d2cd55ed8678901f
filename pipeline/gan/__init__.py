"""GAN training: pluggable losses and augmentations, one training loop, sampling."""
