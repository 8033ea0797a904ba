"""Reading and writing photos: one loader used everywhere, so every source behaves the same.

:func:`load_image` returns an 8-bit RGB array (H, W, 3) whatever the file holds: it applies the EXIF
orientation, composites transparency on white, and converts greyscale, palette, CMYK and 16-bit or
float images. Files that are missing, empty, not images, corrupt, truncated or too large raise
:class:`ImageLoadError` naming the file and the reason.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from expolib.files import atomic_write
from expolib.imaging.transforms import denormalize

PathLike = Union[str, Path]

# Pillow's own decompression-bomb threshold (about 89 megapixels); a larger limit can be passed.
DEFAULT_MAX_PIXELS: int = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
# A file must hold at least one pixel to load; the training crops need more (transforms.MIN_SIDE).
MIN_LOAD_SIDE = 1


# How to load a larger photo, from Python and from the command line (`python -m expolib correct`).
_LARGER_LIMIT_HINT = "to load it, pass a larger max_pixels, or --max-pixels on the command line"


class ImageLoadError(ValueError):
    """A file could not be read as a photo; the message names the file and the reason."""


def _to_rgb8(im: Image.Image, path: Path) -> np.ndarray:
    """Convert any Pillow mode to an 8-bit RGB array."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        data = np.asarray(im, dtype=np.float64)
        if mode == "F":
            # Float images carry no nominal range: take [0, 1] if the values fit, else 8 or 16 bits.
            peak = float(np.nanmax(data)) if data.size else 0.0
            scale = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
        else:
            scale = 65535.0  # 16-bit PNG/TIFF greyscale, which Pillow opens as I;16 or I
        if np.nanmin(data) < 0 or np.nanmax(data) > scale:
            raise ImageLoadError(f"{path}: {mode} image values outside 0..{scale:g} are not supported")
        grey = np.round(np.nan_to_num(data) / scale * 255.0).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    elif mode in ("RGBa", "La"):  # premultiplied alpha
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except (ValueError, OSError) as err:
            raise ImageLoadError(f"{path}: cannot convert image mode {mode!r} to RGB ({err})") from err
    return np.asarray(im, dtype=np.uint8).copy()


def load_image(path: PathLike, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
               draft_side: Optional[int] = None) -> np.ndarray:
    """Read a photo as uint8 RGB (H, W, 3), upright according to its EXIF orientation.

    ``max_pixels`` refuses larger images before decoding them (``None``: only Pillow's own limit).
    ``draft_side``: a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (Pillow's draft mode, which
    skips most of the decoding work) as long as its long side stays at least ``draft_side``: for a
    caller that shrinks the photo to that side anyway.
    Raises :class:`ImageLoadError` for missing, empty, non-image, corrupt, truncated or oversized files.
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageLoadError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")

    # Pillow can be told globally to accept truncated files; a photo with missing data would then
    # load silently with a grey band, so this loader always insists on complete files.
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # Pillow refuses images over twice its own limit whatever we ask; a larger max_pixels lifts that
    # limit for this call, so that the caller's limit is the one that counts.
    previous_limit = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None and previous_limit is not None and max_pixels > previous_limit:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width < MIN_LOAD_SIDE or height < MIN_LOAD_SIDE:
                    raise ImageLoadError(f"{path}: image has no pixels ({width}x{height})")
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageLoadError(
                        f"{path}: image is {width}x{height} = {width * height:,} pixels, more than the "
                        f"limit of {max_pixels:,} ({_LARGER_LIMIT_HINT})"
                    )
                if draft_side is not None and im.format == "JPEG" and max(width, height) > 2 * draft_side:
                    factor = draft_side / max(width, height)  # draft keeps the size at least this
                    im.draft("RGB", (max(1, math.ceil(width * factor)), max(1, math.ceil(height * factor))))
                im.load()  # decode now: Pillow is lazy and would otherwise hide truncation
                im = ImageOps.exif_transpose(im) or im
                return _to_rgb8(im, path)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageLoadError(f"{path}: not an image file that Pillow can read") from err
    except Image.DecompressionBombError as err:
        reason = f"image too large, refused as a possible decompression bomb ({err}; {_LARGER_LIMIT_HINT})"
        raise ImageLoadError(f"{path}: {reason}") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        reason = str(err) or type(err).__name__
        kind = "truncated" if "truncated" in reason.lower() else "corrupt"
        raise ImageLoadError(f"{path}: {kind} image data ({reason})") from err
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
        Image.MAX_IMAGE_PIXELS = previous_limit


def to_uint8_image(image: Union[np.ndarray, torch.Tensor], normalized: bool = False) -> np.ndarray:
    """Turn an image into uint8 RGB (H, W, 3): the one conversion the library uses to save and show images.

    ``image``: a uint8 or float array (H, W, C) or (H, W), or a tensor (C, H, W) or (1, C, H, W), with
    1, 3 or 4 channels. Float data is read as [0, 1] when ``normalized`` is False and as [-1, 1] (the
    network's range) when it is True. The range is never guessed from the values: a bright normalised
    image and a dark [0, 1] one can hold the same numbers. Values more than 1% of the range outside it
    are refused; uint8 data is taken as it is (it cannot be normalised).
    """
    if isinstance(image, torch.Tensor):
        t = image.detach()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3:
            raise ValueError(f"expected a tensor (C, H, W) or (1, C, H, W), got shape {tuple(image.shape)}")
        if t.dtype != torch.uint8 and not t.is_floating_point():
            raise ValueError(f"expected a uint8 or float image, got dtype {t.dtype}")
        hwc: Union[np.ndarray, torch.Tensor] = t.to("cpu").permute(1, 2, 0)
        if t.dtype == torch.uint8:
            hwc = hwc.numpy()
    else:
        hwc = np.asarray(image)
        if hwc.ndim == 2:
            hwc = hwc[:, :, None]
        if hwc.dtype != np.uint8 and not np.issubdtype(hwc.dtype, np.floating):
            raise ValueError(f"expected a uint8 or float image, got dtype {hwc.dtype}")
    if hwc.ndim != 3 or hwc.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an image (H, W, C) with 1, 3 or 4 channels, got shape {tuple(hwc.shape)}")
    if isinstance(hwc, np.ndarray) and hwc.dtype == np.uint8:
        if normalized:
            raise ValueError("normalized=True needs float data in [-1, 1]; this image is already uint8")
        array = hwc
    else:
        if isinstance(hwc, np.ndarray):  # a float32 copy: any strides, byte order or read-only array
            t = torch.from_numpy(np.array(hwc, dtype=np.float32))
        else:
            t = hwc.to(torch.float32)
        low, high = (-1.0, 1.0) if normalized else (0.0, 1.0)
        lo, hi = float(t.min()), float(t.max())
        slack = 0.01 * (high - low)
        if lo < low - slack or hi > high + slack:
            other = "normalized=False for [0, 1]" if normalized else "normalized=True for [-1, 1]"
            raise ValueError(
                f"float image has values in [{lo:.3f}, {hi:.3f}], expected [{low:g}, {high:g}] "
                f"(pass {other} data)"
            )
        t01 = denormalize(t) if normalized else t.clamp(0.0, 1.0)
        array = np.ascontiguousarray(t01.mul_(255.0).round_().to(torch.uint8).numpy())
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return array


def save_image(image: Union[np.ndarray, torch.Tensor], path: PathLike, normalized: bool = False) -> Path:
    """Write an image (uint8 or [0, 1] float array HWC, or a CHW tensor) to ``path``; returns the path.

    ``normalized=True`` takes [-1, 1] data (a network's output). The format follows the extension;
    JPEG is written at quality 95. Missing parent folders are created.
    """
    path = Path(path)
    array = to_uint8_image(image, normalized=normalized)
    options = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: cannot save an image with this extension ({path.suffix or 'none'})")
    encoded = io.BytesIO()
    Image.fromarray(array).save(encoded, format=image_format, **options)
    # written by our own file object, not Pillow's: on a full disk Pillow can end with a file cut short
    # and no error; this write raises, and atomic_write keeps the previous photo whole
    with atomic_write(path, "photo") as tmp, open(tmp, "wb") as handle:
        handle.write(encoded.getbuffer())
    return path
