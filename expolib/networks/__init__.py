"""The networks: the U-Net generator, the PatchGAN discriminator, their layers, and a generator on
disk."""
