"""Loss curves against photo quality: the same run repeated over seeds, and whether the two agree.

- :func:`curve_config` sizes the short runs that show it, from a budget.
- :func:`train_seeds` trains one quiet :class:`~expolib.training.trainer.Trainer` run per seed and keeps each
  run's :class:`~expolib.training.history.History` (validation after every epoch) as a :class:`Curve`.
- :func:`band` gives the mean and standard deviation over seeds, epoch by epoch, for plots.
- :func:`compare_trends` says, per seed and as mean ± sd, how a loss and a quality score changed from
  the first epoch to the last, and whether they disagree (the loss got worse while the photos got
  better, or the other way round); :func:`disagreeing_intervals` counts such epochs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from torch.utils.data import Dataset

from expolib.book.experiments import mean_sd
from expolib.config import Budget
from expolib.networks.unet import UNetConfig
from expolib.training.config import NETWORK_SETTINGS, TrainConfig, with_network_settings
from expolib.training.history import History
from expolib.training.pix2pix import Pix2Pix, prepare_pix2pix
from expolib.training.trainer import Trainer


@dataclass
class Curve:
    """One run: its seed, its history, and its validation scores before the first step."""

    seed: int
    history: History
    start: dict[str, float]

    def series(self, key: str) -> list[float]:
        """One value per epoch (a loss's epoch mean, or a validation score after the epoch)."""
        return self.history.column(key, per="epoch")


CURVE_EPOCHS = 5  # validation points per run (one per epoch)


def curve_config(budget: Budget, seed: int, out_dir: str, **overrides: object) -> TrainConfig:
    """A short run for loss-against-quality curves: the budget's networks and batch size on crops of
    half the budget's side (at least 64 px, the U-Net one level shallower each halving), a constant
    learning rate, :data:`CURVE_EPOCHS` epochs of ``demo_steps // 15`` steps (4 to 40), validated
    after each epoch on at most 48 pairs. ``overrides`` change any field afterwards, or a network
    setting (``ngf``, ``depth``, ..., see :func:`expolib.training.config.with_network_settings`)."""
    size = max(64, budget.image_size // 2)
    depth = budget.depth - (budget.image_size // size).bit_length() + 1
    values: dict[str, object] = {
        "image_size": size, "generator": UNetConfig(ngf=budget.ngf, depth=depth), "epochs": CURVE_EPOCHS,
        "lr_policy": "constant",
        "steps_per_epoch": min(40, max(4, budget.demo_steps // 15)),
        "val_batches": max(1, 48 // budget.batch_size), "seed": seed, "out_dir": out_dir, "progress": False,
    }
    networks = {name: value for name, value in overrides.items() if name in NETWORK_SETTINGS}
    values.update({name: value for name, value in overrides.items() if name not in networks})
    return with_network_settings(TrainConfig.from_budget(budget, **values), **networks)


def train_seeds(make_config: Callable[[int], TrainConfig], train_set: Dataset, val_set: Optional[Dataset],
                seeds: Sequence[int] = (0, 1, 2),
                build: Callable[[TrainConfig], Pix2Pix] = prepare_pix2pix) -> list[Curve]:
    """Train one run per seed with ``make_config(seed)`` (its progress bar and messages switched off)
    and the networks ``build(config)`` makes (default: pix2pix's, :func:`prepare_pix2pix`; for the
    two-stage recipe, ``lambda config: build_two_stage(config, estimator)``), and return the curves, in
    the order of ``seeds``."""
    curves = []
    for seed in seeds:
        config = dataclasses.replace(make_config(seed), seed=seed, progress=False)
        trainer = Trainer(config, build(config), train_set, val_set, report=lambda message: None)
        start = trainer.validate()
        curves.append(Curve(seed, trainer.fit(), start))
    return curves


def band(curves: Sequence[Curve], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the runs, epoch by epoch (runs must have as many epochs)."""
    rows = np.array([curve.series(key) for curve in curves], dtype=float)  # (runs, epochs)
    sd = rows.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(rows.shape[1])
    return rows.mean(axis=0), sd


def disagreeing_intervals(loss: Sequence[float], quality: Sequence[float],
                          higher_is_better: bool = True) -> int:
    """How many steps from one value to the next the loss and the quality disagree: the loss rose
    (worse) while the quality improved, or the loss fell while the quality got worse."""
    if len(loss) != len(quality):
        raise ValueError(f"loss and quality differ in length: {len(loss)} and {len(quality)}")
    sign = 1.0 if higher_is_better else -1.0
    count = 0
    for k in range(1, len(loss)):
        loss_step, better = loss[k] - loss[k - 1], sign * (quality[k] - quality[k - 1])
        count += (loss_step > 0 and better > 0) or (loss_step < 0 and better < 0)
    return count


@dataclass
class Trends:
    """How a loss and a quality score changed from the first epoch to the last, run by run."""

    loss_key: str
    quality_key: str
    loss_changes: list[float]
    quality_changes: list[float]
    higher_is_better: bool = True

    @property
    def loss(self) -> tuple[float, float]:
        """Mean and sd over the runs of the loss's change (positive: the loss rose); as text:
        :func:`~expolib.book.experiments.format_mean_sd` of ``loss_changes`` with ``signed=True``."""
        return mean_sd(self.loss_changes)

    @property
    def quality(self) -> tuple[float, float]:
        """Mean and sd over the runs of the quality's change (positive: the score rose)."""
        return mean_sd(self.quality_changes)

    def disagreeing_runs(self) -> int:
        """Runs in which the loss got worse while the quality improved, or the other way round."""
        sign = 1.0 if self.higher_is_better else -1.0
        return sum((dl > 0 and sign * dq > 0) or (dl < 0 and sign * dq < 0)
                   for dl, dq in zip(self.loss_changes, self.quality_changes))

    def all_disagree(self) -> bool:
        """True when every run disagrees (and there is at least one)."""
        return len(self.loss_changes) > 0 and self.disagreeing_runs() == len(self.loss_changes)


def compare_trends(curves: Sequence[Curve], loss_key: str = "g_adv", quality_key: str = "val_psnr",
                   higher_is_better: bool = True) -> Trends:
    """Last epoch minus first epoch of a loss and of a quality score, for every run."""
    def change(values: list[float]) -> float:
        if len(values) < 2 or not all(math.isfinite(v) for v in (values[0], values[-1])):
            raise ValueError("a trend needs at least two epochs with finite values")
        return values[-1] - values[0]

    return Trends(loss_key, quality_key, [change(c.series(loss_key)) for c in curves],
                  [change(c.series(quality_key)) for c in curves], higher_is_better)


__all__ = ["CURVE_EPOCHS", "Curve", "Trends", "band", "compare_trends", "curve_config",
           "disagreeing_intervals", "train_seeds"]
