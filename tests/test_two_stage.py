"""The two-stage corrector: a global stage that leaves a well-exposed photo alone (or undoes its
exposure error), then a U-Net; built, saved, loaded, trained and run at full resolution like any
generator."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from expolib.evaluation.infer import correct
from expolib.imaging.exposure import render_exposure
from expolib.networks.factory import build_discriminator, build_generator
from expolib.networks.modelfile import load_generator, save_generator
from expolib.networks.patchgan import PatchConfig
from expolib.networks.two_stage import TwoStageConfig, TwoStageGenerator
from expolib.networks.unet import UNetConfig

UNET = UNetConfig(ngf=4, depth=3, residual=True)


def _two_stage(threshold: float) -> TwoStageGenerator:
    torch.manual_seed(0)
    generator = build_generator(TwoStageConfig(unet=UNET, threshold=threshold))
    assert isinstance(generator, TwoStageGenerator)
    return generator.eval()


def _photo(side: int = 80) -> np.ndarray:
    rng = np.random.default_rng(1)
    ramp = np.linspace(30, 220, side)[None, :, None] + rng.normal(0, 12, (side, side, 3))
    return np.clip(ramp, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["guided", "direct"])
def test_a_photo_under_the_threshold_comes_back_bit_for_bit(mode: str) -> None:
    photo = _photo()
    leave_everything = _two_stage(threshold=1e6)  # every estimate is under it
    out = correct(leave_everything, photo, mode=mode, working_side=32)
    assert out.dtype == np.uint8 and np.array_equal(out, photo)
    assert out is not photo  # a copy: the caller may change it without touching the input


def test_a_photo_over_the_threshold_is_undone_then_corrected() -> None:
    photo = _photo()
    generator = _two_stage(threshold=0.0)  # every photo is moved
    undone, ev, moved = generator.global_stage(photo)
    assert moved and np.array_equal(undone, render_exposure(photo, -ev))
    with torch.no_grad():  # the U-Net's last layer is not zero: it changes the undone photo
        out = correct(generator, photo, mode="direct")
    assert out.shape == photo.shape and not np.array_equal(out, undone)


def test_the_forward_pass_keeps_the_photos_it_leaves_alone() -> None:
    generator = _two_stage(threshold=0.0)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ev = generator.estimate((x + 1) / 2)
    generator.config.threshold = float(ev.abs().median())  # one photo or more each side of it
    moved = ev.abs() >= generator.config.threshold
    assert bool(moved.any()) and not bool(moved.all())
    with torch.no_grad():
        y = generator(x)
    assert torch.equal(y[~moved], x[~moved])
    assert not torch.equal(y[moved], x[moved])


def test_a_two_stage_generator_saves_and_loads(tmp_path: Path) -> None:
    generator = _two_stage(threshold=0.3)
    with torch.no_grad():
        generator.estimator.feature_mean.normal_()  # as a fitted estimator's would be
    path = save_generator(generator, tmp_path / "g.safetensors", working_side=48)
    loaded = load_generator(path)
    assert isinstance(loaded, TwoStageGenerator) and loaded.config == generator.config
    assert loaded.working_side == 48
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), generator(x))


def test_training_changes_the_unet_and_never_the_estimator() -> None:
    from expolib.config import decide_runtime
    from expolib.training.config import TrainConfig
    from expolib.training.pix2pix import Pix2Pix

    generator = _two_stage(threshold=0.0).train()
    config = TrainConfig(batch_size=2, image_size=32, generator=UNET, discriminator=PatchConfig(ndf=4),
                         amp=False, device="cpu")  # fp32: the comparison below is exact
    model = Pix2Pix(generator, build_discriminator(config.discriminator), config, decide_runtime("cpu", False))
    estimator = {k: v.clone() for k, v in generator.estimator.state_dict().items()}
    unet = {k: v.clone() for k, v in generator.unet.state_dict().items()}
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    losses = model.train_step(x, y)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in losses.values())
    assert all(torch.equal(v, generator.estimator.state_dict()[k]) for k, v in estimator.items())
    assert any(not torch.equal(v, generator.unet.state_dict()[k]) for k, v in unet.items())
    assert not generator.estimator.training  # the frozen stage stays in eval mode


def test_a_step_on_photos_all_left_alone_takes_a_zero_gradient() -> None:
    from expolib.config import decide_runtime
    from expolib.training.config import TrainConfig
    from expolib.training.pix2pix import Pix2Pix

    generator = _two_stage(threshold=1e6).train()
    config = TrainConfig(batch_size=2, image_size=32, generator=UNET, discriminator=PatchConfig(ndf=4),
                         amp=False, device="cpu")
    model = Pix2Pix(generator, build_discriminator(config.discriminator), config, decide_runtime("cpu", False))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    losses = model.train_step(x, x)  # nothing moved: the output is the input, the L1 term is zero
    assert float(losses["g_l1"]) == pytest.approx(0.0, abs=1e-7)


def test_the_config_reads_back_from_plain_values() -> None:
    config = TwoStageConfig(unet=dataclasses.replace(UNET, ngf=8), threshold=0.75)
    values = dataclasses.asdict(config)
    assert TwoStageConfig(**values) == config
    with pytest.raises(ValueError, match="threshold"):
        TwoStageConfig(threshold=-1.0)


def test_the_global_stage_alone_is_the_two_stage_without_its_unet() -> None:
    from expolib.networks.two_stage import GlobalStageAlone

    photo = _photo()
    generator = _two_stage(threshold=0.0)
    undone, _, _ = generator.global_stage(photo)
    assert np.array_equal(correct(GlobalStageAlone(generator), photo), undone)
    assert not np.array_equal(correct(generator, photo, mode="direct"), undone)  # the U-Net does change it
