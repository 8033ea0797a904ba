"""Short loops for experiments: the pairs the chapters train on (MSEC when it is on disk, else the
embedded photos), a data stream counted in steps, and one network trained on a reconstruction loss
alone (the chapters' quick comparisons of networks and losses)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from expolib.progress import progress_bar

T = TypeVar("T")


def training_pairs(size: int, seed: int = 0) -> tuple[Dataset, Dataset, str]:
    """Training crops, validation crops and a phrase naming their source: the MSEC dataset when
    :func:`expolib.data.msec.find_msec` finds it (its own validation split), else the embedded photos
    (the validation scenes, two fixed crops per photo and EV): the sets ``python -m expolib train``
    builds, from :func:`expolib.training.datasets.training_sets`."""
    from expolib.data.msec import find_msec
    from expolib.training.config import TrainConfig
    from expolib.training.datasets import Source, training_sets

    root = find_msec()
    config = TrainConfig(image_size=size, seed=seed)
    train, val = training_sets(config, Source.msec(root) if root is not None else Source())
    phrase = f"the MSEC dataset ({root.name})" if root is not None else \
        "the embedded photos (MSEC was not found)"
    return train, cast(Dataset, val), phrase  # both sources have a validation set


def endless(loader: Iterable[T]) -> Iterator[T]:
    """Go through ``loader`` (a DataLoader, or anything that can be iterated again) over and over,
    for loops that count steps rather than epochs. A shuffling DataLoader gives a new order on each
    pass. A loader that yields nothing raises ``ValueError`` instead of looping for ever."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("endless: the loader yields no batches (an empty dataset, or drop_last with "
                             "fewer items than one batch?)")


RECONSTRUCTION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss,  # mean absolute error, pix2pix's reconstruction term
    "l2": F.mse_loss,  # mean squared error
}


def fit_reconstruction(model: nn.Module, loader: Iterable[dict[str, Any]], steps: int, lr: float,
                       loss: str = "l1", betas: tuple[float, float] = (0.5, 0.999),
                       desc: Optional[str] = None, progress: bool = True) -> list[float]:
    """Train ``model`` alone for ``steps`` Adam steps to map ``batch["input"]`` to ``batch["target"]``
    under a reconstruction loss (``"l1"`` or ``"l2"``), cycling through ``loader``; return the loss of
    every step.

    No discriminator, no schedule, no checkpoints: the bare loop for short comparisons of networks or
    losses. Batches go to the device of the model's parameters; the model is left in train mode.
    """
    if loss not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"loss must be one of {tuple(RECONSTRUCTION_LOSSES)}, got {loss!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    loss_fn = RECONSTRUCTION_LOSSES[loss]
    device = next(model.parameters()).device
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    batches = endless(loader)
    losses = []
    for _ in progress_bar(range(steps), desc=desc or f"{loss.upper()} training", disable=not progress):
        batch = next(batches)
        x, y = batch["input"].to(device), batch["target"].to(device)
        value = loss_fn(model(x), y)
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        optimiser.step()
        losses.append(value.item())
    return losses


__all__ = ["RECONSTRUCTION_LOSSES", "endless", "fit_reconstruction", "training_pairs"]
