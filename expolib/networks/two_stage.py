"""The two-stage corrector: a global stage that estimates and undoes the exposure error, then a U-Net
for what is local.

An exposure error is mostly global, and a well-exposed photo needs nothing at all. So:

1. :class:`~expolib.networks.ev_estimator.EVEstimator` estimates how many stops the photo is off;
   when the estimate is under ``threshold`` the photo is returned *unchanged*, bit for bit;
2. otherwise the error is undone through the book's camera
   (:func:`~expolib.networks.ev_estimator.undo_exposure`), and
3. the U-Net generator (residual: it starts at the identity) corrects what the global stage leaves:
   noise lifted out of the shadows, highlights, local contrast, colour.

The estimator is fitted first, on renders (:mod:`expolib.training.ev_fit`), and stays frozen while the
U-Net trains against the PatchGAN on what the global stage hands it. As a generator
(``(B, 3, H, W)`` in [-1, 1] in and out) it trains, saves, loads and corrects like any other:
:mod:`expolib.networks.factory` knows it as ``"two_stage"``. At full resolution,
:func:`expolib.evaluation.infer.correct` runs :meth:`TwoStageGenerator.global_stage` on the whole
photo and the U-Net at its working side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from expolib.imaging.exposure import render_exposure
from expolib.imaging.transforms import denormalize, normalize, to_tensor01
from expolib.networks.ev_estimator import LEAVE_ALONE_EV, EVEstimator, EVEstimatorConfig, undo_exposure
from expolib.networks.unet import UNetConfig, UNetGenerator


@dataclass
class TwoStageConfig:
    """A global stage (``estimator``, ``threshold`` in stops) and a U-Net (``unet``, residual)."""

    unet: UNetConfig = field(default_factory=lambda: UNetConfig(residual=True))
    estimator: EVEstimatorConfig = field(default_factory=EVEstimatorConfig)
    threshold: float = LEAVE_ALONE_EV

    def __post_init__(self) -> None:
        if isinstance(self.unet, dict):  # read back from a saved file
            self.unet = UNetConfig(**self.unet)
        if isinstance(self.estimator, dict):
            self.estimator = EVEstimatorConfig.from_dict(self.estimator)
        if self.threshold < 0:
            raise ValueError(f"TwoStageConfig.threshold must be >= 0 stops, got {self.threshold}")


class TwoStageGenerator(nn.Module):
    """Global stage, then U-Net: ``(B, 3, H, W)`` in [-1, 1] to the same shape and range.

    Photos whose estimated error is under the threshold come back as the very values that went in;
    the U-Net sees (and learns from) only the others, after the global stage. The estimator's weights
    are frozen: training changes the U-Net alone.
    """

    def __init__(self, config: TwoStageConfig) -> None:
        super().__init__()
        self.config = config
        self.estimator = EVEstimator(config.estimator)
        self.estimator.requires_grad_(False)
        self.unet = UNetGenerator(config.unet)

    @property
    def multiple(self) -> int:
        """The side a direct input must be a multiple of (the U-Net's)."""
        return self.unet.multiple

    def train(self, mode: bool = True) -> TwoStageGenerator:
        """Train mode for the U-Net; the frozen estimator always stays in eval mode."""
        super().train(mode)
        self.estimator.eval()
        return self

    @torch.no_grad()
    def estimate(self, photos: torch.Tensor) -> torch.Tensor:
        """The estimated exposure error, in stops, of each photo ``(B, 3, H, W)`` in [0, 1]: ``(B,)``."""
        return self.estimator(photos.float()).to(photos.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            photos = denormalize(x.detach().float()).clamp(0.0, 1.0)
            ev = self.estimate(photos)
            moved = ev.abs() >= self.config.threshold
        if not bool(moved.any()):
            # nothing for the U-Net: in evaluation the photos come back as they are; in training a zero
            # multiple of one of its weights keeps the step's graph whole (a gradient of zero to take)
            return x if not torch.is_grad_enabled() else x + 0.0 * next(self.unet.parameters()).sum()
        with torch.no_grad():
            undone = normalize(undo_exposure(photos, ev.cpu(), threshold=self.config.threshold)).to(x)
        return torch.where(moved.view(-1, 1, 1, 1), self.unet(undone), x)

    @torch.no_grad()
    def global_stage(self, photo: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """The global stage on a whole uint8 photo ``(H, W, 3)``: (the photo with its exposure undone,
        the estimate in stops, whether it was changed). Under the threshold the photo itself comes back.
        """
        ev = float(self.estimate(to_tensor01(photo).unsqueeze(0).to(self.estimator.feature_mean.device))[0])
        if abs(ev) < self.config.threshold:
            return photo, ev, False
        return render_exposure(photo, -ev), ev, True


class GlobalStageAlone(nn.Module):
    """A two-stage generator's global stage without its U-Net, corrected the way ``correct`` runs it:
    the row of an evaluation that shows what the U-Net adds."""

    name = "global stage alone"
    unet = None  # expolib.evaluation.infer.correct stops after the global stage

    def __init__(self, model: TwoStageGenerator) -> None:
        super().__init__()
        self.model = model
        self.working_side = getattr(model, "working_side", None)

    def global_stage(self, photo: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """The global stage of the two-stage generator (see :meth:`TwoStageGenerator.global_stage`)."""
        return self.model.global_stage(photo)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        photos = denormalize(x.float()).clamp(0.0, 1.0)
        ev = self.model.estimate(photos)
        return normalize(undo_exposure(photos, ev.cpu(), threshold=self.model.config.threshold)).to(x)


__all__ = ["GlobalStageAlone", "TwoStageConfig", "TwoStageGenerator"]
