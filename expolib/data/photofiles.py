"""Reading photo files for the sources: listing a folder's photos, reading a header or a file's bytes,
and decoding a photo shrunk to a long side, with an optional cache of the shrunk copies on disk."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Optional

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from expolib.imaging.imageio import ImageLoadError, PathLike, load_image
from expolib.imaging.transforms import check_side, resize_long_side

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def _photo_names(folder: Path, recursive: bool) -> list[Path]:
    """Paths in ``folder`` with an image extension (any case), hidden files and folders left out."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def list_images(folder: PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension, any case), sorted by path; ``recursive``: sub-folders too.

    Hidden files and folders (names starting with a dot, such as the ``._IMG.jpg`` files macOS leaves
    on shared drives) are skipped.
    """
    return [p for p in _photo_names(Path(folder), recursive) if p.is_file()]


def broken_links(folder: PathLike, recursive: bool = False) -> list[Path]:
    """The links among :func:`list_images`' candidates whose target is gone (so that they can be named)."""
    return [p for p in _photo_names(Path(folder), recursive) if p.is_symlink() and not p.exists()]


def is_jpeg(path: Path) -> bool:
    """Whether a file is a JPEG, by its extension."""
    return path.suffix.lower() in (".jpg", ".jpeg")


def file_bytes(path: Path) -> torch.Tensor:
    """A file's bytes as a uint8 tensor (what ``decode_jpeg`` takes); a missing file names itself."""
    try:
        return torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
    except OSError as error:
        raise ImageLoadError(f"{path}: cannot be read ({error.strerror or error})") from error


def oriented_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file as it is shown (EXIF orientation applied), from its header;
    an unreadable file is an :class:`expolib.imaging.imageio.ImageLoadError` naming it."""
    try:
        with Image.open(path) as image:
            w, h = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{path}: not a readable image ({error})") from error
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


# How the stored pixels of each EXIF orientation (tag 0x0112) turn upright: (transpose first, then
# flip these dimensions of (C, H, W)). torchvision applies the tag only when it decodes on the CPU, so
# the nvJPEG route does it here; the eight cases are the EXIF standard's.
_UPRIGHT = {1: (False, ()), 2: (False, (-1,)), 3: (False, (-2, -1)), 4: (False, (-2,)),
            5: (True, ()), 6: (True, (-1,)), 7: (True, (-2, -1)), 8: (True, (-2,))}

DEVICE_DECODER = ("cuda",)
"""Devices on which :func:`decode_jpegs` decodes where the pixels are wanted (nvJPEG)."""


def exif_orientation(data: torch.Tensor) -> int:
    """The EXIF orientation (1-8; 1 when absent) of a JPEG file's bytes, from its header."""
    try:
        with Image.open(io.BytesIO(data.numpy())) as image:
            return int(image.getexif().get(0x0112, 1))
    except (OSError, SyntaxError, ValueError):
        return 1


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Stored pixels ``(C, H, W)`` turned as EXIF ``orientation`` says they are shown."""
    transpose, dims = _UPRIGHT.get(orientation, (False, ()))
    image = image.transpose(-2, -1) if transpose else image
    return image.flip(dims) if dims else image


def decode_jpegs(files: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEG files' bytes (uint8 tensors on the CPU) as upright RGB uint8 ``(3, H, W)`` on ``device``.

    On a GPU (:data:`DEVICE_DECODER`) nvJPEG decodes the batch there and the EXIF orientation is
    applied afterwards (nvJPEG ignores it); where that fails (torchvision built without nvJPEG, a
    file nvJPEG cannot read) the CPU decodes and the pixels move. On the CPU, libjpeg through
    torchvision, which differs from Pillow's decoding by a code value here and there.
    """
    with warnings.catch_warnings():
        # torchvision 0.29 announces that TorchCodec will take over image decoding; until then
        # decode_jpeg is the decoder that batches on a GPU without another dependency
        warnings.simplefilter("ignore", DeprecationWarning)
        if device.type in DEVICE_DECODER:
            try:
                images = decode_jpeg(files, mode=ImageReadMode.RGB, device=device)
            except RuntimeError:
                pass
            else:
                return [upright(image, exif_orientation(data)) for image, data in zip(images, files)]
        images = decode_jpeg(files, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    return [image.to(device, non_blocking=True) for image in images]


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
    # (3, H, W) as a view of the decoded (H, W, 3) pixels: a training crop copies only what it keeps,
    # where making the whole photo channel-first would copy every pixel twice at every epoch
    image = torch.from_numpy(array if array.flags.writeable else array.copy()).permute(2, 0, 1)
    resized = resize_long_side(image, max_side)
    shrunk = f" (shrunk so its long side is {max_side} px)" if resized.shape != image.shape else ""
    check_side(resized, f"{path}{shrunk}")
    if cached is not None and _long_side(path) > max(resized.shape[-2:]):  # drafted or shrunk: keep it
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")  # workers may race: rename
        Image.fromarray(resized.permute(1, 2, 0).numpy()).save(temporary, format="PNG", compress_level=1)
        os.replace(temporary, cached)
    return resized


__all__ = ["DEVICE_DECODER", "IMAGE_EXTENSIONS", "broken_links", "decode_jpegs", "exif_orientation",
           "file_bytes", "is_jpeg", "list_images", "load_resized_uint8", "oriented_size", "upright"]
