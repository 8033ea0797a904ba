"""Benchmarks: the training step's speed, the data pipeline, end-to-end training and full-resolution
correction."""
