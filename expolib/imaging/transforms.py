"""Paired augmentation: what must move together and what only the input gets.

An input and its target are two pictures of the same scene, pixel for pixel. Anything that moves
pixels (crop, flip, resize) must be applied to both with the *same* parameters, or the pair no longer
lines up and the L1 loss asks the generator to move pixels. Photometric changes (colour jitter) go
on the input only: the target is what the generator should produce, whatever the input looked like.

Finally both are mapped from [0, 1] to [-1, 1] (:func:`normalize`), the range of the generator's tanh
output; :func:`denormalize` maps back for display and metrics.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as TF

MIN_SIDE = 16  # smaller photos are refused: there is nothing to learn from a few pixels

#: Rec. 709 / sRGB luma weights of (R, G, B), applied to the encoded values: what the eye reads as
#: brightness, closely enough for measuring and matching it (see :func:`luminance`).
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)

ImageLike = Union[torch.Tensor, np.ndarray]


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] to [-1, 1] (the range of a tanh output): ``2 * x - 1``."""
    return x * 2.0 - 1.0


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] back to [0, 1], clamping values a network may put slightly outside."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def to_tensor01(image: ImageLike) -> torch.Tensor:
    """An image as a float32 tensor (C, H, W) in [0, 1]: from an HWC array or a CHW tensor.

    Unsigned integer data (uint8, uint16, ...) is divided by its type's largest value, so 16-bit data
    lands in [0, 1] too; float data is taken as [0, 1] already. Signed integers and booleans carry no
    nominal range and are refused.
    """
    if isinstance(image, torch.Tensor):
        if image.is_floating_point():
            return image.to(torch.float32)
        if image.dtype == torch.bool or image.dtype.is_signed:
            raise ValueError(f"expected an unsigned integer or float image, got dtype {image.dtype}")
        return image.to(torch.float32).div_(float(torch.iinfo(image.dtype).max))
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"expected an image (H, W, C), got shape {array.shape}")
    if array.dtype.kind not in "uf":
        raise ValueError(f"expected an unsigned integer or float image, got dtype {array.dtype}")
    scale = float(np.iinfo(array.dtype).max) if array.dtype.kind == "u" else None
    if array.dtype.kind == "u" and array.dtype != np.uint8:
        array = array.astype(np.float32)  # torch has no general support for uint16/32/64
    t = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).to(torch.float32)
    return t.div_(scale) if scale is not None else t


def luminance(image: np.ndarray) -> np.ndarray:
    """Luma ``(H, W)`` of an sRGB image ``(H, W, 3)`` in [0, 1] (:data:`LUMA_WEIGHTS`); any ``(..., 3)``."""
    return image @ np.asarray(LUMA_WEIGHTS, dtype=image.dtype)


def check_side(image: torch.Tensor, what: str = "image") -> None:
    """Refuse images with a side under :data:`MIN_SIDE` pixels."""
    h, w = image.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"{what} is {w}x{h} pixels; photos need at least {MIN_SIDE} pixels on each side")


def long_side_size(h: int, w: int, max_side: Optional[int]) -> tuple[int, int]:
    """(height, width) of an ``h`` x ``w`` image shrunk so its long side is at most ``max_side``."""
    if max_side is None or max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_long_side(image: torch.Tensor, max_side: Optional[int]) -> torch.Tensor:
    """Shrink ``image`` (C, H, W), uint8 or float in [0, 1], so its long side is at most ``max_side``
    (antialiased, :func:`long_side_size`); never enlarges."""
    h, w = image.shape[-2:]
    size = long_side_size(h, w, max_side)
    if size == (h, w):
        return image
    out = TF.resize(image, list(size), antialias=True)
    return out.clamp(0.0, 1.0) if out.is_floating_point() else out


def cut(image: torch.Tensor, new_h: int, new_w: int, top: int, left: int, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` square at (``top``, ``left``) of ``image`` (C, H, W) resized to
    ``new_h`` x ``new_w``. Only the part of the photo under the square is resized (what
    ``torchvision``'s ``resized_crop`` does), not the whole photo: the same picture up to a fraction of a
    pixel at the edge, for a fraction of the work."""
    h, w = image.shape[-2:]
    if (new_h, new_w) == (h, w):
        return TF.crop(image, top, left, size, size)
    sy, sx = h / new_h, w / new_w
    y0, x0 = round(top * sy), round(left * sx)
    hs, ws = max(1, min(h - y0, round(size * sy))), max(1, min(w - x0, round(size * sx)))
    out = TF.resized_crop(image, y0, x0, hs, ws, [size, size], antialias=True)
    return out.clamp(0.0, 1.0) if out.is_floating_point() else out


class PairedTransform:
    """Augment an (input, target) pair of [0, 1] images and normalise both to [-1, 1].

    Training (``train=True``): a random ``size`` x ``size`` crop and a horizontal flip with probability
    ``flip_p``, both with one set of parameters for the two images; colour jitter with probability
    ``jitter_p`` on the input only. Evaluation (``train=False``): a centre crop (none if ``size`` is
    None), no flip, no jitter. Photos smaller than the crop are enlarged first so a crop always fits.

    ``scale=(lo, hi)`` (training only) first resizes the photo so that its short side is ``size``
    times a factor drawn from [lo, hi]: a crop then shows most of the scene, as a whole photo shrunk
    to the network's working side does when a photo is corrected, rather than a small detail of it.
    """

    def __init__(
        self,
        size: Optional[int],
        flip_p: float = 0.5,
        jitter_p: float = 0.2,
        train: bool = True,
        jitter: Optional[v2.ColorJitter] = None,
        scale: Optional[tuple[float, float]] = None,
    ) -> None:
        if size is not None and size < MIN_SIDE:
            raise ValueError(f"crop size {size} is below the minimum of {MIN_SIDE} pixels")
        if scale is not None and not 1.0 <= scale[0] <= scale[1]:
            raise ValueError(f"scale must be (lo, hi) with 1 <= lo <= hi, got {scale}")
        self.scale = scale
        self.size = size
        self.flip_p = flip_p
        self.jitter_p = jitter_p
        self.train = train
        jitter = jitter or v2.ColorJitter(brightness=0.05, contrast=0.05, saturation=0.15, hue=0.02)
        self.photometric = v2.RandomApply([jitter], p=jitter_p)

    def __repr__(self) -> str:
        return (
            f"PairedTransform(size={self.size}, flip_p={self.flip_p}, jitter_p={self.jitter_p}, "
            f"train={self.train}, scale={self.scale})"
        )

    def geometry(
        self, *images: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> list[torch.Tensor]:
        """Crop (and in training flip) all ``images`` the same way; returns them in order.

        The parameters are drawn once here and applied to every image with torchvision's v2
        functional ops (drawing them ourselves lets a ``generator`` make them repeatable).
        """
        out, flip = self.crop(*images, generator=generator)
        return [TF.horizontal_flip(im) for im in out] if flip else out

    def crop(
        self, *images: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> tuple[list[torch.Tensor], bool]:
        """What :meth:`geometry` does, except the flip: the cropped ``images`` and whether to flip
        them (drawn as :meth:`geometry` draws it), for a caller that flips later, on the device."""
        if not images:
            return [], False
        h, w = images[0].shape[-2:]
        for other in images[1:]:
            if other.shape[-2:] != (h, w):
                raise ValueError(
                    f"the images of a pair must have the same size, got {tuple(images[0].shape[-2:])} "
                    f"and {tuple(other.shape[-2:])}"
                )
        check_side(images[0])
        new_h, new_w, top, left, flip = self.crop_box(h, w, generator)
        if self.size is None:
            return list(images), False
        return [cut(im, new_h, new_w, top, left, self.size) for im in images], flip

    def crop_box(self, h: int, w: int, generator: Optional[torch.Generator] = None
                 ) -> tuple[int, int, int, int, bool]:
        """Where :meth:`crop` cuts an ``h`` x ``w`` photo: (height and width to resize it to first,
        top, left, flip), drawn as :meth:`crop` draws them; for a caller that has only the size (a
        photo decoded later, on the device). Without a crop size: the photo as it is."""
        if self.size is None:
            return h, w, 0, 0, False
        short, rescale = self.size, self.train and self.scale is not None
        if rescale:
            lo, hi = self.scale  # type: ignore[misc]
            short = round(self.size * (lo + (hi - lo) * float(torch.rand((), generator=generator))))
        if min(h, w) < short or (rescale and min(h, w) != short):
            # enlarge so a crop fits, or (with ``scale``) bring the short side to the drawn size
            scale = short / min(h, w)
            h, w = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        if self.train:
            top = int(torch.randint(0, h - self.size + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - self.size + 1, (1,), generator=generator))
            flip = bool(torch.rand((), generator=generator) < self.flip_p)
        else:
            top, left, flip = (h - self.size) // 2, (w - self.size) // 2, False
        return h, w, top, left, flip

    def jitter_ranges(self) -> Optional[tuple[tuple[float, float], ...]]:
        """(brightness, contrast, saturation, hue) ranges of the input-only colour jitter, or None
        when this transform never jitters."""
        if not (self.train and self.jitter_p > 0):
            return None
        jitter = self.photometric.transforms[0]
        ranges = [getattr(jitter, name) for name in ("brightness", "contrast", "saturation", "hue")]
        neutral = [(1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (0.0, 0.0)]
        return tuple(tuple(float(v) for v in r) if r is not None else n  # type: ignore[misc]
                     for r, n in zip(ranges, neutral))

    def finish(self, input01: torch.Tensor, target01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Colour-jitter the input (training only) and normalise both to [-1, 1]."""
        if self.train and self.jitter_p > 0:
            input01 = self.photometric(input01).clamp(0.0, 1.0)
        return normalize(input01), normalize(target01)

    def __call__(
        self, input01: ImageLike, target01: ImageLike, generator: Optional[torch.Generator] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the geometry to both images, then :meth:`finish`; returns (input, target) in [-1, 1]."""
        x, y = self.geometry(to_tensor01(input01), to_tensor01(target01), generator=generator)
        return self.finish(x, y)
