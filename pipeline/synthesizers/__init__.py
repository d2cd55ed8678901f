"""Pluggable synthesizers: anything that trains from the real training split and answers
`sample(labels, seeds) -> uint8 (N, H, W, C)`. The names are pipeline/registries.py's `METHODS`,
the modules `registry.method_module`; the contract is `base.Synthesizer`; the stages after
train_gan never ask which method made the images.
"""
