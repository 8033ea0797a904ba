"""The recipe of the shipped corrector, at any size: a global stage fitted first, then a residual U-Net
trained behind it against the PatchGAN.

- :func:`recipe_config` is the shipped recipe's :class:`TrainConfig` at a budget's sizes: a residual
  U-Net (it starts at the identity), pairs from the camera family (which varies colour itself, so the
  inputs are never colour-jittered), crops of photos shrunk to a short side of ``image_size x [1,
  1.5]`` (whole scenes, as the corrector sees them at its working side).
- :func:`global_stage_fit` sizes the global stage's fit (:class:`EVFitConfig`) to a budget.
- :func:`build_two_stage` builds the :class:`~expolib.training.pix2pix.Pix2Pix` whose generator is a
  :class:`~expolib.networks.two_stage.TwoStageGenerator` holding a fitted, frozen estimator; the
  :class:`~expolib.training.trainer.Trainer` then trains its U-Net like any generator.

``tools/train_shipped_model.py`` trains the shipped weights through these functions, and chapter 6 trains
the same recipe at the budget's size::

    estimator = fit_ev_estimator(global_stage_fit(budget))
    config = recipe_config(budget)
    trainer = Trainer(config, build_two_stage(config, estimator), *training_sets(config))
    trainer.fit()
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

from expolib.config import Budget, Runtime, get_budget, seed_everything
from expolib.files import atomic_write
from expolib.networks.ev_estimator import LEAVE_ALONE_EV, EVEstimator
from expolib.networks.factory import build_discriminator
from expolib.networks.modelfile import working_side_for
from expolib.networks.two_stage import TwoStageConfig, TwoStageGenerator
from expolib.networks.unet import UNetConfig
from expolib.training.config import TrainConfig
from expolib.training.distributed import init_distributed
from expolib.training.ev_fit import EVFitConfig
from expolib.training.pix2pix import Pix2Pix

#: Crops come from photos shrunk to a short side of ``image_size`` times a factor drawn from [1, this].
RECIPE_CROP_SCALE = 1.5


def recipe_config(budget: Optional[Budget] = None, **overrides: Any) -> TrainConfig:
    """The shipped recipe's settings with ``budget``'s sizes and counts (default:
    :func:`expolib.config.get_budget`): a residual U-Net of the budget's width and depth, the camera
    family (``camera="random"``, no input jitter) and ``crop_scale`` :data:`RECIPE_CROP_SCALE`; then
    ``overrides`` (any :class:`TrainConfig` field)."""
    budget = budget if budget is not None else get_budget()
    values: dict[str, Any] = {
        "camera": "random", "crop_scale": RECIPE_CROP_SCALE,
        "generator": UNetConfig(ngf=budget.ngf, depth=budget.depth, residual=True),
    }
    values.update(overrides)
    return TrainConfig.from_budget(budget, **values)


def global_stage_fit(budget: Optional[Budget] = None, seed: int = 0) -> EVFitConfig:
    """How the global stage is fitted within ``budget``: its ``ev_examples`` renders and ``ev_epochs``
    epochs (the full budget: the shipped fit), the other settings the shipped fit's."""
    budget = budget if budget is not None else get_budget()
    return EVFitConfig(examples=budget.ev_examples, epochs=budget.ev_epochs, seed=seed)


def build_two_stage(config: TrainConfig, estimator: EVEstimator, runtime: Optional[Runtime] = None,
                    threshold: float = LEAVE_ALONE_EV) -> Pix2Pix:
    """A :class:`Pix2Pix` whose generator is a two-stage corrector: a copy of the fitted ``estimator``
    (frozen; photos estimated within ``threshold`` stops are left alone), then a U-Net of
    ``config.generator``; the discriminator of ``config.discriminator``.

    Like :func:`~expolib.training.pix2pix.prepare_pix2pix`: decides the runtime (unless given), joins
    ``torchrun``'s processes, seeds (``config.seed + rank``) and builds. The generator corrects photos
    at the side the run's crops were taken at (:func:`~expolib.networks.modelfile.working_side_for`).
    """
    runtime = runtime if runtime is not None else config.runtime()
    process = init_distributed(runtime)
    seed_everything(config.seed + process.rank)
    unet = dataclasses.replace(config.generator, gemm_upsampling=runtime.gemm_convolutions)
    generator = TwoStageGenerator(TwoStageConfig(unet=unet, estimator=estimator.config, threshold=threshold))
    generator.estimator.load_state_dict(estimator.state_dict())
    generator.working_side = working_side_for(config.image_size, config.crop_scale)
    return Pix2Pix(generator, build_discriminator(config.discriminator), config, runtime, process)


@dataclass(frozen=True)
class RecipeRun:
    """How much a run of the recipe learned from: the U-Net's optimiser ``steps`` of ``batch_size``
    pairs of ``image_size`` crops taken from ``data`` (in words), and the renders its global stage was
    fitted on (``fit_examples``). Written next to an exported generator (:meth:`save`), so that an
    evaluation can say why two correctors differ."""

    steps: int
    batch_size: int
    image_size: int
    fit_examples: int
    data: str = "renders of the embedded training photos"

    @property
    def pairs(self) -> int:
        """Training pairs the U-Net saw: steps x batch size."""
        return self.steps * self.batch_size

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the record as JSON to ``path`` (whole or not at all)."""
        path = Path(path)
        with atomic_write(path, "run record") as tmp:
            Path(tmp).write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> RecipeRun:
        """Read a record written by :meth:`save`."""
        values = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})


#: The run of the weights shipped in ``expolib/weights``, as its model card gives it: 25 epochs of 40 steps
#: of 8 pairs of 128 px crops of the training photos of the time, the global stage fitted on 4,096 renders.
SHIPPED_RUN = RecipeRun(steps=1000, batch_size=8, image_size=128, fit_examples=4096,
                        data="renders of 13 embedded training photos")


__all__ = ["RECIPE_CROP_SCALE", "SHIPPED_RUN", "RecipeRun", "build_two_stage", "global_stage_fit",
           "recipe_config"]
