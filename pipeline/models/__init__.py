"""nn.Modules only: generators, discriminators, denoisers, classifiers; one module per method
(dcgan, stylegan, cyclegan, ...), the classifiers and ADA's augmentation pipeline."""
