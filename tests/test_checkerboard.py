"""The checkerboard measure: period-2 energy of an output relative to the ground truth's."""

import numpy as np
import pytest
import torch
from skimage import data as skdata

from expolib.evaluation.metrics import checkerboard, period2_energy
from expolib.networks.unet import UNetConfig, UNetGenerator


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skdata.chelsea()[:128, :160] / 255.0


def test_identical_images_score_one_and_a_checkerboard_scores_high(photo: np.ndarray) -> None:
    assert checkerboard(photo, photo) == pytest.approx(1.0)
    pattern = (np.indices(photo.shape[:2]).sum(axis=0) % 2)[:, :, None] - 0.5
    stained = np.clip(photo + 0.02 * pattern, 0.0, 1.0)
    assert checkerboard(stained, photo) > 10.0
    blurred = (photo[:-1:2, :-1:2] + photo[1::2, 1::2]) / 2
    blurred = np.repeat(np.repeat(blurred, 2, axis=0), 2, axis=1)
    assert checkerboard(blurred, photo) < 0.5  # 2x2 blocks hold no period-2 energy along the diagonal


def test_period2_energy_is_a_fraction(photo: np.ndarray) -> None:
    assert 0.0 <= period2_energy(photo) < 1e-2
    assert period2_energy(np.full((8, 8, 3), 0.5)) == 0.0
    stripes = np.zeros((8, 8, 3))
    stripes[:, ::2] = 1.0
    assert period2_energy(stripes) == pytest.approx(1.0)


def test_untrained_transposed_convolutions_leave_more_pattern_than_upsampling(photo: np.ndarray) -> None:
    torch.manual_seed(0)
    x = torch.from_numpy(photo).permute(2, 0, 1).float().unsqueeze(0) * 2 - 1
    scores = {}
    for upsample in ("transpose", "bilinear"):
        net = UNetGenerator(UNetConfig(ngf=8, depth=5, upsample=upsample)).eval()
        with torch.no_grad():
            out = ((net(x)[0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
        scores[upsample] = period2_energy(out)
    assert scores["transpose"] > 3 * scores["bilinear"]
