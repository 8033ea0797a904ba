"""Which generator runs: the one that ships with expolib, or a file you name; never an untrained one.

The shipped generator was trained in the book's standard configuration; its training recipe and
measured scores are in ``expolib/weights/MODEL_CARD.md``, next to the weights. :func:`load_model` is
the one rule that ``correct``, ``evaluate`` and the benchmarks follow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from expolib.networks.modelfile import load_generator
from expolib.networks.models import UNetGenerator

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
PRETRAINED_PATH = WEIGHTS_DIR / "generator_small.safetensors"
"""Where the shipped generator's weights live (a safetensors file written by ``save_generator``)."""

MODEL_CARD_PATH = WEIGHTS_DIR / "MODEL_CARD.md"


def pretrained_available() -> bool:
    """True when the shipped weights file is present."""
    return PRETRAINED_PATH.is_file()


def load_pretrained(device: Union[str, torch.device] = "cpu") -> UNetGenerator:
    """Load the shipped generator on ``device``, in eval mode.

    Raises ``FileNotFoundError`` naming the expected file, and how to make one, when it is missing.
    """
    if not PRETRAINED_PATH.is_file():
        raise FileNotFoundError(
            f"{PRETRAINED_PATH}: the shipped generator weights are missing. Reinstall expolib, "
            "or train a generator (python -m expolib train) and pass its file with --weights / "
            "expolib.networks.modelfile.load_generator(path)"
        )
    return load_generator(PRETRAINED_PATH, device=device)


def load_model(weights: Optional[Union[str, Path]] = None,
               device: Union[str, torch.device] = "cpu") -> UNetGenerator:
    """The generator to run, in eval mode on ``device``: the file ``weights`` (written by
    :func:`expolib.networks.modelfile.save_generator`) when given, else the shipped one.

    A missing file is ``FileNotFoundError`` and an unreadable one
    :class:`expolib.networks.models.ModelFileError`, both naming the file; there is no fallback to an untrained
    network, whose output would look like a result.
    """
    if weights is not None:
        return load_generator(weights, device=device)
    return load_pretrained(device)


def model_source(weights: Optional[Union[str, Path]] = None) -> str:
    """How :func:`load_model` describes where its generator came from."""
    return str(weights) if weights is not None else "shipped weights"


__all__ = ["MODEL_CARD_PATH", "PRETRAINED_PATH", "load_model", "load_pretrained", "model_source",
           "pretrained_available"]
