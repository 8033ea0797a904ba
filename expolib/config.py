"""The two choices every chapter makes first: how much work to do (the budget) and where (the device).

The budget is read from the ``EXPOLIB_BUDGET`` environment variable through :func:`get_budget`, the
only place in the project that reads it. A budget changes sizes and counts, never which code runs.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

ENV_VAR = "EXPOLIB_BUDGET"
DEFAULT_BUDGET = "standard"


@dataclass(frozen=True)
class Budget:
    """Sizes and counts for one budget; every chapter reads its numbers from here."""

    name: str
    image_size: int  # side of the square training crops
    batch_size: int
    epochs: int
    steps_per_epoch: Optional[int]  # cap on batches per epoch; None means the whole dataset
    ngf: int  # generator base width
    ndf: int  # discriminator base width
    depth: int  # U-Net levels: image_size / 2**depth is the bottleneck side
    eval_side: int  # long side, in pixels, of the photos used for evaluation
    demo_steps: int  # optimisation steps for the short comparisons inside chapters
    num_workers: int  # DataLoader worker processes


BUDGETS: dict[str, Budget] = {
    "quick": Budget(
        name="quick", image_size=64, batch_size=4, epochs=2, steps_per_epoch=3, ngf=8, ndf=8,
        depth=6, eval_side=96, demo_steps=8, num_workers=0,
    ),
    "standard": Budget(
        name="standard", image_size=128, batch_size=8, epochs=3, steps_per_epoch=30, ngf=16, ndf=16,
        depth=7, eval_side=256, demo_steps=120, num_workers=0,
    ),
    "full": Budget(
        name="full", image_size=256, batch_size=64, epochs=150, steps_per_epoch=None, ngf=64, ndf=64,
        depth=8, eval_side=512, demo_steps=3000, num_workers=4,
    ),
}


def get_budget(name: Optional[str] = None) -> Budget:
    """Return the budget called ``name``, or the one named by ``$EXPOLIB_BUDGET`` (default ``standard``).

    An unknown name raises ``ValueError`` listing the valid ones.
    """
    chosen = name if name is not None else os.environ.get(ENV_VAR, DEFAULT_BUDGET)
    key = chosen.strip().lower()
    if key not in BUDGETS:
        valid = ", ".join(BUDGETS)
        source = "argument" if name is not None else f"environment variable {ENV_VAR}"
        raise ValueError(f"unknown budget {chosen!r} (from the {source}); valid budgets: {valid}")
    return BUDGETS[key]


def with_overrides(budget: Budget, **changes: object) -> Budget:
    """Return a copy of ``budget`` with some fields changed (for experiments in a chapter)."""
    return replace(budget, **changes)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(prefer: Optional[str] = None) -> torch.device:
    """Pick where tensors go: CUDA if present, then Apple's MPS, then the CPU.

    ``prefer`` (``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``) forces a choice; asking for a device
    that this machine does not have is an error rather than a silent fallback.
    """
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but CUDA is not available here")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but Apple MPS is not available here")
        if device.type not in ("cuda", "mps", "cpu"):
            raise ValueError(f"unsupported device {prefer!r}; use cuda, mps or cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
