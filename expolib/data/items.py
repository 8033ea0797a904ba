"""What every source of pairs gives and shares: the item, its seed, its default transform, the loader.

Every source is a torch ``Dataset`` giving the same item: ``{"input": Tensor[3, H, W], "target":
Tensor[3, H, W], "ev": float, "scene": str}`` with both images in [-1, 1]. The sources:

* :mod:`expolib.data.rendered`: pairs rendered from well-exposed photos, the shipped ones
  (``EmbeddedPairs``, see :mod:`expolib.data.photos`) or a folder of your own (``PhotoFolderPairs``);
* :mod:`expolib.data.filepairs`: ready-made pairs whose inputs are files too (``PairFolder``), and
  :mod:`expolib.data.msec` the Multi-Scale Exposure Correction dataset (``MSECPairs``, Afifi et al., 2021).

:func:`make_loader` batches any of them (``expolib.benchmarks.trainstep.benchmark_pipeline`` measures
how fast pairs arrive).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from expolib.imaging.transforms import PairedTransform

Item = dict[str, Any]


def item_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for one item, from the dataset seed and the item's index."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


def default_transform(size: Optional[int], augment: bool, transform: Optional[PairedTransform] = None,
                      scale: Optional[tuple[float, float]] = None, jitter: bool = True) -> PairedTransform:
    """The transform a source uses unless it is given one: the whole photo (``size=None``), random
    augmented crops (``augment``, rescaled by ``scale`` first, see :class:`PairedTransform`; input-only
    colour jitter unless ``jitter`` is False), or fixed crops spread over the photo (a "train" geometry
    without flip or jitter, driven by a seeded generator)."""
    if transform is not None:
        return transform
    if size is None:
        return PairedTransform(None, train=False)
    if augment:
        return PairedTransform(size, train=True, scale=scale, **({} if jitter else {"jitter_p": 0.0}))
    return PairedTransform(size, flip_p=0.0, jitter_p=0.0, train=True)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    device: Union[str, torch.device, None] = None,
    num_workers: int = 0,
    drop_last: bool = False,
    generator: Optional[torch.Generator] = None,
) -> DataLoader:
    """A ``DataLoader`` for any of the sources: ``num_workers`` processes decode and augment in the
    background, and batches go to pinned memory when ``device`` is CUDA (faster copies to the GPU).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pin = device is not None and torch.device(device).type == "cuda"
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=pin,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        generator=generator,
    )


__all__ = ["Item", "default_transform", "item_seed", "make_loader"]
