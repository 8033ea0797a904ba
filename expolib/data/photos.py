"""The photos that come with the software, and how they split into training, validation and test.

Natural colour photos shipped inside scikit-image, scikit-learn and matplotlib, and the real
photographs shipped with expolib (``expolib/photos``, from Debian's wallpaper packages;
``ATTRIBUTION.md`` there credits them), all offline. The split is by scene, never by crop: the two
views of the stereo motorcycle are one scene. :class:`expolib.data.rendered.EmbeddedPairs` renders
them into training and evaluation pairs.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from expolib.imaging.imageio import load_image
from expolib.imaging.transforms import resize_long_side

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


@lru_cache(maxsize=64)
def embedded_codes(name: str, max_side: Optional[int]) -> torch.Tensor:
    """An embedded photo as uint8 (3, H, W), its long side shrunk to at most ``max_side``; cached, so
    that a source asking for it at every item decodes and shrinks it once."""
    image = torch.from_numpy(load_embedded_photo(name).copy()).permute(2, 0, 1).contiguous()
    return resize_long_side(image, max_side)


def embedded_photos(split: str) -> list[tuple[str, str]]:
    """The (scene, photo name) pairs of one split of the embedded set."""
    if split not in EMBEDDED_SPLIT:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(EMBEDDED_SPLIT)}")
    return [(scene, photo) for scene in EMBEDDED_SPLIT[split] for photo in EMBEDDED_PHOTOS[scene]]


__all__ = [
    "EMBEDDED_PHOTOS",
    "EMBEDDED_SOURCES",
    "EMBEDDED_SPLIT",
    "PHOTO_DIR",
    "embedded_codes",
    "embedded_photos",
    "load_embedded_photo",
    "shipped_photos",
]
