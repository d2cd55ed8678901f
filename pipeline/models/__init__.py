"""nn.Modules only: generators, discriminators, classifiers."""

from pipeline.models.classifier import SmallCNN
from pipeline.models.gan import GAN_ARCHS, build_discriminator, build_generator, upsample_plan

__all__ = ["GAN_ARCHS", "SmallCNN", "build_discriminator", "build_generator", "upsample_plan"]
