"""Where the pairs come from: every source is a torch ``Dataset`` giving the same item.

An item is ``{"input": Tensor[3, H, W], "target": Tensor[3, H, W], "ev": float, "scene": str}`` with
both images in [-1, 1]. Sources:

* :class:`EmbeddedPairs`: natural colour photos shipped inside scikit-image, scikit-learn and
  matplotlib (no download), rendered at the MSEC exposure levels with :func:`render_exposure`.
* :class:`MSECPairs`: the Multi-Scale Exposure Correction dataset (Afifi et al., 2021) from a folder.
* :class:`PhotoFolderPairs`: a folder of your own well-exposed photos, rendered like the embedded set.
* :class:`PairFolder`: ready-made pairs, an input folder and a target folder matched by file name.

:func:`make_loader` batches any of them; :func:`benchmark_pipeline` measures how fast pairs arrive.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset

from expolib.exposure import EVS, render_exposure
from expolib.imageio import ImageLoadError, PathLike, load_image
from expolib.transforms import PairedTransform, check_side, resize_long_side, to_tensor01

Item = dict[str, Any]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

# ----------------------------------------------------------------------------------------------
# The embedded photos
# ----------------------------------------------------------------------------------------------

#: Scene names per split. Splitting by scene (never by crop) keeps every view of a scene together.
EMBEDDED_SPLIT: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "rocket", "motorcycle", "china", "grace_hopper"),
    "val": ("coffee",),
    "test": ("chelsea", "flower"),
}

#: The photos of each scene: the stereo motorcycle is one scene seen from two viewpoints.
EMBEDDED_PHOTOS: dict[str, tuple[str, ...]] = {
    "astronaut": ("astronaut",),
    "rocket": ("rocket",),
    "motorcycle": ("motorcycle_left", "motorcycle_right"),
    "china": ("china",),
    "grace_hopper": ("grace_hopper",),
    "coffee": ("coffee",),
    "chelsea": ("chelsea",),
    "flower": ("flower",),
}

#: Where each embedded photo comes from, for credits and the chapter's table.
EMBEDDED_SOURCES: dict[str, str] = {
    "astronaut": "skimage.data.astronaut()",
    "rocket": "skimage.data.rocket()",
    "motorcycle_left": "skimage.data.stereo_motorcycle()[0]",
    "motorcycle_right": "skimage.data.stereo_motorcycle()[1]",
    "china": "sklearn.datasets.load_sample_images(): china.jpg",
    "grace_hopper": "matplotlib.cbook.get_sample_data('grace_hopper.jpg')",
    "coffee": "skimage.data.coffee()",
    "chelsea": "skimage.data.chelsea()",
    "flower": "sklearn.datasets.load_sample_images(): flower.jpg",
}


@lru_cache(maxsize=None)
def load_embedded_photo(name: str) -> np.ndarray:
    """One embedded photo (see :data:`EMBEDDED_SOURCES`) as a read-only uint8 RGB array, cached."""
    if name not in EMBEDDED_SOURCES:
        raise KeyError(f"unknown embedded photo {name!r}; known: {', '.join(EMBEDDED_SOURCES)}")
    if name in ("astronaut", "rocket", "coffee", "chelsea"):
        import skimage.data

        image = getattr(skimage.data, name)()
    elif name.startswith("motorcycle_"):
        import skimage.data

        left, right, _disparity = skimage.data.stereo_motorcycle()
        image = left if name.endswith("left") else right
    elif name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    else:
        import matplotlib.cbook

        image = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    image.setflags(write=False)
    return image


def embedded_photos(split: str) -> list[tuple[str, str]]:
    """The (scene, photo name) pairs of one split of the embedded set."""
    if split not in EMBEDDED_SPLIT:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(EMBEDDED_SPLIT)}")
    return [(scene, photo) for scene in EMBEDDED_SPLIT[split] for photo in EMBEDDED_PHOTOS[scene]]


@lru_cache(maxsize=64)
def _embedded_tensor(name: str, max_side: Optional[int]) -> torch.Tensor:
    return resize_long_side(to_tensor01(load_embedded_photo(name)), max_side)


def _item_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for one item, from the dataset seed and the item's index."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


# ----------------------------------------------------------------------------------------------
# Pairs rendered from well-exposed photos
# ----------------------------------------------------------------------------------------------


class _RenderedPairs(Dataset):
    """Base for sources that render inputs from well-exposed photos: one item per (photo, crop, EV).

    With a ``size``, each item is a ``size`` x ``size`` crop: random, flipped and jittered when
    ``augment`` is set, otherwise at a position fixed by ``seed`` and the index. With ``size=None``,
    the whole photo (long side at most ``max_side``), one item per (photo, EV), for evaluation.
    The input is rendered *after* cropping (cheaper) with a seed derived from ``seed`` and the index.
    """

    def __init__(
        self,
        photos: Sequence[tuple[str, str]],
        size: Optional[int],
        evs: Sequence[float],
        augment: bool,
        max_side: Optional[int],
        crops_per_photo: int,
        seed: int,
        noise: float,
        transform: Optional[PairedTransform],
    ) -> None:
        if not evs:
            raise ValueError("evs is empty: give at least one exposure level")
        if crops_per_photo < 1:
            raise ValueError(f"crops_per_photo must be >= 1, got {crops_per_photo}")
        self.photos = list(photos)
        self.size = size
        self.evs = tuple(float(ev) for ev in evs)
        self.augment = augment and size is not None
        self.max_side = max_side
        self.crops_per_photo = crops_per_photo if size is not None else 1
        self.seed = seed
        self.noise = noise
        if transform is not None:
            self.transform = transform
        elif size is None:
            self.transform = PairedTransform(None, train=False)
        elif augment:
            self.transform = PairedTransform(size, train=True)
        else:  # fixed crops spread over the photo: "train" geometry driven by a seeded generator
            self.transform = PairedTransform(size, flip_p=0.0, jitter_p=0.0, train=True)

    def _photo(self, photo_index: int) -> torch.Tensor:
        """The well-exposed photo as float (3, H, W) in [0, 1], long side at most ``max_side``."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.photos) * self.crops_per_photo * len(self.evs)

    def locate(self, index: int) -> tuple[int, int, float]:
        """(photo index, crop number, EV) of item ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        rest, ev_index = divmod(index, len(self.evs))
        photo_index, crop = divmod(rest, self.crops_per_photo)
        return photo_index, crop, self.evs[ev_index]

    def __getitem__(self, index: int) -> Item:
        photo_index, _crop, ev = self.locate(index)
        index %= len(self)
        item_seed = _item_seed(self.seed, index)
        generator = None if self.augment else torch.Generator().manual_seed(item_seed)
        (target,) = self.transform.geometry(self._photo(photo_index), generator=generator)
        source = render_exposure(target, ev, noise=self.noise, seed=item_seed)
        x, y = self.transform.finish(source, target)
        return {"input": x, "target": y, "ev": ev, "scene": self.photos[photo_index][0]}


class EmbeddedPairs(_RenderedPairs):
    """Pairs rendered from the photos that installed packages ship; split by scene (:data:`EMBEDDED_SPLIT`).

    ``size`` gives training crops (``crops_per_photo`` per photo and EV); ``size=None`` gives whole
    photos (long side ``max_side``), one item per (photo, EV), deterministically, for evaluation.
    ``noise`` adds mild shot noise to under-exposed inputs.
    """

    def __init__(
        self,
        split: str = "train",
        size: Optional[int] = 128,
        evs: Sequence[float] = EVS,
        augment: bool = True,
        max_side: Optional[int] = None,
        crops_per_photo: int = 8,
        seed: int = 0,
        noise: float = 0.01,
        transform: Optional[PairedTransform] = None,
    ) -> None:
        self.split = split
        super().__init__(
            embedded_photos(split), size, evs, augment, max_side, crops_per_photo, seed, noise, transform
        )

    def _photo(self, photo_index: int) -> torch.Tensor:
        return _embedded_tensor(self.photos[photo_index][1], self.max_side)

    def __repr__(self) -> str:
        return (
            f"EmbeddedPairs(split={self.split!r}, size={self.size}, photos={len(self.photos)}, "
            f"evs={self.evs}, items={len(self)})"
        )


def list_images(folder: PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension, any case), sorted by path; ``recursive``: sub-folders too.

    Hidden files and folders (names starting with a dot, such as the ``._IMG.jpg`` files macOS leaves
    on shared drives) are skipped.
    """
    folder = Path(folder)
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in candidates
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _load_resized(path: Path, max_side: Optional[int]) -> torch.Tensor:
    """A photo file as float (3, H, W) in [0, 1], shrunk to ``max_side``, refused (naming the file) if
    it is then too small: a panorama can lose its short side to the resize."""
    image = to_tensor01(load_image(path))
    resized = resize_long_side(image, max_side)
    shrunk = f" (shrunk so its long side is {max_side} px)" if resized.shape != image.shape else ""
    check_side(resized, f"{path}{shrunk}")
    return resized


class PhotoFolderPairs(_RenderedPairs):
    """Pairs rendered from a folder of your own well-exposed photos (one scene per file).

    Same options as :class:`EmbeddedPairs`. Decoded photos are kept in a small cache
    (``cache_size`` photos) since each one yields several items.
    """

    def __init__(
        self,
        folder: PathLike,
        size: Optional[int] = 128,
        evs: Sequence[float] = EVS,
        augment: bool = True,
        max_side: Optional[int] = None,
        crops_per_photo: int = 8,
        seed: int = 0,
        noise: float = 0.01,
        transform: Optional[PairedTransform] = None,
        cache_size: int = 16,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder of photos")
        self.paths = list_images(self.folder)
        if not self.paths:
            raise ValueError(f"{self.folder}: no photos found (looked for {', '.join(IMAGE_EXTENSIONS)})")
        photos = [(p.stem, str(p)) for p in self.paths]
        super().__init__(photos, size, evs, augment, max_side, crops_per_photo, seed, noise, transform)
        self.cache_size = cache_size
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def _photo(self, photo_index: int) -> torch.Tensor:
        if photo_index in self._cache:
            self._cache.move_to_end(photo_index)
            return self._cache[photo_index]
        image = _load_resized(self.paths[photo_index], self.max_side)
        if self.cache_size > 0:
            self._cache[photo_index] = image
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return image

    def __repr__(self) -> str:
        return (
            f"PhotoFolderPairs({str(self.folder)!r}, size={self.size}, photos={len(self.photos)}, "
            f"items={len(self)})"
        )


# ----------------------------------------------------------------------------------------------
# Pairs read from files
# ----------------------------------------------------------------------------------------------


class DatasetLayoutError(ValueError):
    """A dataset folder is not laid out as expected; the message lists what is missing."""


def _examples(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    more = f" ... ({len(items)} in all)" if len(items) > limit else f" ({len(items)} in all)"
    return shown + more


class _FilePairs(Dataset):
    """Base for sources whose inputs and targets are both files: one item per record and crop."""

    def __init__(
        self,
        records: Sequence[tuple[Path, Path, float, str]],
        size: Optional[int],
        augment: bool,
        max_side: Optional[int],
        crops_per_photo: int,
        seed: int,
        transform: Optional[PairedTransform],
    ) -> None:
        self.records = list(records)
        self.size = size
        self.augment = augment and size is not None
        self.max_side = max_side
        self.crops_per_photo = crops_per_photo if size is not None else 1
        self.seed = seed
        if transform is not None:
            self.transform = transform
        elif size is None:
            self.transform = PairedTransform(None, train=False)
        elif augment:
            self.transform = PairedTransform(size, train=True)
        else:
            self.transform = PairedTransform(size, flip_p=0.0, jitter_p=0.0, train=True)

    def __len__(self) -> int:
        return len(self.records) * self.crops_per_photo

    def load_pair(self, record_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and target of a record as float (3, H, W) in [0, 1], the same size."""
        input_path, target_path, _ev, _scene = self.records[record_index]
        x = _load_resized(input_path, self.max_side)
        y = to_tensor01(load_image(target_path))
        if y.shape[-2:] != x.shape[-2:]:
            (hx, wx), (hy, wy) = x.shape[-2:], y.shape[-2:]
            if abs(wx / hx - wy / hy) > 0.02 * (wx / hx):
                raise ValueError(
                    f"{input_path} ({wx}x{hx}) and its target {target_path} ({wy}x{hy}) have different "
                    "shapes; the two images of a pair must show the same view"
                )
            y = TF.resize(y, [hx, wx], antialias=True).clamp(0.0, 1.0)
        return x, y

    def __getitem__(self, index: int) -> Item:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        record_index = index // self.crops_per_photo
        _inp, _tgt, ev, scene = self.records[record_index]
        x, y = self.load_pair(record_index)
        generator = None if self.augment else torch.Generator().manual_seed(_item_seed(self.seed, index))
        x, y = self.transform.geometry(x, y, generator=generator)
        x, y = self.transform.finish(x, y)
        return {"input": x, "target": y, "ev": ev, "scene": scene}


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
    ) -> None:
        self.root = Path(root)
        self.split = MSEC_SPLITS.get(split, split)
        if self.split not in MSEC_SPLITS.values():
            raise ValueError(f"unknown split {split!r}; use train, val or test")
        self.expert = expert.lower()
        if self.expert not in MSEC_EXPERTS:
            raise ValueError(f"unknown expert {expert!r}; MSEC has experts {', '.join(MSEC_EXPERTS)}")
        records = self._scan(set(float(ev) for ev in evs))
        super().__init__(records, size, augment, max_side, crops_per_photo, seed, transform)

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
    ) -> None:
        self.input_dir, self.target_dir = Path(input_dir), Path(target_dir)
        records = self._match()
        super().__init__(records, size, augment, max_side, crops_per_photo, seed, transform)

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


# ----------------------------------------------------------------------------------------------
# Finding MSEC, loading batches, measuring speed
# ----------------------------------------------------------------------------------------------

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


def benchmark_pipeline(size: int = 256, seconds: float = 5.0) -> dict[str, float]:
    """Training pairs per second that :class:`EmbeddedPairs` with augmentation delivers on one CPU thread.

    Returns ``{"pairs_per_second", "pairs", "seconds", "size", "ms_per_pair"}``; the thread count is
    restored afterwards.
    """
    dataset = EmbeddedPairs("train", size=size, augment=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        order = torch.randperm(len(dataset)).tolist()
        for name in {photo for _scene, photo in dataset.photos}:  # decode the photos before timing
            _embedded_tensor(name, dataset.max_side)
        pairs, start = 0, time.perf_counter()
        while True:
            dataset[order[pairs % len(order)]]
            pairs += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
    finally:
        torch.set_num_threads(threads)
    return {
        "pairs_per_second": pairs / elapsed,
        "pairs": float(pairs),
        "seconds": elapsed,
        "size": float(size),
        "ms_per_pair": 1000.0 * elapsed / pairs,
    }


__all__ = [
    "EMBEDDED_PHOTOS",
    "EMBEDDED_SOURCES",
    "EMBEDDED_SPLIT",
    "IMAGE_EXTENSIONS",
    "MSEC_ENV_VAR",
    "MSEC_EV_TOKENS",
    "MSEC_SPLITS",
    "DatasetLayoutError",
    "EmbeddedPairs",
    "ImageLoadError",
    "MSECPairs",
    "PairFolder",
    "PhotoFolderPairs",
    "benchmark_pipeline",
    "embedded_photos",
    "find_msec",
    "list_images",
    "load_embedded_photo",
    "make_loader",
    "parse_msec_name",
]
