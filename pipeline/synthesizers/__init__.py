"""Pluggable synthesizers: anything that trains from the real training split and answers
`sample(labels, seeds) -> uint8 (N, H, W, C)`. The registry is `registry.METHODS`; the contract is
`base.Synthesizer`; the stages after train_gan never ask which method made the images.

This package's __init__ stays import-light: pipeline/config.py reads the registry's names.
"""
