"""The generator that ships with expolib, trained in the book's standard configuration.

Its training recipe and measured scores are in ``expolib/weights/MODEL_CARD.md``, next to the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from expolib.models import UNetGenerator, load_generator

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
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
            f"the shipped generator weights are missing: expected {PRETRAINED_PATH}. Reinstall expolib, "
            "or train a generator (python -m expolib train) and pass its file with --weights / "
            "expolib.models.load_generator(path)"
        )
    return load_generator(PRETRAINED_PATH, device=device)
