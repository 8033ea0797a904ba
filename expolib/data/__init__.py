"""Where training and evaluation pairs come from: the shipped photos rendered by a camera, folders of
your own photos, MSEC and folders of pairs, split by scene."""
