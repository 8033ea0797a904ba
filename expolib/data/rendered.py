"""Pairs rendered from well-exposed photos: the shipped ones, or a folder of your own.

Each item's input is rendered from the photo at an exposure level (EV) with :func:`render_exposure`
or with a (randomized) camera of :mod:`expolib.imaging.camera`; the photo itself is the target. The
item is the one of :mod:`expolib.data.items`.

* :class:`EmbeddedPairs`: the photos that come with the software (:mod:`expolib.data.photos`), split by scene.
* :class:`PhotoFolderPairs`: a folder of your own well-exposed photos, rendered like the embedded set.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch.utils.data import Dataset

from expolib.data.items import Item, default_transform, item_seed
from expolib.data.photofiles import IMAGE_EXTENSIONS, list_images, load_resized_uint8
from expolib.data.photos import embedded_codes, embedded_photos
from expolib.imaging.camera import Camera, CameraFamily
from expolib.imaging.exposure import EVS
from expolib.imaging.imageio import PathLike
from expolib.imaging.render import draw_item, render_pairs
from expolib.imaging.transforms import PairedTransform


class RenderedPairs(Dataset):
    """Base for sources that render inputs from well-exposed photos: one item per (photo, crop, EV).

    With a ``size``, each item is a ``size`` x ``size`` crop: random, flipped and jittered when
    ``augment`` is set, otherwise at a position fixed by ``seed`` and the index. With ``size=None``,
    the whole photo (long side at most ``max_side``), one item per (photo, EV), for evaluation.
    The input is rendered *after* cropping (cheaper) with a seed derived from ``seed`` and the index.

    ``photos`` are (scene, photo) pairs; ``noise`` adds mild shot noise to under-exposed inputs;
    ``transform`` replaces :func:`~expolib.data.items.default_transform` (``scale``: see
    :class:`~expolib.imaging.transforms.PairedTransform`).
    ``camera``: None renders with :func:`render_exposure` (the book's camera, shot noise ``noise``);
    a :class:`~expolib.imaging.camera.Camera` renders every item with that camera (the held-out camera of
    an evaluation, say); a :class:`~expolib.imaging.camera.CameraFamily` draws a camera *and an EV* for every
    item (``evs`` then only sets how many items a crop gives, and the item's ``ev`` is the drawn one).
    """

    def __init__(
        self,
        photos: Sequence[tuple[str, str]],
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


class EmbeddedPairs(RenderedPairs):
    """Pairs rendered from the photos that installed packages ship; split by scene (:data:`EMBEDDED_SPLIT`).

    ``size`` gives training crops (``crops_per_photo`` per photo and EV); ``size=None`` gives whole
    photos (long side ``max_side``), one item per (photo, EV), deterministically, for evaluation.
    The ``options`` and their defaults are those of :class:`RenderedPairs`.
    """

    def __init__(self, split: str = "train", **options: Any) -> None:
        self.split = split
        super().__init__(embedded_photos(split), **options)

    def _photo(self, photo_index: int) -> torch.Tensor:
        return embedded_codes(self.photos[photo_index][1], self.max_side)

    def __repr__(self) -> str:
        return (
            f"EmbeddedPairs(split={self.split!r}, size={self.size}, photos={len(self.photos)}, "
            f"evs={self.evs}, items={len(self)})"
        )


class PhotoFolderPairs(RenderedPairs):
    """Pairs rendered from a folder of your own well-exposed photos (one scene per file).

    The ``options`` and their defaults are those of :class:`RenderedPairs`, as for
    :class:`EmbeddedPairs`. Decoded photos are kept in a small cache (``cache_size`` photos) since
    each one yields several items.
    """

    def __init__(self, folder: PathLike, *, cache_size: int = 16, **options: Any) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder of photos")
        self.paths = list_images(self.folder)
        if not self.paths:
            raise ValueError(f"{self.folder}: no photos found (looked for {', '.join(IMAGE_EXTENSIONS)})")
        photos = [(p.stem, str(p)) for p in self.paths]
        super().__init__(photos, **options)
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


__all__ = ["EmbeddedPairs", "PhotoFolderPairs", "RenderedPairs"]
