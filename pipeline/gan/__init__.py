"""GAN machinery: adversarial losses and DiffAugment (the shared loop is pipeline/training/)."""
