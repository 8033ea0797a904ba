"""The one image loader: every odd file becomes 8-bit RGB, every bad file a clear error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from expolib.imaging.imageio import ImageLoadError, load_image, save_image, to_uint8_image


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _check_rgb8(image: np.ndarray, shape: tuple[int, int]) -> None:
    assert image.dtype == np.uint8 and image.shape == (*shape, 3)


def test_rgb_png_loads_exactly(tmp_path: Path) -> None:
    photo = _photo()
    Image.fromarray(photo).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), photo)
    np.testing.assert_array_equal(load_image(str(tmp_path / "a.png")), photo)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.fromarray(_photo(20, 40))  # 40 wide, 20 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert Image.open(tmp_path / "rotated.jpg").size == (40, 20)
    loaded = load_image(tmp_path / "rotated.jpg")
    _check_rgb8(loaded, (40, 20))  # upright: now 20 wide, 40 high


def test_greyscale_palette_and_alpha(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    out = load_image(tmp_path / "grey.png")
    _check_rgb8(out, grey.shape)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)

    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    pal.save(tmp_path / "palette.png")
    out = load_image(tmp_path / "palette.png")
    _check_rgb8(out, (2, 4))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 1]) == (0, 255, 0)

    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent: white shows through
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black: grey
    rgba[1] = (10, 20, 30, 255)
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    out = load_image(tmp_path / "alpha.png")
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (0, 0, 255)
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 1)
    assert tuple(out[1, 0]) == (10, 20, 30)

    Image.new("LA", (3, 3), (0, 0)).save(tmp_path / "la.png")
    assert np.all(load_image(tmp_path / "la.png") == 255)

    transparent_palette = Image.new("P", (2, 1))
    transparent_palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    transparent_palette.putdata([0, 1])
    transparent_palette.save(tmp_path / "ptrans.png", transparency=0)
    out = load_image(tmp_path / "ptrans.png")
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (200, 10, 10)


def test_cmyk(tmp_path: Path) -> None:
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(tmp_path / "red.tif")
    out = load_image(tmp_path / "red.tif")
    _check_rgb8(out, (4, 6))
    assert tuple(out[0, 0]) == (255, 0, 0)
    Image.new("CMYK", (6, 4), (0, 0, 0, 0)).save(tmp_path / "white.jpg")
    assert np.all(load_image(tmp_path / "white.jpg") >= 250)


def test_16_bit_and_float_images_scale_to_8_bit(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 128, 65535, 257 * 64]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = load_image(tmp_path / "deep.png")
    _check_rgb8(out, (1, 4))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 64])

    Image.fromarray(np.full((3, 5), 40000, np.int32)).save(tmp_path / "int32.tif")
    assert tuple(load_image(tmp_path / "int32.tif")[0, 0]) == (156, 156, 156)  # 40000 / 65535 * 255

    Image.fromarray(np.full((3, 5), 0.5, np.float32)).save(tmp_path / "float.tif")
    assert tuple(load_image(tmp_path / "float.tif")[0, 0]) == (128, 128, 128)


def test_missing_empty_and_non_image_files(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"nothere\.jpg: no such file"):
        load_image(tmp_path / "nothere.jpg")
    with pytest.raises(ImageLoadError, match="not a file"):
        load_image(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.jpg: empty file"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "notes.jpg").write_text("these are my holiday notes, not a photo\n")
    with pytest.raises(ImageLoadError, match=r"notes\.jpg: not an image"):
        load_image(tmp_path / "notes.jpg")


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_photo()).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    for i in range(60, len(data) - 20):  # scramble the compressed pixel data, keep the header
        data[i] ^= 0x5A
    (tmp_path / "corrupt.png").write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match=r"corrupt\.png: corrupt"):
        load_image(tmp_path / "corrupt.png")

    buffer = io.BytesIO()
    Image.fromarray(_photo(120, 160)).save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    (tmp_path / "half.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    assert Image.open(tmp_path / "half.jpg").size == (160, 120)  # the header alone looks fine
    with pytest.raises(ImageLoadError, match=r"half\.jpg: truncated"):
        load_image(tmp_path / "half.jpg")


def test_truncated_file_fails_even_if_pillow_was_told_to_accept_them(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_photo(120, 160)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:-200])
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(ImageLoadError, match="truncated"):
            load_image(tmp_path / "cut.jpg")
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is left as it was
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_oversized_image_refused_before_decoding(tmp_path: Path) -> None:
    Image.fromarray(_photo(100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match=r"big\.png: image is 100x100 = 10,000 pixels.*limit of 5,000"):
        load_image(tmp_path / "big.png", max_pixels=5000)
    with pytest.raises(ImageLoadError, match="--max-pixels"):  # the way out for a command-line user
        load_image(tmp_path / "big.png", max_pixels=5000)
    assert load_image(tmp_path / "big.png", max_pixels=10_000).shape == (100, 100, 3)
    assert load_image(tmp_path / "big.png", max_pixels=None).shape == (100, 100, 3)


def test_tiny_image_loads_but_is_refused_by_the_crop(tmp_path: Path) -> None:
    from expolib.imaging.transforms import PairedTransform, to_tensor01

    Image.fromarray(_photo(8, 8)).save(tmp_path / "tiny.png")
    tiny = load_image(tmp_path / "tiny.png")
    assert tiny.shape == (8, 8, 3)
    with pytest.raises(ValueError, match="8x8 pixels.*at least 16"):
        PairedTransform(32)(to_tensor01(tiny), to_tensor01(tiny))


def test_save_image_round_trips(tmp_path: Path) -> None:
    photo = _photo()
    save_image(photo, tmp_path / "out" / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "out" / "a.png"), photo)
    as_tensor = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    save_image(as_tensor, tmp_path / "b.png")
    np.testing.assert_array_equal(load_image(tmp_path / "b.png"), photo)
    save_image(as_tensor[None] * 2 - 1, tmp_path / "c.png", normalized=True)
    assert np.abs(load_image(tmp_path / "c.png").astype(int) - photo).max() <= 1
    cols, rows = np.meshgrid(np.arange(64) * 4, np.arange(48) * 5)
    smooth = np.stack([cols, rows, np.full((48, 64), 90)], axis=-1)
    smooth = smooth.astype(np.uint8)
    save_image(smooth, tmp_path / "d.jpg")  # JPEG: lossy, but close at quality 95
    assert np.abs(load_image(tmp_path / "d.jpg").astype(int) - smooth).mean() < 2
    with pytest.raises(ValueError, match="normalized=True"):
        save_image(as_tensor * 2 - 1, tmp_path / "e.png")


def test_a_larger_max_pixels_lifts_pillows_own_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(_photo(100, 100)).save(tmp_path / "big.png")
    # Pillow refuses images over twice its limit by itself, whatever max_pixels says ...
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match="decompression bomb.*--max-pixels"):
        load_image(tmp_path / "big.png", max_pixels=None)
    # ... unless the caller asks for a larger limit; Pillow's setting is restored afterwards.
    assert load_image(tmp_path / "big.png", max_pixels=20_000).shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_to_uint8_image_takes_the_range_it_is_told() -> None:
    bright = torch.full((3, 4, 5), 0.2)  # 0.6 in [0, 1] when normalised; no negative value to tell
    assert (to_uint8_image(bright, normalized=True) == 153).all()
    assert (to_uint8_image(bright) == 51).all()  # the same numbers read as [0, 1]
    assert (to_uint8_image(np.full((4, 5, 3), 0.2), normalized=True) == 153).all()
    assert to_uint8_image(torch.full((1, 4, 5), -1.0), normalized=True).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="normalized=True"):
        to_uint8_image(torch.full((3, 4, 5), -0.5))
    with pytest.raises(ValueError, match="already uint8"):
        to_uint8_image(_photo(), normalized=True)
    with pytest.raises(ValueError, match="dtype"):
        to_uint8_image(_photo().astype(np.int32))
