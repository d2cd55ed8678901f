"""nn.Modules only: generators, discriminators, classifiers."""

from pipeline.models.classifier import CLASSIFIERS, SmallCNN
from pipeline.models.gan import GAN_ARCHS, build_discriminator, build_generator, upsample_plan

__all__ = ["CLASSIFIERS", "GAN_ARCHS", "SmallCNN", "build_discriminator", "build_generator", "upsample_plan"]
