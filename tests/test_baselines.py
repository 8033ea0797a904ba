"""Each baseline keeps shape and range and does what it claims."""

import numpy as np
import pytest
import torch
from skimage import data

from expolib.evaluation.baselines import (
    BASELINES,
    CLAHE,
    GlobalGamma,
    Identity,
    ReportAveragingKernel,
    make_baseline,
)
from expolib.imaging.exposure import render_exposure
from expolib.imaging.transforms import denormalize, luminance, normalize


def _batch(ev: float, side: int = 64) -> torch.Tensor:
    photo = render_exposure(data.chelsea()[::4, ::4][:side, :side], ev)
    return normalize(torch.from_numpy(photo).permute(2, 0, 1).float() / 255.0).unsqueeze(0)


def _mean_luma(x: torch.Tensor) -> float:
    return float(luminance(denormalize(x[0]).permute(1, 2, 0).double().numpy()).mean())


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_baseline_keeps_shape_and_range(name: str) -> None:
    x = torch.cat([_batch(-1.5), _batch(1.0)])
    y = make_baseline(name)(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0


def test_unknown_baseline_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("magic")


def test_identity_returns_the_input() -> None:
    x = _batch(-1.0)
    assert torch.equal(Identity()(x), x)


@pytest.mark.parametrize("ev", [-1.5, 1.5])
def test_global_gamma_brings_the_mean_luma_to_mid_grey(ev: float) -> None:
    x = _batch(ev)
    assert abs(_mean_luma(x) - 0.5) > 0.1  # the rendering is really off
    assert _mean_luma(GlobalGamma()(x)) == pytest.approx(0.5, abs=0.01)


def test_global_gamma_brightens_dark_and_darkens_bright_photos() -> None:
    gamma = GlobalGamma()
    dark = denormalize(_batch(-1.5)[0]).permute(1, 2, 0).double().numpy()
    bright = denormalize(_batch(1.5)[0]).permute(1, 2, 0).double().numpy()
    assert gamma.solve_gamma(dark) < 1 < gamma.solve_gamma(bright)


def test_clahe_raises_the_contrast_of_a_dark_photo() -> None:
    x = _batch(-1.5)
    before = luminance(denormalize(x[0]).permute(1, 2, 0).double().numpy()).std()
    after = luminance(denormalize(CLAHE()(x)[0]).permute(1, 2, 0).double().numpy()).std()
    assert after > before * 1.2


def test_histogram_equalisation_spreads_brightness_over_the_range() -> None:
    y = make_baseline("histeq")(_batch(-1.5))
    value = denormalize(y[0]).max(dim=0).values  # HSV value
    assert float(value.min()) < 0.1 and float(value.max()) > 0.95
    assert float(value.mean()) == pytest.approx(0.5, abs=0.1)  # a flat histogram has its mean in the middle


def test_report_averaging_kernel_keeps_the_mean_and_removes_high_frequencies() -> None:
    x = _batch(-1.0)
    y = ReportAveragingKernel()(x)
    assert float(y.mean()) == pytest.approx(float(x.mean()), abs=2e-3)  # exposure unchanged

    def high_frequency_energy(t: torch.Tensor) -> float:
        spectrum = torch.fft.fftshift(torch.fft.fft2(t[0]).abs() ** 2, dim=(-2, -1))
        h, w = spectrum.shape[-2:]
        yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
        high = (yy.abs() > h // 4) | (xx.abs() > w // 4)
        return float(spectrum[:, high].sum())

    assert high_frequency_energy(y) < 0.25 * high_frequency_energy(x)


def test_report_averaging_kernel_is_the_3x3_mean_with_reflect_padding() -> None:
    x = torch.rand(1, 3, 5, 6) * 2 - 1
    y = ReportAveragingKernel()(x)
    padded = np.pad(x[0].numpy(), ((0, 0), (1, 1), (1, 1)), mode="reflect")
    expected = np.mean([padded[:, i:i + 5, j:j + 6] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_allclose(y[0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 7), (6, 1), (1, 1)])
def test_report_averaging_kernel_handles_an_image_one_pixel_high_or_wide(shape: tuple[int, int]) -> None:
    # Reflect padding needs two pixels on a side; a strip of one pixel is padded by repeating it.
    x = torch.rand(1, 3, *shape) * 2 - 1
    y = ReportAveragingKernel()(x)
    assert y.shape == x.shape
    padded = np.pad(x[0].numpy(), ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = shape
    expected = np.mean([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_allclose(y[0].numpy(), expected, atol=1e-6)
