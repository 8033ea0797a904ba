"""Where the pairs come from: every source is a torch ``Dataset`` giving the same item.

An item is ``{"input": Tensor[3, H, W], "target": Tensor[3, H, W], "ev": float, "scene": str}`` with
both images in [-1, 1]. Sources:

* :class:`EmbeddedPairs`: natural colour photos shipped inside scikit-image, scikit-learn and
  matplotlib, and the real photographs shipped with expolib (``expolib/photos``, from Debian's
  wallpaper packages; ``ATTRIBUTION.md`` there credits them), all offline, rendered at the MSEC
  exposure levels with :func:`render_exposure` or with a (randomized) camera of :mod:`expolib.imaging.camera`.
* :class:`PhotoFolderPairs`: a folder of your own well-exposed photos, rendered like the embedded set.
* :mod:`expolib.data.filepairs` holds the sources whose inputs are files too: ``MSECPairs`` (the
  Multi-Scale Exposure Correction dataset, Afifi et al., 2021) and ``PairFolder`` (ready-made pairs).

:func:`make_loader` batches any of them (``expolib.benchmarks.bench.benchmark_pipeline`` measures how fast pairs arrive).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from expolib.imaging.camera import Camera, CameraFamily
from expolib.imaging.exposure import EVS
from expolib.imaging.imageio import ImageLoadError, PathLike, load_image
from expolib.imaging.render import draw_item, render_pairs
from expolib.imaging.transforms import PairedTransform, check_side

Item = dict[str, Any]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

# ----------------------------------------------------------------------------------------------
# The embedded photos
# ----------------------------------------------------------------------------------------------

#: The real photographs shipped with expolib: JPEGs, their credits (ATTRIBUTION.md) and photos.json.
PHOTO_DIR = Path(__file__).resolve().parents[1] / "photos"


@lru_cache(maxsize=1)
def shipped_photos() -> tuple[dict[str, Any], ...]:
    """The records of ``photos.json``: file, scene, content, tag, author, licence, split, source."""
    return tuple(json.loads((PHOTO_DIR / "photos.json").read_text(encoding="utf-8")))


#: Scene names per split. Splitting by scene (never by crop) keeps every view of a scene together.
EMBEDDED_SPLIT: dict[str, tuple[str, ...]] = {
    split: python_scenes + tuple(r["scene"] for r in shipped_photos() if r["split"] == split)
    for split, python_scenes in {
        "train": ("astronaut", "rocket", "motorcycle", "china", "grace_hopper"),
        "val": ("coffee",),
        "test": ("chelsea", "flower"),
    }.items()
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
    **{r["scene"]: (r["scene"],) for r in shipped_photos()},
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
    **{r["scene"]: f"expolib/photos/{r['file']} ({r['author']}, {r['licence']})" for r in shipped_photos()},
}


@cache
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
    elif name == "grace_hopper":
        import matplotlib.cbook

        image = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        image = load_image(PHOTO_DIR / f"{name}.jpg")
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    image.setflags(write=False)
    return image


def embedded_photos(split: str) -> list[tuple[str, str]]:
    """The (scene, photo name) pairs of one split of the embedded set."""
    if split not in EMBEDDED_SPLIT:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(EMBEDDED_SPLIT)}")
    return [(scene, photo) for scene in EMBEDDED_SPLIT[split] for photo in EMBEDDED_PHOTOS[scene]]


@lru_cache(maxsize=64)
def _embedded_codes(name: str, max_side: Optional[int]) -> torch.Tensor:
    """A shipped photo as uint8 (3, H, W), its long side shrunk to at most ``max_side``."""
    image = torch.from_numpy(load_embedded_photo(name).copy()).permute(2, 0, 1).contiguous()
    h, w = image.shape[-2:]
    if max_side is None or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    return TF.resize(image, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)


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


# ----------------------------------------------------------------------------------------------
# Pairs rendered from well-exposed photos
# ----------------------------------------------------------------------------------------------


class _RenderedPairs(Dataset):
    """Base for sources that render inputs from well-exposed photos: one item per (photo, crop, EV).

    With a ``size``, each item is a ``size`` x ``size`` crop: random, flipped and jittered when
    ``augment`` is set, otherwise at a position fixed by ``seed`` and the index. With ``size=None``,
    the whole photo (long side at most ``max_side``), one item per (photo, EV), for evaluation.
    The input is rendered *after* cropping (cheaper) with a seed derived from ``seed`` and the index.

    ``camera``: None renders with :func:`render_exposure` (the book's camera, shot noise ``noise``);
    a :class:`~expolib.imaging.camera.Camera` renders every item with that camera (the held-out camera of
    an evaluation, say); a :class:`~expolib.imaging.camera.CameraFamily` draws a camera *and an EV* for every
    item (``evs`` then only sets how many items a crop gives, and the item's ``ev`` is the drawn one).
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
        camera: Union[Camera, CameraFamily, None] = None,
        scale: Optional[tuple[float, float]] = None,
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
        self.camera = camera
        self.deferred = False  # True: items are drawn, not rendered (the trainer renders batches)
        # a camera family varies colour itself (white balance), and input-only jitter on its EV 0 items
        # would teach the model to change photos that need no change
        self.transform = default_transform(size, augment, transform, scale,
                                           jitter=not isinstance(camera, CameraFamily))
        if size is not None and self.transform.train and self.transform.scale is not None:
            # the rescaled crop never needs more than this long side (short side at most 2x smaller)
            needed = int(2 * size * self.transform.scale[1]) + 1
            self.max_side = needed if max_side is None else min(max_side, needed)

    def _photo(self, photo_index: int) -> torch.Tensor:
        """The well-exposed photo as uint8 (3, H, W), long side at most ``max_side`` (uint8 until
        the device renders it: a quarter of the memory traffic, and torchvision's fast uint8 resize)."""
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

    def draw(self, index: int) -> dict[str, Any]:
        """Item ``index`` before rendering: the well-exposed crop as uint8 ``photo`` (3, S, S), its
        drawn ``params`` and noise ``seed`` (see :mod:`expolib.imaging.render`), its ``ev`` and ``scene``."""
        photo_index, _crop, ev = self.locate(index)
        index %= len(self)
        seed = item_seed(self.seed, index)
        # evaluation items: every choice from the item's own seed; training items: from the global
        # generators, which the trainer seeds per item (expolib.training.checkpoint.SeededItems)
        generator = None if self.augment else torch.Generator().manual_seed(seed)
        (crop,), flip = self.transform.crop(self._photo(photo_index), generator=generator)
        camera = self.camera if self.camera is not None else Camera(shot_noise=self.noise)
        params, noise_seed, ev = draw_item(camera, ev, flip, self.transform.jitter_ranges(),
                                           self.transform.jitter_p, generator)
        if self.camera is None:
            noise_seed = seed  # the book's camera: the noise of render_exposure(..., seed=item seed)
        # a crop may be a view of the cached photo: a copy of its own, so a worker sends only the crop
        return {"photo": crop.clone(memory_format=torch.contiguous_format), "params": params,
                "seed": torch.tensor(noise_seed), "ev": ev,
                "scene": self.photos[photo_index][0]}

    def __getitem__(self, index: int) -> Item:
        item = self.draw(index)
        if self.deferred:
            return item  # rendered by render_batch, on the training device
        x, y = render_pairs(item["photo"][None], item["params"][None], item["seed"][None])
        return {"input": x[0], "target": y[0], "ev": item["ev"], "scene": item["scene"]}

    def render_batch(self, batch: dict[str, Any],
                     device: Union[str, torch.device, None] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) in [-1, 1] of a batch of :meth:`draw` items, rendered on ``device``: what
        ``__getitem__`` gives item by item, for the whole batch at once."""
        return render_pairs(batch["photo"], batch["params"], batch["seed"], device)


class EmbeddedPairs(_RenderedPairs):
    """Pairs rendered from the photos that installed packages ship; split by scene (:data:`EMBEDDED_SPLIT`).

    ``size`` gives training crops (``crops_per_photo`` per photo and EV); ``size=None`` gives whole
    photos (long side ``max_side``), one item per (photo, EV), deterministically, for evaluation.
    ``noise`` adds mild shot noise to under-exposed inputs; ``camera`` and ``scale``: see
    :class:`_RenderedPairs` and :class:`~expolib.imaging.transforms.PairedTransform`.
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
        camera: Union[Camera, CameraFamily, None] = None,
        scale: Optional[tuple[float, float]] = None,
    ) -> None:
        self.split = split
        super().__init__(
            embedded_photos(split), size, evs, augment, max_side, crops_per_photo, seed, noise, transform,
            camera, scale,
        )

    def _photo(self, photo_index: int) -> torch.Tensor:
        return _embedded_codes(self.photos[photo_index][1], self.max_side)

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


def _cache_name(path: Path, max_side: int) -> str:
    """A file name for ``path`` shrunk to ``max_side`` that changes when the file does."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{max_side}"
    return hashlib.sha1(key.encode()).hexdigest()[:20] + ".png"


def _long_side(path: Path) -> int:
    """The long side of an image file, from its header."""
    with Image.open(path) as image:
        return max(image.size)


def load_resized_uint8(path: Path, max_side: Optional[int], cache_dir: Optional[PathLike] = None,
                       ) -> torch.Tensor:
    """A photo file as uint8 (3, H, W), its long side shrunk to at most ``max_side``.

    A JPEG much larger than ``max_side`` is decoded at a reduced scale first (Pillow's draft mode).
    With ``cache_dir``, the shrunk photo is also kept there (lossless PNG, named from the file's path,
    size and time, so an edited photo is decoded again) the first time, and read from there after:
    a one-time cost instead of decoding a large original at every epoch. Refused, naming the file,
    when it is then under the minimum side.
    """
    path = Path(path)
    cached = Path(cache_dir) / _cache_name(path, max_side) if cache_dir is not None and max_side else None
    if cached is not None and cached.is_file():
        try:
            return torch.from_numpy(load_image(cached).copy()).permute(2, 0, 1).contiguous()
        except ImageLoadError:
            pass  # a damaged cache entry: decode the original again
    array = load_image(path, draft_side=max_side)
    image = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    h, w = image.shape[-2:]
    resized = image
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        resized = TF.resize(image, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)
    shrunk = f" (shrunk so its long side is {max_side} px)" if resized.shape != image.shape else ""
    check_side(resized, f"{path}{shrunk}")
    if cached is not None and _long_side(path) > max(resized.shape[-2:]):  # drafted or shrunk: keep it
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")  # workers may race: rename
        Image.fromarray(resized.permute(1, 2, 0).numpy()).save(temporary, format="PNG", compress_level=1)
        os.replace(temporary, cached)
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
        camera: Union[Camera, CameraFamily, None] = None,
        scale: Optional[tuple[float, float]] = None,
        cache_size: int = 16,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder of photos")
        self.paths = list_images(self.folder)
        if not self.paths:
            raise ValueError(f"{self.folder}: no photos found (looked for {', '.join(IMAGE_EXTENSIONS)})")
        photos = [(p.stem, str(p)) for p in self.paths]
        super().__init__(photos, size, evs, augment, max_side, crops_per_photo, seed, noise, transform,
                         camera, scale)
        self.cache_size = cache_size
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def _photo(self, photo_index: int) -> torch.Tensor:
        if photo_index in self._cache:
            self._cache.move_to_end(photo_index)
            return self._cache[photo_index]
        image = load_resized_uint8(self.paths[photo_index], self.max_side)
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
# Loading batches
# ----------------------------------------------------------------------------------------------


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


__all__ = [
    "EMBEDDED_PHOTOS",
    "EMBEDDED_SOURCES",
    "EMBEDDED_SPLIT",
    "IMAGE_EXTENSIONS",
    "EmbeddedPairs",
    "PhotoFolderPairs",
    "default_transform",
    "embedded_photos",
    "list_images",
    "load_embedded_photo",
    "make_loader",
]
