"""Photos and cameras: how an exposure error arises (sRGB, linear light, the camera chain) and how
photos are read, written and turned into tensors."""
