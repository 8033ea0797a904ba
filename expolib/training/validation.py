"""Validation during training: L1 and PSNR of the generator on the validation set, and a grid of images.

:func:`validate` is what :class:`expolib.training.trainer.Trainer` runs at the end of an epoch (see its
schedule in :class:`expolib.training.config.TrainConfig`); :func:`validation_loader` keeps the loader's
workers alive from one validation to the next.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Union

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.utils import make_grid

from expolib.evaluation.metrics import psnr_batch
from expolib.imaging.imageio import to_uint8_image
from expolib.imaging.transforms import denormalize
from expolib.training.config import TrainConfig
from expolib.training.pix2pix import Pix2Pix

PathLike = Union[str, os.PathLike]


def _write_grid(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, path: Path) -> None:
    """Inputs, outputs and targets in [-1, 1] (one row each, up to 8 columns) as a JPEG of quality 90."""
    from PIL import Image

    n = min(8, inputs.shape[0])
    rows = [denormalize(t[:n].detach().float().cpu()).clamp(0.0, 1.0) for t in (inputs, outputs, targets)]
    grid = make_grid(torch.cat(rows), nrow=n, padding=2)  # (3, H, W) in [0, 1]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_image(grid)).save(path, format="JPEG", quality=90)


@torch.no_grad()
def validation_loader(val_set: Dataset, config: TrainConfig) -> DataLoader:
    """The validation batches, in order; with workers, they stay alive between validations."""
    return DataLoader(val_set, batch_size=config.batch_size, shuffle=False, num_workers=config.num_workers,
                      persistent_workers=config.num_workers > 0)


@torch.no_grad()
def validate(model: Pix2Pix, val_set: Optional[Dataset], config: TrainConfig,
             save_grid: Optional[PathLike] = None, loader: Optional[DataLoader] = None) -> dict[str, float]:
    """Mean L1 (in [-1, 1] units, like the training L1) and PSNR (dB, images in [0, 1]) of the
    generator in eval mode on ``val_set`` (through ``loader`` when given); optionally save a grid of
    the first batch to ``save_grid``."""
    if val_set is None:
        return {"val_l1": math.nan, "val_psnr": math.nan}
    loader = loader if loader is not None else validation_loader(val_set, config)
    l1_sum, psnr_sum, count = 0.0, 0.0, 0
    for index, batch in enumerate(loader):
        if config.val_batches is not None and index >= config.val_batches:
            break
        out = model.correct(batch["input"])  # (B, 3, H, W) in [-1, 1]
        target = batch["target"].to(out.device)
        l1_sum += (out - target).abs().mean(dim=(1, 2, 3)).sum().item()
        # per image, in [0, 1] units; capped at 100 dB so that a perfect image keeps the mean finite
        psnr_sum += psnr_batch(denormalize(out), denormalize(target)).clamp(max=100.0).sum().item()
        count += out.shape[0]
        if index == 0 and save_grid is not None:
            _write_grid(batch["input"], out, batch["target"], Path(save_grid))
    return {"val_l1": l1_sum / max(count, 1), "val_psnr": psnr_sum / max(count, 1)}


__all__ = ["validate", "validation_loader"]
