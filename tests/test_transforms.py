"""Paired augmentation: geometry shared by input and target, jitter on the input only, [-1, 1] range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expolib.imaging.transforms import (
    LUMA_WEIGHTS,
    MIN_SIDE,
    PairedTransform,
    denormalize,
    long_side_size,
    luminance,
    normalize,
    resize_long_side,
    to_tensor01,
)


def _scene(h: int = 40, w: int = 60, seed: int = 0) -> torch.Tensor:
    """A random picture whose left half is dark and right half bright, so a flip is easy to see."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, h, w, generator=g) * 0.5
    image[:, :, w // 2 :] += 0.5
    return image


def _partner(x: torch.Tensor) -> torch.Tensor:
    """A target made pixel by pixel from the input: any geometric mismatch breaks the relation."""
    return 1.0 - x**2


def test_normalize_and_denormalize() -> None:
    x = torch.linspace(0, 1, 11)
    assert normalize(x).min() == -1 and normalize(x).max() == 1
    torch.testing.assert_close(denormalize(normalize(x)), x)
    torch.testing.assert_close(denormalize(torch.tensor([-1.5, 0.0, 1.5])), torch.tensor([0.0, 0.5, 1.0]))


def test_training_geometry_moves_input_and_target_together() -> None:
    transform = PairedTransform(24, flip_p=0.5, jitter_p=0.0, train=True)
    flips = 0
    for seed in range(60):
        x = _scene(seed=seed)
        xin, yout = transform(x, _partner(x), generator=torch.Generator().manual_seed(seed))
        assert xin.shape == yout.shape == (3, 24, 24)
        torch.testing.assert_close(normalize(_partner(denormalize(xin))), yout, atol=1e-5, rtol=0)
        # where did the crop come from, and was it flipped? find it in the (possibly flipped) source
        found = []
        for flipped, source in ((False, x), (True, x.flip(-1))):
            windows = source.unfold(1, 24, 1).unfold(2, 24, 1)  # (3, top, left, 24, 24)
            error = (windows - denormalize(xin)[:, None, None]).abs().amax(dim=(0, 3, 4))
            found += [flipped] * int((error < 1e-6).sum())
        assert len(found) == 1
        flips += found[0]
    assert 15 <= flips <= 45  # p = 0.5 over 60 draws (fixed seeds, so this is deterministic)


def test_same_generator_gives_same_crop_and_different_ones_differ() -> None:
    transform = PairedTransform(16, jitter_p=0.0)
    x = _scene()
    a = transform(x, x, generator=torch.Generator().manual_seed(1))
    b = transform(x, x, generator=torch.Generator().manual_seed(1))
    c = transform(x, x, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0], c[0])


def test_colour_jitter_changes_only_the_input() -> None:
    x = _scene()
    torch.manual_seed(0)
    transform = PairedTransform(None, flip_p=0.0, jitter_p=1.0, train=True)
    changed = 0
    for _ in range(10):
        xin, yout = transform(x, x.clone())
        torch.testing.assert_close(yout, normalize(x))  # the target is never jittered
        changed += not torch.allclose(xin, normalize(x), atol=1e-3)
    assert changed >= 8
    never = PairedTransform(None, flip_p=0.0, jitter_p=0.0, train=True)
    xin, _ = never(x, x)
    torch.testing.assert_close(xin, normalize(x))


def test_evaluation_mode_centre_crop_no_flip_no_jitter() -> None:
    x = _scene(40, 60)
    transform = PairedTransform(20, flip_p=1.0, jitter_p=1.0, train=False)
    xin, yout = transform(x, _partner(x))
    torch.testing.assert_close(xin, normalize(x[:, 10:30, 20:40]))
    torch.testing.assert_close(yout, normalize(_partner(x)[:, 10:30, 20:40]))
    whole_in, _ = PairedTransform(None, train=False)(x, x)
    torch.testing.assert_close(whole_in, normalize(x))


def test_small_photos_are_enlarged_and_tiny_ones_refused() -> None:
    x = _scene(20, 30)
    xin, yout = PairedTransform(64)(x, x)
    assert xin.shape == yout.shape == (3, 64, 64)
    for shape in ((MIN_SIDE - 1, 40), (40, 8)):
        tiny = torch.rand(3, *shape)
        with pytest.raises(ValueError, match=f"at least {MIN_SIDE} pixels"):
            PairedTransform(32)(tiny, tiny)
    with pytest.raises(ValueError, match="crop size"):
        PairedTransform(8)


def test_pairs_must_have_one_size_and_arrays_are_accepted() -> None:
    with pytest.raises(ValueError, match="same size"):
        PairedTransform(16)(torch.rand(3, 32, 32), torch.rand(3, 32, 30))
    photo = (np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)
    xin, yout = PairedTransform(None, train=False)(photo, photo)
    assert xin.dtype == torch.float32 and xin.shape == (3, 32, 48)
    torch.testing.assert_close(denormalize(xin), to_tensor01(photo))


def test_to_tensor01_scales_every_unsigned_integer_type_and_refuses_signed_ones() -> None:
    sixteen = np.full((4, 5, 3), 65535, np.uint16)
    sixteen[0, 0] = 32768
    t = to_tensor01(sixteen)
    assert t.dtype == torch.float32 and t.shape == (3, 4, 5)
    assert float(t.max()) == 1.0 and float(t[0, 0, 0]) == pytest.approx(32768 / 65535)
    assert float(to_tensor01(np.full((4, 5), 255, np.uint8)).max()) == 1.0
    assert float(to_tensor01(torch.full((3, 4, 5), 65535, dtype=torch.uint16)).max()) == 1.0
    for signed in (np.zeros((4, 5, 3), np.int32), torch.zeros(3, 4, 5, dtype=torch.int64)):
        with pytest.raises(ValueError, match="unsigned integer or float"):
            to_tensor01(signed)


def test_resize_long_side_shrinks_uint8_and_float_photos_alike_and_never_enlarges() -> None:
    assert long_side_size(300, 400, 100) == (75, 100)
    assert long_side_size(30, 40, 100) == (30, 40) and long_side_size(30, 40, None) == (30, 40)
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8, generator=generator)
    small = resize_long_side(codes, 100)
    assert small.dtype == torch.uint8 and tuple(small.shape) == (3, 75, 100)
    as_float = resize_long_side(codes.float() / 255, 100)
    assert as_float.min() >= 0.0 and as_float.max() <= 1.0
    assert (as_float * 255 - small.float()).abs().mean() < 1.0  # the same picture either way
    assert resize_long_side(codes, 400) is codes


def test_luminance_weighs_green_most_and_sums_to_one() -> None:
    assert sum(LUMA_WEIGHTS) == pytest.approx(1.0)
    pixels = np.eye(3)  # pure red, green, blue
    assert luminance(pixels).tolist() == list(LUMA_WEIGHTS)
    assert luminance(np.ones((4, 5, 3))) == pytest.approx(np.ones((4, 5)))
