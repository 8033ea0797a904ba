"""Evaluation: metrics, classical baselines, correctors, full-resolution correction and the tables
that measure a corrector per exposure level."""
