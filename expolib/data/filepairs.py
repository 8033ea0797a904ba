"""Pairs whose inputs and targets are both files: the MSEC dataset, and a folder of ready-made pairs.

Both give the item of :mod:`expolib.data.sources` (``{"input", "target", "ev", "scene"}``, images in [-1, 1]):

* :class:`MSECPairs`: the Multi-Scale Exposure Correction dataset (Afifi et al., 2021) from a folder;
  :func:`find_msec` finds it, :func:`parse_msec_name` reads its file names.
* :class:`PairFolder`: ready-made pairs, an input folder and a target folder matched by file name.

A folder laid out wrongly is a :class:`DatasetLayoutError` that says what was expected.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch.utils.data import Dataset, default_collate
from torchvision.io import ImageReadMode, decode_jpeg

from expolib.data.sources import (
    IMAGE_EXTENSIONS,
    Item,
    default_transform,
    item_seed,
    list_images,
    load_resized_uint8,
)
from expolib.imaging.camera import Camera
from expolib.imaging.exposure import EVS
from expolib.imaging.imageio import ImageLoadError, PathLike
from expolib.imaging.render import draw_item, finish_pairs
from expolib.imaging.transforms import PairedTransform, check_side, cut


class DatasetLayoutError(ValueError):
    """A dataset folder is not laid out as expected; the message lists what is missing."""


def _examples(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    more = f" ... ({len(items)} in all)" if len(items) > limit else f" ({len(items)} in all)"
    return shown + more


class _FilePairs(Dataset):
    """Base for sources whose inputs and targets are both files: one item per record and crop.

    Files stay uint8 from decoding to the crop; the flip, the input-only colour jitter and the
    normalisation run in :func:`expolib.imaging.render.finish_pairs`, on the training device when the trainer
    asks for it (:meth:`draw` and :meth:`render_batch`). ``cache_dir``: see
    :func:`expolib.data.sources.load_resized_uint8` (used with ``max_side``).

    ``decode="device"`` (JPEG files only): the loader reads the files' bytes and only their headers
    (size and EXIF orientation, to place the crop), and :meth:`render_batch` decodes the batch with
    ``torchvision.io.decode_jpeg`` on the training device (nvJPEG on CUDA), then shrinks, crops, flips
    and jitters there: a machine with two CPU cores can then feed a GPU. The decoder differs from
    Pillow's by a code value here and there.
    """

    def __init__(
        self,
        records: Sequence[tuple[Path, Path, float, str]],
        size: Optional[int],
        augment: bool,
        max_side: Optional[int],
        crops_per_photo: int,
        seed: int,
        transform: Optional[PairedTransform],
        cache_dir: Optional[PathLike] = None,
        decode: str = "loader",
    ) -> None:
        self.records = list(records)
        self.cache_dir = cache_dir
        if decode not in DECODE:
            raise ValueError(f"decode must be one of {DECODE}, got {decode!r}")
        if decode == "device":
            others = [str(p) for record in self.records for p in record[:2] if not _is_jpeg(p)]
            if others:
                raise ValueError(f"decode='device' reads JPEG files only; not JPEG: {_examples(others)}")
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
        :func:`expolib.data.sources.load_resized_uint8`)."""
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
            h, w = _shrunk(_oriented_size(input_path), self.max_side)
            check_side(torch.empty(0, h, w), f"{input_path} (as decoded for training)")
            new_h, new_w, top, left, flip = self.transform.crop_box(h, w, generator)
            item.update(input_file=_file_bytes(input_path), target_file=_file_bytes(target_path),
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
            with warnings.catch_warnings():
                # torchvision 0.29 announces that TorchCodec will take over image decoding; until
                # then decode_jpeg is the decoder that batches on a GPU without another dependency
                warnings.simplefilter("ignore", DeprecationWarning)
                inputs = decode_jpeg(batch["input_file"], mode=ImageReadMode.RGB, device=device,
                                     apply_exif_orientation=True)
                targets = decode_jpeg(batch["target_file"], mode=ImageReadMode.RGB, device=device,
                                      apply_exif_orientation=True)
            crops = [_cut(x, y, box) for x, y, box in zip(inputs, targets, batch["box"].tolist())]
            return finish_pairs(torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops]),
                                batch["params"], device)
        return finish_pairs(batch["photo"], batch["target_photo"], batch["params"], device)


DECODE = ("loader", "device")  # where file pairs decode their JPEGs


def _file_bytes(path: Path) -> torch.Tensor:
    """A file's bytes as a uint8 tensor (what decode_jpeg takes); a missing file names itself."""
    try:
        return torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
    except OSError as error:
        raise ImageLoadError(f"{path}: cannot be read ({error.strerror or error})") from error


def _is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg")


def _oriented_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file as it is shown (EXIF orientation applied), from its header;
    an unreadable file is an :class:`expolib.imaging.imageio.ImageLoadError` naming it."""
    try:
        with Image.open(path) as image:
            w, h = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{path}: not a readable image ({error})") from error
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _shrunk(size: tuple[int, int], max_side: Optional[int]) -> tuple[int, int]:
    """The size :func:`expolib.data.sources.load_resized_uint8` gives a photo of ``size``."""
    h, w = size
    if max_side is None or max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _cut(x: torch.Tensor, y: torch.Tensor, box: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded input and target (uint8, on the device) shrunk to the input's size ``box[:2]``, resized
    as drawn ``box[2:4]``, cropped at ``box[4:6]`` (``box[6]``: the crop's side, 0 for none)."""
    h, w, new_h, new_w, top, left, side = box
    x, y = (im if im.shape[-2:] == (h, w) else TF.resize(im, [h, w], antialias=True) for im in (x, y))
    if side == 0:
        return x, y
    return cut(x, new_h, new_w, top, left, side), cut(y, new_h, new_w, top, left, side)


#: MSEC's file-name tokens for the five exposure levels.
MSEC_EV_TOKENS: dict[str, float] = {"N1.5": -1.5, "N1": -1.0, "0": 0.0, "P1": 1.0, "P1.5": 1.5}
#: Our split names and MSEC's folder names.
MSEC_SPLITS: dict[str, str] = {"train": "training", "val": "validation", "test": "testing"}
MSEC_EXPERTS = ("a", "b", "c", "d", "e")
_MSEC_NAME = re.compile(r"^(?P<scene>.+)_(?P<token>N1\.5|N1|0|P1|P1\.5)$")


def parse_msec_name(filename: str) -> tuple[str, float]:
    """Scene and EV of an MSEC input: ``"a0001-jmac_DSC1459_N1.5.JPG"`` -> ``("a0001-jmac_DSC1459", -1.5)``.

    Only the last ``_`` token is the EV; scene names may contain underscores.
    """
    stem = Path(filename).stem if Path(filename).suffix.lower() in IMAGE_EXTENSIONS else filename
    match = _MSEC_NAME.match(stem)
    if match is None:
        raise ValueError(
            f"{filename}: not an MSEC input name <scene>_<EV>.<ext> "
            f"with EV one of {', '.join(MSEC_EV_TOKENS)}"
        )
    return match["scene"], MSEC_EV_TOKENS[match["token"]]


class MSECPairs(_FilePairs):
    """The MSEC dataset (Afifi et al., 2021) from a folder in its published layout.

    ``root/training|validation/{INPUT_IMAGES,GT_IMAGES}`` and ``root/testing/{INPUT_IMAGES,
    expert_{a..e}_testing_set}``; inputs ``<scene>_{N1.5,N1,0,P1,P1.5}.JPG``, targets ``<scene>.jpg``.
    ``split`` is ``"train"``, ``"val"`` or ``"test"``; ``expert`` picks the test set's retoucher
    (the training and validation targets are expert C's). ``evs`` keeps only those levels.
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        expert: str = "c",
        size: Optional[int] = 128,
        augment: bool = True,
        evs: Sequence[float] = EVS,
        max_side: Optional[int] = None,
        crops_per_photo: int = 1,
        seed: int = 0,
        transform: Optional[PairedTransform] = None,
        cache_dir: Optional[PathLike] = None,
        decode: str = "loader",
    ) -> None:
        self.root = Path(root)
        self.split = MSEC_SPLITS.get(split, split)
        if self.split not in MSEC_SPLITS.values():
            raise ValueError(f"unknown split {split!r}; use train, val or test")
        self.expert = expert.lower()
        if self.expert not in MSEC_EXPERTS:
            raise ValueError(f"unknown expert {expert!r}; MSEC has experts {', '.join(MSEC_EXPERTS)}")
        records = self._scan(set(float(ev) for ev in evs))
        super().__init__(records, size, augment, max_side, crops_per_photo, seed, transform, cache_dir,
                         decode)

    @property
    def target_dir(self) -> Path:
        """The folder of ground-truth images for this split (and expert)."""
        if self.split == "testing":
            return self.root / "testing" / f"expert_{self.expert}_testing_set"
        return self.root / self.split / "GT_IMAGES"

    def _scan(self, evs: set[float]) -> list[tuple[Path, Path, float, str]]:
        if not self.root.is_dir():
            raise DatasetLayoutError(f"{self.root}: no such folder (expected the MSEC dataset here)")
        input_dir = self.root / self.split / "INPUT_IMAGES"
        missing = [str(d.relative_to(self.root)) for d in (input_dir, self.target_dir) if not d.is_dir()]
        if missing:
            raise DatasetLayoutError(
                f"{self.root} is not in the MSEC layout: missing folder(s) {', '.join(missing)}; "
                "expected training|validation/{INPUT_IMAGES,GT_IMAGES} and "
                "testing/{INPUT_IMAGES,expert_a..e_testing_set}"
            )
        targets = {p.stem: p for p in list_images(self.target_dir)}
        records, unparsable, no_target = [], [], []
        for path in list_images(input_dir):
            try:
                scene, ev = parse_msec_name(path.name)
            except ValueError:
                unparsable.append(path.name)
                continue
            if scene not in targets:
                no_target.append(f"{path.name} (needs {scene}.jpg)")
                continue
            if ev in evs:
                records.append((path, targets[scene], ev, scene))
        if unparsable:
            raise DatasetLayoutError(
                f"{input_dir}: {len(unparsable)} file name(s) are not <scene>_<EV> with EV in "
                f"{', '.join(MSEC_EV_TOKENS)}: {_examples(unparsable)}"
            )
        if no_target:
            raise DatasetLayoutError(
                f"{len(no_target)} input(s) in {input_dir} have no ground truth in {self.target_dir}: "
                f"{_examples(no_target)}"
            )
        if not records:
            raise DatasetLayoutError(f"{input_dir}: no input images for the levels {sorted(evs)}")
        return records

    @property
    def scenes(self) -> list[str]:
        """The distinct scene names, sorted."""
        return sorted({r[3] for r in self.records})

    def __repr__(self) -> str:
        return (
            f"MSECPairs({str(self.root)!r}, split={self.split!r}, expert={self.expert!r}, "
            f"inputs={len(self.records)}, scenes={len(self.scenes)}, size={self.size})"
        )


class PairFolder(_FilePairs):
    """Ready-made pairs: ``input_dir/x.jpg`` goes with ``target_dir/x.<any image extension>``.

    The exposure error of such pairs is unknown, so each item's ``"ev"`` is NaN. Files without a
    partner, or two files with the same name stem in one folder, are an error that lists them.
    """

    def __init__(
        self,
        input_dir: PathLike,
        target_dir: PathLike,
        size: Optional[int] = None,
        augment: bool = False,
        max_side: Optional[int] = None,
        crops_per_photo: int = 1,
        seed: int = 0,
        transform: Optional[PairedTransform] = None,
        cache_dir: Optional[PathLike] = None,
        decode: str = "loader",
    ) -> None:
        self.input_dir, self.target_dir = Path(input_dir), Path(target_dir)
        records = self._match()
        super().__init__(records, size, augment, max_side, crops_per_photo, seed, transform, cache_dir,
                         decode)

    def _stems(self, folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            raise DatasetLayoutError(f"{folder}: no such folder")
        files = list_images(folder)
        by_stem: dict[str, list[Path]] = {}
        for p in files:
            by_stem.setdefault(p.stem, []).append(p)
        clashes = [" and ".join(p.name for p in ps) for ps in by_stem.values() if len(ps) > 1]
        if clashes:
            raise DatasetLayoutError(f"{folder}: several files share a name stem: {_examples(clashes)}")
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
                parts.append(f"inputs without a target in {self.target_dir}: {_examples(names)}")
            if lonely_targets:
                names = [targets[s].name for s in lonely_targets]
                parts.append(f"targets without an input in {self.input_dir}: {_examples(names)}")
            raise DatasetLayoutError("unmatched files; " + "; ".join(parts))
        return [(inputs[s], targets[s], math.nan, s) for s in sorted(inputs)]



MSEC_ENV_VAR = "EXPOLIB_MSEC"


def find_msec() -> Optional[Path]:
    """Where MSEC is, if anywhere: ``$EXPOLIB_MSEC``, else a ``data/MSEC`` folder in the current folder
    or its parent (the book's folder or the project root). ``None`` when not found.

    A variable pointing at a folder that does not exist is an error, not a silent fallback.
    """
    value = os.environ.get(MSEC_ENV_VAR, "").strip()
    if value:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{MSEC_ENV_VAR}={value}: no such folder")
        return path
    here = Path.cwd()
    for base in (here, here.parent):
        candidate = base / "data" / "MSEC"
        if candidate.is_dir() and any((candidate / name).is_dir() for name in MSEC_SPLITS.values()):
            return candidate
    return None


__all__ = [
    "MSEC_ENV_VAR",
    "MSEC_EV_TOKENS",
    "MSEC_EXPERTS",
    "MSEC_SPLITS",
    "DatasetLayoutError",
    "MSECPairs",
    "PairFolder",
    "find_msec",
    "parse_msec_name",
]
