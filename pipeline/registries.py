"""The names of every registry a params key selects from, and nothing else: a leaf module, so that
pipeline/config.py validates params without importing a method, a model or torch.

Each implementing module keys its registry by exactly these names, in this order (the order of the
choices in an error message); tests/test_config.py checks that they agree.
"""

from __future__ import annotations

# train_gan.method -> the module implementing it (pipeline/synthesizers/base.py: the contract)
METHODS: dict[str, str] = {
    "dcgan": "pipeline.synthesizers.dcgan",  # conditional DCGAN / MLP GAN
    "stylegan": "pipeline.synthesizers.stylegan",  # style-based conditional G with ADA
    "cyclegan": "pipeline.synthesizers.cyclegan",  # majority -> minority translation
    "diffusion": "pipeline.synthesizers.diffusion",  # class-conditional DDPM, DDIM sampling
}
GAN_ARCHS = ("dcgan", "mlp")  # dcgan.arch: pipeline/models/dcgan.py
GAN_LOSSES = ("bce", "hinge", "wgan-gp")  # dcgan.loss: pipeline/gan/losses.py
DIFFAUGMENTS = ("translation", "cutout", "color")  # dcgan.diffaugment: pipeline/gan/diffaugment.py
ADA_OPS = ("xflip", "rotate90", "translate", "scale", "brightness", "contrast")  # pipeline/models/ada.py
CLASSIFIERS = ("cnn", "resnet18")  # evaluate.classifier: pipeline/models/classifier.py
