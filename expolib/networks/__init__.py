"""The networks: the U-Net generator (``unet``), the PatchGAN discriminator (``patchgan``), the layers
they share (``layers``), the factory that builds them (``factory``), and a generator on disk
(``modelfile``)."""
