"""The corrector interface: anything that maps a batch of normalised photos to corrected ones.

A generator, a classical baseline (an ``nn.Module`` too) or a plain function of a tensor
``(B, 3, H, W)`` in [-1, 1] is a :data:`Corrector`. :func:`run_corrector` runs one on a single photo
the way evaluation and full-resolution correction both need it: batch of one, no gradients, eval mode.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Corrector = Callable[[torch.Tensor], torch.Tensor]


def _corrector_device(corrector: Corrector) -> torch.device:
    if isinstance(corrector, nn.Module):
        for tensor in (*corrector.parameters(), *corrector.buffers()):
            return tensor.device
    return torch.device("cpu")


def run_corrector(corrector: Corrector, image: torch.Tensor) -> torch.Tensor:
    """Correct one normalised image ``(3, H, W)``: batch of one, no gradients, eval mode (restored after).

    Returns the corrected image ``(3, H, W)`` in [-1, 1] on the CPU.
    """
    was_training = isinstance(corrector, nn.Module) and corrector.training
    if isinstance(corrector, nn.Module):
        corrector.eval()
    try:
        with torch.no_grad():
            output = corrector(image.unsqueeze(0).to(_corrector_device(corrector)))
    finally:
        if was_training:
            assert isinstance(corrector, nn.Module)
            corrector.train()
    if output.shape[1:] != image.shape:
        raise ValueError(
            f"the corrector changed the image shape from {tuple(image.shape)} to {tuple(output.shape[1:])}"
        )
    return output[0].float().cpu().clamp(-1.0, 1.0)


__all__ = ["Corrector", "run_corrector"]
