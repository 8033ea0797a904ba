"""Exposure rendering: identity at EV 0, brighter with EV, clipping, types kept, repeatable noise."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from expolib.data.photos import load_embedded_photo
from expolib.imaging.camera import HELD_OUT_CAMERA, Camera
from expolib.imaging.exposure import (
    EV0_TOLERANCE_FLOAT,
    EV0_TOLERANCE_UINT8,
    EVS,
    KNEE,
    WHITE,
    CameraParams,
    inverse_reinhard_curve,
    inverse_tone_curve,
    linear_to_srgb,
    misexpose,
    reinhard_curve,
    render_exposure,
    srgb_to_linear,
    tone_curve,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.array(load_embedded_photo("coffee")[::2, ::2])  # a real photo with highlights and shadows


def test_evs_are_the_msec_levels() -> None:
    assert EVS == (-1.5, -1.0, 0.0, 1.0, 1.5)


def test_srgb_curve_known_values_and_round_trip() -> None:
    x = np.linspace(0.0, 1.0, 1001)
    y = srgb_to_linear(x)
    assert y[0] == 0.0 and y[-1] == pytest.approx(1.0)
    assert srgb_to_linear(np.array(0.5)) == pytest.approx(0.2140, abs=1e-4)  # mid sRGB is ~21% light
    assert np.all(np.diff(y) > 0)
    np.testing.assert_allclose(linear_to_srgb(y), x, atol=1e-12)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(srgb_to_linear(t), torch.from_numpy(srgb_to_linear(t.numpy())))


def test_tone_curve_identity_below_knee_smooth_and_clipping() -> None:
    below = np.linspace(0.0, KNEE, 50)
    np.testing.assert_array_equal(tone_curve(below), below)
    above = np.linspace(KNEE, WHITE, 500)
    curve = tone_curve(above)
    assert np.all(np.diff(curve) > 0) and curve[-1] == pytest.approx(1.0)
    slope_at_knee = (tone_curve(np.array(KNEE + 1e-6)) - KNEE) / 1e-6
    assert slope_at_knee == pytest.approx(1.0, abs=1e-4)  # no kink where the roll-off starts
    np.testing.assert_array_equal(tone_curve(np.array([WHITE, 3.0, 10.0])), 1.0)  # clipped
    scene = np.linspace(0.0, WHITE, 300)
    np.testing.assert_allclose(inverse_tone_curve(tone_curve(scene)), scene, atol=1e-9)


def test_reinhard_curve_round_trip_and_white() -> None:
    scene = np.linspace(0.0, 2.5, 300)
    display = reinhard_curve(scene, 2.5)
    assert np.all(np.diff(display) > 0) and display[-1] == pytest.approx(1.0)
    assert float(reinhard_curve(np.array(1.0), 2.5)) < float(tone_curve(np.array(1.0)))  # mid-tones lower
    np.testing.assert_allclose(inverse_reinhard_curve(display, 2.5), scene, atol=1e-9)
    t = torch.linspace(0, 2.5, 50, dtype=torch.float64)
    torch.testing.assert_close(reinhard_curve(t, 2.5), torch.from_numpy(reinhard_curve(t.numpy(), 2.5)))


def test_the_chain_renders_a_batch_as_its_images_one_by_one(one_thread: None) -> None:
    # mixed responses, gammas of 1 and not, colour drift, noise for some: one batch, bit for bit
    cameras = [Camera(), Camera(knee=0.3, white=2.8, gamma=1.2, wb=(1.05, 1.0, 0.9), shot_noise=0.03,
                                read_noise=0.004), HELD_OUT_CAMERA, Camera(gamma=0.85, shot_noise=0.01)]
    params = [c.params() for c in cameras]
    batch = CameraParams(**{f.name: torch.cat([getattr(p, f.name) for p in params])
                            for f in fields(CameraParams)})
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 24, 32, generator=g)
    ev = torch.tensor([-1.5, -1.0, -0.7, 0.5])
    z = torch.randn(images.shape, generator=g)
    assert batch.noisy(ev).tolist() == [False, True, False, False]
    together = misexpose(images, ev, batch, z)
    for i in range(4):
        alone = misexpose(images[i:i + 1], ev[i:i + 1], params[i], z[i:i + 1])
        assert torch.equal(together[i:i + 1], alone), cameras[i]
        assert torch.equal(batch[torch.tensor([i])].knee, params[i].knee)


def test_ev0_is_identity_within_tolerance(photo: np.ndarray) -> None:
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for image in (ramp, photo):
        out = render_exposure(image, 0.0)
        assert np.abs(out.astype(int) - image.astype(int)).max() <= EV0_TOLERANCE_UINT8
    as_float = photo.astype(np.float32) / 255
    assert np.abs(render_exposure(as_float, 0.0) - as_float).max() <= EV0_TOLERANCE_FLOAT
    tensor = torch.from_numpy(as_float).permute(2, 0, 1)
    assert (render_exposure(tensor, 0.0) - tensor).abs().max() <= EV0_TOLERANCE_FLOAT


def test_brightness_rises_monotonically_with_ev(photo: np.ndarray) -> None:
    renders = [render_exposure(photo, ev).astype(float) for ev in EVS]
    means = [r.mean() for r in renders]
    assert all(a < b for a, b in zip(means, means[1:])), means
    for darker, brighter in zip(renders, renders[1:]):  # and pixel by pixel, never darker
        assert np.all(brighter >= darker)


def test_positive_ev_clips_highlights(photo: np.ndarray) -> None:
    def saturated(image: np.ndarray) -> float:
        return float((image >= 254).any(axis=-1).mean())

    levels = [saturated(render_exposure(photo, ev)) for ev in (0.0, 1.0, 1.5)]
    assert levels[0] < levels[1] < levels[2]
    assert levels[2] > levels[0] + 0.05
    assert saturated(render_exposure(photo, -1.0)) == 0.0  # under-exposure brings every white down
    dark = render_exposure(photo, -1.5)
    assert dark.max() < 255


def test_types_shapes_and_ranges_are_kept(photo: np.ndarray) -> None:
    out = render_exposure(photo, 1.0)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    for dtype in (np.float32, np.float64):
        image = photo.astype(dtype) / 255
        out = render_exposure(image, -1.0)
        assert out.dtype == dtype and out.shape == image.shape
        assert out.min() >= 0.0 and out.max() <= 1.0
    grey = render_exposure(photo[:, :, 0], 1.0)
    assert grey.shape == photo.shape[:2] and grey.dtype == np.uint8


def test_tensors_single_and_batched_agree(photo: np.ndarray) -> None:
    single = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)
    batch = torch.stack([single, single.flip(-1)])
    out = render_exposure(batch, 1.5)
    assert out.shape == batch.shape and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    torch.testing.assert_close(out[0], render_exposure(single, 1.5))
    expected = render_exposure(photo.astype(np.float32) / 255, 1.5)
    torch.testing.assert_close(out[0].permute(1, 2, 0), torch.from_numpy(expected), atol=1e-5, rtol=0)
    half = render_exposure(single.double(), -1.0)
    assert half.dtype == torch.float64


def test_noise_is_repeatable_under_a_seed_and_only_for_under_exposure(photo: np.ndarray) -> None:
    image = photo.astype(np.float32) / 255
    a = render_exposure(image, -1.5, noise=0.05, seed=7)
    b = render_exposure(image, -1.5, noise=0.05, seed=7)
    c = render_exposure(image, -1.5, noise=0.05, seed=8)
    clean = render_exposure(image, -1.5)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.01
    assert 0.002 < np.abs(a - clean).mean() < 0.05  # mild
    over = render_exposure(image, 1.0, noise=0.05, seed=7)
    np.testing.assert_array_equal(over, render_exposure(image, 1.0))
    t = torch.from_numpy(image).permute(2, 0, 1)
    first = render_exposure(t, -1.0, noise=0.05, seed=3)
    torch.testing.assert_close(first, render_exposure(t, -1.0, noise=0.05, seed=3), rtol=0, atol=0)


def test_noise_is_the_same_for_an_array_and_its_tensor(photo: np.ndarray) -> None:
    image = photo.astype(np.float32) / 255
    as_array = render_exposure(image, -1.5, noise=0.05, seed=11)
    as_tensor = render_exposure(torch.from_numpy(image).permute(2, 0, 1), -1.5, noise=0.05, seed=11)
    torch.testing.assert_close(torch.from_numpy(as_array), as_tensor.permute(1, 2, 0), atol=1e-6, rtol=0)
    assert np.abs(as_array - render_exposure(image, -1.5)).mean() > 0.002  # and there is noise


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        render_exposure(np.full((4, 4, 3), -0.5, np.float32), 1.0)  # normalised data passed by mistake
    with pytest.raises(ValueError, match="dtype"):
        render_exposure(np.zeros((4, 4, 3), np.int32), 1.0)
    with pytest.raises(ValueError, match="tensor"):
        render_exposure(torch.zeros(4, 4), 1.0)
    with pytest.raises(ValueError, match="finite"):
        render_exposure(np.zeros((4, 4, 3), np.uint8), float("nan"))
    with pytest.raises(TypeError):
        render_exposure([[0.1, 0.2]], 1.0)  # type: ignore[arg-type]
