"""The metrics against values known by hand or published."""

import math

import numpy as np
import pytest
import torch

from expolib.evaluation import metrics


def _gradient(h: int = 32, w: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x / (w - 1), y / (h - 1), 0.5 + 0.3 * np.sin(x / 3.0)], axis=-1)


def test_psnr_of_a_uniform_error_of_one_tenth_is_20_db() -> None:
    a = _gradient() * 0.8
    assert metrics.psnr(a + 0.1, a) == pytest.approx(20.0, abs=1e-9)
    assert metrics.psnr(a, a + 0.01) == pytest.approx(40.0, abs=1e-9)


def test_identical_images_score_perfectly() -> None:
    a = _gradient()
    scores = metrics.image_metrics(a, a.copy())
    assert math.isinf(scores["psnr"]) and scores["psnr"] > 0
    assert scores["ssim"] == pytest.approx(1.0)
    assert scores["delta_e00"] == pytest.approx(0.0, abs=1e-12)


def test_ssim_drops_for_noise_and_structure_loss() -> None:
    a = _gradient()
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 0.1, a.shape), 0, 1)
    flat = np.full_like(a, a.mean())
    assert 0.3 < metrics.ssim(noisy, a) < 0.8  # the structure is still there, under the noise
    assert metrics.ssim(flat, a) < 0.3  # no structure left at all


def test_ciede2000_matches_sharma_2005_test_data() -> None:
    # Pairs 1, 2 and 7 of the CIEDE2000 test data of Sharma, Wu and Dalal (2005).
    lab1 = np.array([[50.0, 2.6772, -79.7751], [50.0, 3.1571, -77.2803], [50.0, 0.0, 0.0]])
    lab2 = np.array([[50.0, 0.0, -82.7485], [50.0, 0.0, -82.7485], [50.0, -1.0, 2.0]])
    np.testing.assert_allclose(metrics.ciede2000(lab1, lab2), [2.0425, 2.8615, 2.3669], atol=1e-4)


def test_delta_e00_of_a_grey_shift_is_positive_and_symmetric() -> None:
    a = np.full((8, 8, 3), 0.4)
    b = np.full((8, 8, 3), 0.5)
    d = metrics.delta_e00(a, b)
    assert d > 5
    assert metrics.delta_e00(b, a) == pytest.approx(d)
    assert metrics.delta_e_map(a, b).shape == (8, 8)


def test_torch_chw_and_numpy_hwc_give_the_same_numbers() -> None:
    a, b = _gradient(), np.clip(_gradient() * 0.9 + 0.05, 0, 1)
    ta = torch.from_numpy(a).permute(2, 0, 1).float()
    tb = torch.from_numpy(b).permute(2, 0, 1).float().unsqueeze(0)  # a batch of one is accepted too
    from_numpy = metrics.image_metrics(a, b)
    from_torch = metrics.image_metrics(ta, tb)
    for key in metrics.METRICS:
        assert from_torch[key] == pytest.approx(from_numpy[key], rel=1e-4)
    u8 = np.round(a * 255).astype(np.uint8)
    assert metrics.psnr(u8, u8.astype(np.float64) / 255) == math.inf


def test_bad_inputs_are_refused_with_a_clear_message() -> None:
    a = _gradient()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.psnr(a * 2 - 1, a)  # a normalised image by mistake
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(a, a[:10])
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        metrics.ssim(torch.zeros(4, 8, 8), torch.zeros(4, 8, 8))


def test_psnr_batch_agrees_with_psnr_image_by_image() -> None:
    g = torch.Generator().manual_seed(0)
    targets = torch.rand(4, 3, 16, 24, generator=g)
    preds = (targets + 0.1 * torch.randn(4, 3, 16, 24, generator=g)).clamp(0, 1)
    preds[2] = targets[2]  # one perfect image: inf, as psnr says
    preds[3] = (targets[3] * 0.5).clamp(0, 1)  # a darker one: a much lower PSNR
    batch = metrics.psnr_batch(preds, targets)
    assert batch.shape == (4,)
    expected = [metrics.psnr(p, t) for p, t in zip(preds, targets)]
    assert math.isinf(batch[2].item()) and math.isinf(expected[2])
    for i in (0, 1, 3):
        assert batch[i].item() == pytest.approx(expected[i], rel=1e-6)
    assert metrics.psnr_batch(preds[0], targets[0]).item() == pytest.approx(expected[0], rel=1e-6)


def test_psnr_batch_refuses_other_shapes_and_normalised_images() -> None:
    a = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr_batch(a, a[:1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.psnr_batch(a * 2 - 1, a)
