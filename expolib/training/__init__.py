"""Training: the settings of a run (``config``), the pairs it trains on (``datasets``), the losses, the
pix2pix step (``pix2pix``), the trainer and what it is made of (``progress``, ``runstate``), checkpoints,
history, validation and several processes (``distributed``)."""
