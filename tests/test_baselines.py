"""Each baseline keeps shape and range and does what it claims."""

import numpy as np
import pytest
import torch
from skimage import data

from expolib.evaluation.baselines import (
    BASELINES,
    BOUNDS,
    CLAHE,
    AutoLevels,
    CurveFittedToTruth,
    GlobalGamma,
    Identity,
    ReportAveragingKernel,
    make_baseline,
)
from expolib.evaluation.metrics import psnr
from expolib.evaluation.protocol import compare, evaluate
from expolib.imaging.exposure import linear_to_srgb, render_exposure, srgb_to_linear
from expolib.imaging.transforms import LUMA_WEIGHTS, denormalize, luminance, normalize


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


def _as_batch(photo: np.ndarray) -> torch.Tensor:
    """(H, W, 3) in [0, 1] -> a normalised batch of one."""
    return normalize(torch.from_numpy(photo.astype(np.float32)).permute(2, 0, 1)).unsqueeze(0)


def _as_photo(x: torch.Tensor) -> np.ndarray:
    return denormalize(x[0]).permute(1, 2, 0).double().numpy()


def test_auto_levels_makes_the_995th_luminance_percentile_white() -> None:
    # grey pixels whose linear light runs evenly from 0 to 0.5: the 99.5th percentile is 0.4975
    light = np.linspace(0.0, 0.5, 1000).reshape(20, 50)
    photo = np.repeat(linear_to_srgb(light)[..., None], 3, axis=-1)
    assert AutoLevels().white_point(photo) == pytest.approx(0.4975, abs=1e-6)
    out = srgb_to_linear(_as_photo(AutoLevels()(_as_batch(photo))))
    np.testing.assert_allclose(out[..., 1], np.minimum(light / 0.4975, 1.0), atol=2e-4)
    assert (out[..., 1] >= 1.0 - 1e-6).sum() == 5  # the brightest 0.5% of the pixels become white


def test_auto_levels_measures_luminance_with_the_luma_weights_in_linear_light() -> None:
    rng = np.random.default_rng(0)
    photo = rng.uniform(0.0, 0.6, (16, 16, 3))
    linear = srgb_to_linear(photo)
    expected = np.percentile(linear @ np.asarray(LUMA_WEIGHTS), 99.5)
    assert AutoLevels().white_point(photo) == pytest.approx(expected)
    out = srgb_to_linear(_as_photo(AutoLevels()(_as_batch(photo))))
    np.testing.assert_allclose(out, np.clip(linear / expected, 0.0, 1.0), atol=2e-4)  # one gain for all
    black = np.zeros((4, 4, 3))
    assert np.array_equal(AutoLevels().correct_photo(black), black)


def test_auto_levels_brightens_an_under_exposed_photo() -> None:
    x = _batch(-1.5)
    assert _mean_luma(make_baseline("autolevels")(x)) > _mean_luma(x) + 0.1
    assert make_baseline("autolevels").name == "auto levels"


def test_the_bound_is_not_a_baseline_and_sees_the_target() -> None:
    assert "curve" in BOUNDS and all(not isinstance(f(), CurveFittedToTruth) for f in BASELINES.values())
    assert "bound" in CurveFittedToTruth().name


def test_the_bound_is_exact_where_the_target_is_a_monotone_map_of_each_channel() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (24, 32, 3))
    codes[0, :3] = [[0, 0, 0], [255, 255, 255], [128, 7, 250]]
    photo = codes / 255.0
    grid = np.arange(256) / 255.0
    curves = [np.round(255 * grid**0.5) / 255, np.round(255 * (1 - (1 - grid) ** 2)) / 255,
              np.minimum(1.0, np.round(255 * 1.6 * grid) / 255)]  # one non-decreasing curve per channel
    truth = np.stack([curves[c][codes[..., c]] for c in range(3)], axis=-1)
    fitted = CurveFittedToTruth()(_as_batch(photo)[0], _as_batch(truth)[0])
    np.testing.assert_allclose(denormalize(fitted).permute(1, 2, 0).numpy(), truth, atol=1e-6)
    # a target that no curve of the input reaches (the colours swapped) is not reached
    swapped = CurveFittedToTruth().fit_photo(photo, truth[..., ::-1])
    assert np.abs(swapped - truth[..., ::-1]).mean() > 0.05


@pytest.mark.parametrize("ev", [-1.5, 1.5])
def test_the_bound_beats_doing_nothing_and_every_baseline(ev: float) -> None:
    truth = _batch(0.0)[0]
    item = {"input": _batch(ev)[0], "target": truth, "ev": ev, "scene": "chelsea"}
    bound = evaluate(CurveFittedToTruth(), [item], metrics=("psnr",), progress=False)
    assert bound.sees_target
    for name in BASELINES:
        baseline = evaluate(make_baseline(name), [item], metrics=("psnr",), progress=False)
        assert not baseline.sees_target
        assert bound.mean("psnr") > baseline.mean("psnr") + 5.0, name
    assert psnr(denormalize(CurveFittedToTruth()(item["input"], truth)), denormalize(truth)) > 35.0
    rows = compare({"bound": bound, "identity": evaluate(Identity(), [item], progress=False)}).rows
    assert [row[0] for row in rows] == ["identity", "bound"]  # a bound is listed after the methods
