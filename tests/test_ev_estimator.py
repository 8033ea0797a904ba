"""The global stage: the exposure estimator, its fit, and undoing an estimated exposure error."""

from __future__ import annotations

import json

import pytest
import torch

from expolib.data.photos import embedded_codes, embedded_photos
from expolib.imaging.camera import PLAIN_CAMERA
from expolib.imaging.transforms import normalize
from expolib.networks.ev_estimator import (
    EVEstimator,
    EVEstimatorConfig,
    GlobalExposureCorrector,
    exposure_features,
    undo_exposure,
)
from expolib.training.ev_fit import EVFitConfig, fit_ev_estimator

SMALL = EVEstimatorConfig(members=2)
QUICK = EVFitConfig(examples=384, crop_side=(48, 96), photo_side=192, epochs=40, seed=3)
TOLERANCE_EV = 0.6  # a fit this small on a photo it never saw: the sign and roughly the size


def val_photo(side: int = 128) -> torch.Tensor:
    """The first validation photo, well exposed, as float (3, H, W) in [0, 1]."""
    _scene, name = embedded_photos("val")[0]
    return embedded_codes(name, side).float() / 255.0


@pytest.fixture(scope="module")
def fitted() -> EVEstimator:
    return fit_ev_estimator(QUICK, splits=("train",), estimator_config=SMALL, log=None)


def test_a_photo_under_the_threshold_comes_back_bit_for_bit() -> None:
    photo = val_photo()[None]
    out = undo_exposure(photo, torch.tensor([0.3]), threshold=0.5)
    assert torch.equal(out, photo) and out is not photo
    changed = undo_exposure(photo, torch.tensor([-1.0]), threshold=0.5)
    assert changed.mean() > photo.mean() + 0.05  # an under-exposure is undone by brightening
    assert undo_exposure(photo, 1.0, threshold=0.5).mean() < photo.mean() - 0.05


def test_the_corrector_leaves_a_well_exposed_photo_alone_and_fixes_a_dark_one(fitted: EVEstimator) -> None:
    photo = val_photo()
    estimate = float(fitted.estimate(photo[None])[0])
    corrector = GlobalExposureCorrector(fitted, threshold=abs(estimate) + 0.1)
    x = normalize(torch.stack([photo, PLAIN_CAMERA.render(photo, -1.5)]))
    out = corrector(x)
    assert torch.equal(out[0], x[0])  # bit for bit, in the [-1, 1] the generator works in
    assert out[1].mean() > x[1].mean() + 0.2


def test_a_small_fit_estimates_an_under_exposure_of_an_unseen_photo(fitted: EVEstimator) -> None:
    dark = PLAIN_CAMERA.render(val_photo(), -1.5)
    estimate = float(fitted.estimate(dark[None])[0])
    assert abs(estimate + 1.5) < TOLERANCE_EV, estimate
    assert float(fitted.estimate(val_photo()[None])[0]) > estimate + 0.75  # brighter photo, higher estimate


def test_the_fit_is_deterministic_for_a_seed() -> None:
    tiny = EVFitConfig(examples=64, crop_side=(32, 48), photo_side=96, epochs=3, seed=5)
    config = EVEstimatorConfig(members=1, hidden=(8,))
    photos = [name for _, name in embedded_photos("train")[:3]]
    a, b = (fit_ev_estimator(tiny, photos=photos, estimator_config=config, log=None) for _ in range(2))
    c = fit_ev_estimator(EVFitConfig(**{**tiny.__dict__, "seed": 6}), photos=photos, estimator_config=config,
                         log=None)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    photo = val_photo(96)[None]
    assert torch.equal(a(photo), a(photo))


def test_bad_inputs_give_clear_errors() -> None:
    estimator = EVEstimator(SMALL)
    photo = val_photo(64)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        estimator(photo)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        estimator(torch.rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match="float"):
        estimator((photo[None] * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="denormalize"):
        estimator(normalize(photo[None]))
    with pytest.raises(ValueError, match="pixels"):
        estimator(torch.rand(1, 3, 8, 64))
    with pytest.raises(ValueError, match="one finite EV per photo"):
        undo_exposure(torch.stack([photo, photo]), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="features"):
        estimator.predict_features(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="members"):
        EVEstimatorConfig(members=0)


def test_save_and_load_through_state_dict_and_config(fitted: EVEstimator) -> None:
    saved = json.dumps(fitted.config.to_dict())
    restored = EVEstimator(EVEstimatorConfig.from_dict(json.loads(saved)))
    restored.load_state_dict(fitted.state_dict())
    assert restored.config == fitted.config
    photos = torch.stack([val_photo(96), PLAIN_CAMERA.render(val_photo(96), 1.0)])
    assert torch.equal(restored(photos), fitted(photos))
    assert exposure_features(photos, SMALL).shape == (2, SMALL.n_features)
    assert sum(p.numel() for p in EVEstimator().parameters()) < 100_000
