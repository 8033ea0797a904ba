"""The pairs a run trains and validates on: one function from a configuration and a source to the sets.

- :class:`Source` says where the pairs come from: the embedded photos (the default), a folder of your
  own well-exposed photos (rendered like the embedded ones), a folder of ready-made pairs, or MSEC.
- :func:`training_sets` builds the training set and the validation set (None where the source has
  none) that ``python -m expolib train``, the benchmarks and the chapters train on.
- :func:`render_where` says where a rendered source's pairs are rendered during training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch.utils.data import Dataset

from expolib.training.config import TrainConfig

PathLike = Union[str, os.PathLike]
SOURCE_KINDS = ("embedded", "photos", "pairs", "msec")
DECODE = ("loader", "device")


@dataclass(frozen=True)
class Source:
    """Where a run's pairs come from: ``kind`` (:data:`SOURCE_KINDS`) and its folders: none for
    ``"embedded"``, the photo folder for ``"photos"``, the input and target folders for ``"pairs"``,
    MSEC's root for ``"msec"``. ``decode`` (JPEG files of ``"pairs"`` and ``"msec"``): in the DataLoader
    (``"loader"``, Pillow) or on the training device in batches (``"device"``); None: on a CUDA device,
    else in the loader."""

    kind: str = "embedded"
    folders: tuple[str, ...] = ()
    decode: Optional[str] = None

    def __post_init__(self) -> None:
        wanted = {"embedded": 0, "photos": 1, "pairs": 2, "msec": 1}
        if self.kind not in wanted:
            raise ValueError(f"unknown source {self.kind!r}; use one of {SOURCE_KINDS}")
        if len(self.folders) != wanted[self.kind]:
            raise ValueError(f"a {self.kind!r} source takes {wanted[self.kind]} folder(s), "
                             f"got {self.folders}")
        if self.decode not in (None, *DECODE):
            raise ValueError(f"decode must be one of {DECODE} (or None), got {self.decode!r}")

    @classmethod
    def photos(cls, folder: PathLike) -> Source:
        return cls("photos", (str(folder),))

    @classmethod
    def pairs(cls, inputs: PathLike, targets: PathLike, decode: Optional[str] = None) -> Source:
        return cls("pairs", (str(inputs), str(targets)), decode)

    @classmethod
    def msec(cls, root: PathLike, decode: Optional[str] = None) -> Source:
        return cls("msec", (str(root),), decode)


def _all_jpeg(folders: tuple[str, ...]) -> bool:
    files = [p for d in folders if Path(d).is_dir() for p in Path(d).iterdir()
             if p.is_file() and not p.name.startswith(".")]
    return all(p.suffix.lower() in (".jpg", ".jpeg") for p in files)


def training_sets(config: TrainConfig, source: Optional[Source] = None, device: Optional[torch.device] = None,
                  validation: bool = True) -> tuple[Dataset, Optional[Dataset]]:
    """The training set (augmented ``config.image_size`` crops) and the validation set of ``source``
    (default: the embedded photos) for a run of ``config`` on ``device`` (None: the CPU).

    Rendered sources (embedded, photos) use the camera family (``config.camera == "random"``) and
    rescaled crops (``config.crop_scale``) when the configuration asks for them; the embedded photos
    validate on their validation scenes (two crops per photo and EV, at the training crops' scale),
    MSEC on its validation split; a folder of photos or of pairs has no validation set.
    ``validation=False`` builds no validation set (MSEC's split then need not exist).
    """
    from expolib.data.filepairs import PairFolder
    from expolib.data.msec import MSECPairs
    from expolib.data.rendered import EmbeddedPairs, PhotoFolderPairs
    from expolib.imaging.camera import DEFAULT_FAMILY

    source = source if source is not None else Source()
    size, seed = config.image_size, config.seed
    # JPEGs decode on the GPU when training on one (a few CPU cores cannot decode fast enough)
    decode = source.decode or ("device" if device is not None and device.type == "cuda" else "loader")
    if source.kind == "msec":
        root = source.folders[0]
        train = MSECPairs(root, split="train", size=size, augment=True, seed=seed, decode=decode)
        val = MSECPairs(root, split="val", size=size, augment=False, seed=seed) if validation else None
        return train, val
    if source.kind == "pairs":
        inputs, targets = source.folders
        decode = decode if source.decode or _all_jpeg(source.folders) else "loader"
        return PairFolder(inputs, targets, size=size, augment=True, seed=seed, decode=decode), None
    scale = (1.0, config.crop_scale) if config.crop_scale is not None else None
    render: dict[str, Any] = {"camera": DEFAULT_FAMILY if config.camera == "random" else None, "scale": scale}
    if source.kind == "photos":
        return PhotoFolderPairs(source.folders[0], size=size, augment=True, seed=seed, **render), None
    val_side = 2 * size if scale is not None else None  # validation crops at the training crops' scale
    train = EmbeddedPairs("train", size=size, augment=True, seed=seed, **render)
    val = EmbeddedPairs("val", size=size, augment=False, crops_per_photo=2, seed=seed,
                        max_side=val_side) if validation else None
    return train, val


def render_where(config: TrainConfig, device: torch.device, train_set: Dataset) -> Optional[str]:
    """Where the training set's pairs are rendered: "device", "loader", or None for a set that does
    not render (files, tensors). ``config.render_on`` decides; auto is the device, except on a CPU
    with DataLoader workers (they render in parallel with the step)."""
    if not (hasattr(train_set, "draw") and hasattr(train_set, "render_batch")):
        return None
    if config.render_on is not None:
        return config.render_on
    return "loader" if device.type == "cpu" and config.num_workers > 0 else "device"


__all__ = ["DECODE", "SOURCE_KINDS", "Source", "render_where", "training_sets"]
