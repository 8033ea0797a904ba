"""Pairs whose inputs and targets are both files: the base of such sources, and a folder of pairs.

Both give the item of :mod:`expolib.data.items` (``{"input", "target", "ev", "scene"}``, images in [-1, 1]):

* :class:`FilePairs`: the base, one item per (input file, target file) record and crop;
  :class:`expolib.data.msec.MSECPairs` (the MSEC dataset) is one.
* :class:`PairFolder`: ready-made pairs, an input folder and a target folder matched by file name.

A folder laid out wrongly is a :class:`DatasetLayoutError` that says what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset, default_collate

from expolib.data.items import Item, default_transform, item_seed
from expolib.data.photofiles import (
    decode_jpegs,
    file_bytes,
    is_jpeg,
    list_images,
    load_resized_uint8,
    oriented_size,
)
from expolib.imaging.camera import Camera
from expolib.imaging.imageio import PathLike
from expolib.imaging.render import draw_item, finish_pairs
from expolib.imaging.transforms import PairedTransform, check_side, cut, long_side_size

DECODE = ("loader", "device")  # where file pairs decode their JPEGs


class DatasetLayoutError(ValueError):
    """A dataset folder is not laid out as expected; the message lists what is missing."""


def name_examples(items: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` of ``items`` and how many there are in all, for an error message."""
    shown = ", ".join(str(x) for x in items[:limit])
    more = f" ... ({len(items)} in all)" if len(items) > limit else f" ({len(items)} in all)"
    return shown + more


class FilePairs(Dataset):
    """Base for sources whose inputs and targets are both files: one item per record and crop.

    Files stay uint8 from decoding to the crop; the flip, the input-only colour jitter and the
    normalisation run in :func:`expolib.imaging.render.finish_pairs`, on the training device when the trainer
    asks for it (:meth:`draw` and :meth:`render_batch`). ``cache_dir``: see
    :func:`expolib.data.photofiles.load_resized_uint8` (used with ``max_side``). ``records`` are
    (input file, target file, EV, scene).

    ``decode="device"`` (JPEG files only): the loader reads the files' bytes and only their headers
    (size and EXIF orientation, to place the crop), and :meth:`render_batch` decodes the batch with
    ``torchvision.io.decode_jpeg`` on the training device (nvJPEG on CUDA), then shrinks, crops, flips
    and jitters there: a machine with two CPU cores can then feed a GPU. The decoder differs from
    Pillow's by a code value here and there.
    """

    def __init__(
        self,
        records: Sequence[tuple[Path, Path, float, str]],
        size: Optional[int] = None,
        augment: bool = False,
        max_side: Optional[int] = None,
        crops_per_photo: int = 1,
        seed: int = 0,
        transform: Optional[PairedTransform] = None,
        cache_dir: Optional[PathLike] = None,
        decode: str = "loader",
    ) -> None:
        self.records = list(records)
        self.cache_dir = cache_dir
        if decode not in DECODE:
            raise ValueError(f"decode must be one of {DECODE}, got {decode!r}")
        if decode == "device":
            others = [str(p) for record in self.records for p in record[:2] if not is_jpeg(p)]
            if others:
                raise ValueError(f"decode='device' reads JPEG files only; not JPEG: {name_examples(others)}")
        self.decode = decode
        self.size = size
        self.augment = augment and size is not None
        self.max_side = max_side
        self.crops_per_photo = crops_per_photo if size is not None else 1
        self.seed = seed
        self.transform = default_transform(size, augment, transform)

    def __len__(self) -> int:
        return len(self.records) * self.crops_per_photo

    def load_pair(self, record_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and target of a record as uint8 (3, H, W), the same size (the input's, shrunk to
        ``max_side``; JPEGs decoded at a reduced scale where that allows, see
        :func:`expolib.data.photofiles.load_resized_uint8`)."""
        input_path, target_path, _ev, _scene = self.records[record_index]
        x = load_resized_uint8(input_path, self.max_side, self.cache_dir)
        y = load_resized_uint8(target_path, self.max_side, self.cache_dir)
        if y.shape[-2:] != x.shape[-2:]:
            (hx, wx), (hy, wy) = x.shape[-2:], y.shape[-2:]
            if abs(wx / hx - wy / hy) > 0.02 * (wx / hx):
                raise ValueError(
                    f"{input_path} ({wx}x{hx}) and its target {target_path} ({wy}x{hy}) have different "
                    "shapes; the two images of a pair must show the same view"
                )
            y = TF.resize(y, [hx, wx], antialias=True)
        return x, y

    def draw(self, index: int) -> dict[str, Any]:
        """Item ``index`` before the device's part: uint8 ``photo`` (input) and ``target_photo`` crops,
        the drawn flip and colour jitter as ``params`` (see :mod:`expolib.imaging.render`), ``ev``, ``scene``.
        With ``decode="device"``: the two files' bytes and the crop's ``box`` instead of the crops."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        record_index = index // self.crops_per_photo
        input_path, target_path, ev, scene = self.records[record_index]
        generator = None if self.augment else torch.Generator().manual_seed(item_seed(self.seed, index))
        item: dict[str, Any] = {"ev": ev, "scene": scene}
        if self.decode == "device":
            h, w = long_side_size(*oriented_size(input_path), self.max_side)
            check_side(torch.empty(0, h, w), f"{input_path} (as decoded for training)")
            new_h, new_w, top, left, flip = self.transform.crop_box(h, w, generator)
            item.update(input_file=file_bytes(input_path), target_file=file_bytes(target_path),
                        box=torch.tensor([h, w, new_h, new_w, top, left, self.transform.size or 0]))
        else:
            x, y = self.load_pair(record_index)
            (x, y), flip = self.transform.crop(x, y, generator=generator)
            item.update(photo=x, target_photo=y)
        params, seed, _ = draw_item(Camera(), 0.0, flip, self.transform.jitter_ranges(),
                                    self.transform.jitter_p, generator)
        item.update(params=params, seed=torch.tensor(seed))
        return item

    def __getitem__(self, index: int) -> Item:
        item = self.draw(index)
        x, y = self.render_batch(self.collate([item]), "cpu")
        return {"input": x[0], "target": y[0], "ev": item["ev"], "scene": item["scene"]}

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        """A batch of :meth:`draw` items: file bytes (of different lengths) as lists, the rest stacked."""
        files = {key: [item.pop(key) for item in items] for key in ("input_file", "target_file")
                 if key in items[0]}
        batch = default_collate(items)
        batch.update(files)
        return batch

    def render_batch(self, batch: dict[str, Any],
                     device: Union[str, torch.device, None] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) in [-1, 1] of a batch of :meth:`draw` items, decoded (``decode="device"``),
        flipped, jittered and normalised on ``device``."""
        if "input_file" in batch:
            device = torch.device(device) if device is not None else torch.device("cpu")
            inputs = decode_jpegs(batch["input_file"], device)
            targets = decode_jpegs(batch["target_file"], device)
            crops = [_cut(x, y, box) for x, y, box in zip(inputs, targets, batch["box"].tolist())]
            return finish_pairs(torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops]),
                                batch["params"], device)
        return finish_pairs(batch["photo"], batch["target_photo"], batch["params"], device)


def _cut(x: torch.Tensor, y: torch.Tensor, box: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded input and target (uint8, on the device) shrunk to the input's size ``box[:2]``, resized
    as drawn ``box[2:4]``, cropped at ``box[4:6]`` (``box[6]``: the crop's side, 0 for none)."""
    h, w, new_h, new_w, top, left, side = box
    x, y = (im if im.shape[-2:] == (h, w) else TF.resize(im, [h, w], antialias=True) for im in (x, y))
    if side == 0:
        return x, y
    return cut(x, new_h, new_w, top, left, side), cut(y, new_h, new_w, top, left, side)



class PairFolder(FilePairs):
    """Ready-made pairs: ``input_dir/x.jpg`` goes with ``target_dir/x.<any image extension>``.

    The exposure error of such pairs is unknown, so each item's ``"ev"`` is NaN. Files without a
    partner, or two files with the same name stem in one folder, are an error that lists them. The
    ``options`` and their defaults (whole photos, no augmentation) are those of :class:`FilePairs`.
    """

    def __init__(self, input_dir: PathLike, target_dir: PathLike, **options: Any) -> None:
        self.input_dir, self.target_dir = Path(input_dir), Path(target_dir)
        super().__init__(self._match(), **options)

    def _stems(self, folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            raise DatasetLayoutError(f"{folder}: no such folder")
        files = list_images(folder)
        by_stem: dict[str, list[Path]] = {}
        for p in files:
            by_stem.setdefault(p.stem, []).append(p)
        clashes = [" and ".join(p.name for p in ps) for ps in by_stem.values() if len(ps) > 1]
        if clashes:
            raise DatasetLayoutError(f"{folder}: several files share a name stem: {name_examples(clashes)}")
        return {stem: ps[0] for stem, ps in by_stem.items()}

    def _match(self) -> list[tuple[Path, Path, float, str]]:
        inputs, targets = self._stems(self.input_dir), self._stems(self.target_dir)
        if not inputs:
            raise DatasetLayoutError(f"{self.input_dir}: no images found")
        lonely_inputs = sorted(set(inputs) - set(targets))
        lonely_targets = sorted(set(targets) - set(inputs))
        if lonely_inputs or lonely_targets:
            parts = []
            if lonely_inputs:
                names = [inputs[s].name for s in lonely_inputs]
                parts.append(f"inputs without a target in {self.target_dir}: {name_examples(names)}")
            if lonely_targets:
                names = [targets[s].name for s in lonely_targets]
                parts.append(f"targets without an input in {self.input_dir}: {name_examples(names)}")
            raise DatasetLayoutError("unmatched files; " + "; ".join(parts))
        return [(inputs[s], targets[s], math.nan, s) for s in sorted(inputs)]




__all__ = ["DECODE", "DatasetLayoutError", "FilePairs", "PairFolder", "name_examples"]
