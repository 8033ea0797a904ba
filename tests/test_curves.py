"""expolib.book.loss_curves: seeds, mean ± sd, trends of a loss against a quality score, and the short runs
that chapters 6 and 7 read them from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from expolib.book.experiments import mean_sd
from expolib.book.loops import training_pairs
from expolib.book.loss_curves import (
    CURVE_EPOCHS,
    Curve,
    band,
    compare_trends,
    curve_config,
    disagreeing_intervals,
    train_seeds,
)
from expolib.config import BUDGETS, get_budget
from expolib.data.rendered import EmbeddedPairs
from expolib.training.history import History


def _curve(seed: int, g_adv: list[float], psnr: list[float]) -> Curve:
    epochs = [{"epoch": k, "g_adv": a, "val_psnr": p} for k, (a, p) in enumerate(zip(g_adv, psnr))]
    return Curve(seed, History(batches=[], epochs=epochs), {"val_psnr": psnr[0] - 1.0})


def test_trends_summarise_runs_with_the_one_mean_sd() -> None:
    trends = compare_trends([_curve(0, [1.0, 2.0], [10.0, 12.0]), _curve(1, [1.0, 4.0], [10.0, 14.0])])
    assert trends.loss == mean_sd([1.0, 3.0]) and trends.quality == mean_sd([2.0, 4.0])


def test_disagreeing_intervals_counts_loss_and_quality_moving_the_wrong_way_together() -> None:
    loss = [1.0, 2.0, 3.0, 2.0, 1.0]
    psnr = [10.0, 11.0, 10.5, 10.0, 12.0]
    # up/up (disagree), up/down (agree), down/down (disagree), down/up (agree)
    assert disagreeing_intervals(loss, psnr) == 2
    # for an error (lower is better) the verdicts flip
    assert disagreeing_intervals(loss, psnr, higher_is_better=False) == 2
    # the loss falls while the error rises, twice
    assert disagreeing_intervals([3.0, 2.0, 1.0], [0.1, 0.2, 0.3], higher_is_better=False) == 2
    assert disagreeing_intervals([1.0, 1.0], [1.0, 2.0]) == 0  # a flat loss disagrees with nothing
    with pytest.raises(ValueError):
        disagreeing_intervals([1.0, 2.0], [1.0])


def test_compare_trends_reads_first_and_last_epoch_of_every_run() -> None:
    curves = [_curve(0, [0.7, 1.0, 1.5], [11.0, 12.0, 13.0]),
              _curve(1, [0.7, 0.9, 1.1], [11.0, 11.5, 12.0]),
              _curve(2, [0.8, 0.7, 0.6], [11.0, 11.5, 12.5])]
    trends = compare_trends(curves)
    assert trends.loss_changes == pytest.approx([0.8, 0.4, -0.2])
    assert trends.quality_changes == pytest.approx([2.0, 1.0, 1.5])
    assert trends.loss == pytest.approx(mean_sd([0.8, 0.4, -0.2]))
    assert trends.disagreeing_runs() == 2 and not trends.all_disagree()
    assert compare_trends(curves[:2]).all_disagree()
    mean, sd = band(curves, "val_psnr")
    assert mean == pytest.approx([11.0, 35 / 3, 12.5]) and sd[0] == 0.0 and sd[2] > 0
    with pytest.raises(ValueError):
        compare_trends([_curve(0, [0.7], [11.0])])  # one epoch is no trend
    with pytest.raises(ValueError):
        compare_trends([_curve(0, [0.7, 0.8], [math.nan, 11.0])])  # no validation set: no trend


@pytest.mark.parametrize("name", list(BUDGETS))
def test_curve_config_halves_the_crop_and_keeps_the_unet_to_a_1x1_bottleneck(name: str) -> None:
    budget = BUDGETS[name]
    config = curve_config(budget, seed=3, out_dir="somewhere")
    assert config.image_size == max(64, budget.image_size // 2)
    assert config.image_size // 2 ** config.generator.depth == 1
    expected = (CURVE_EPOCHS, "constant", 3, False)
    assert (config.epochs, config.lr_policy, config.seed, config.progress) == expected
    assert 4 <= config.steps_per_epoch <= 40
    assert config.val_batches * config.batch_size <= max(48, config.batch_size)
    assert (config.generator.ngf, config.discriminator.ndf, config.batch_size) == (budget.ngf, budget.ndf,
                                                                                    budget.batch_size)
    assert curve_config(budget, 0, "x", epochs=2).epochs == 2


def test_training_pairs_fall_back_to_the_embedded_photos(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("EXPOLIB_MSEC", raising=False)
    monkeypatch.chdir(tmp_path)  # no data/MSEC here or above
    train, val, source = training_pairs(32)
    assert isinstance(train, EmbeddedPairs) and isinstance(val, EmbeddedPairs)
    assert train.split == "train" and val.split == "val" and not val.augment
    assert "embedded" in source


def test_train_seeds_runs_one_quiet_repeatable_run_per_seed(tmp_path, capsys) -> None:
    budget = get_budget("quick")
    train = EmbeddedPairs("train", size=32, crops_per_photo=1)
    val = EmbeddedPairs("val", size=32, augment=False, crops_per_photo=1)

    def config(seed: int):
        return curve_config(budget, seed, str(tmp_path / f"seed{seed}"), image_size=32, depth=5, ngf=4, ndf=4,
                            batch_size=2, epochs=2, steps_per_epoch=2, val_batches=2, progress=True)

    curves = train_seeds(config, train, val, seeds=(0, 1, 0))
    assert [c.seed for c in curves] == [0, 1, 0]
    for curve in curves:
        assert len(curve.series("g_adv")) == 2 and all(np.isfinite(curve.series("val_psnr")))
        assert math.isfinite(curve.start["val_psnr"])
    assert curves[0].series("g_adv") == curves[2].series("g_adv")  # the seed decides the run
    assert curves[0].series("g_adv") != curves[1].series("g_adv")
    captured = capsys.readouterr()
    assert "%|" not in captured.err and "epoch 1/2" not in captured.err  # no bar, no messages


@pytest.mark.slow
def test_the_adversarial_loss_rises_while_validation_psnr_rises(tmp_path) -> None:
    """The claim chapters 6 and 7 print, at the quick budget's sizes: in every one of three seeds the
    generator's adversarial loss ends higher than it started while the validation PSNR ends higher too
    (the discriminator learns faster than the generator early on)."""
    budget = get_budget("quick")
    train, val, _ = training_pairs(curve_config(budget, 0, "x").image_size)
    curves = train_seeds(lambda seed: curve_config(budget, seed, str(tmp_path / f"s{seed}")), train, val)
    trends = compare_trends(curves, "g_adv", "val_psnr")
    assert all(change > 0 for change in trends.loss_changes), trends.loss_changes
    assert all(change > 0 for change in trends.quality_changes), trends.quality_changes
    assert trends.all_disagree()
