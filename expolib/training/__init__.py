"""Training: the settings of a run, the losses, the pix2pix step, the trainer, checkpoints, history,
validation and several processes."""
