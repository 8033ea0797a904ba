"""The pix2pix objective: an adversarial loss on the discriminator's logits plus lambda * L1.

- :class:`AdversarialLoss` compares a map of patch logits with "real" (1) or "fake" (0) targets of the
  same shape: binary cross-entropy on logits (``"vanilla"``, pix2pix) or least squares (``"lsgan"``).
- :func:`discriminator_loss` is half the sum of its real and fake terms, as in pix2pix, so that D
  learns at half the rate of G.
- :func:`generator_loss` is the adversarial term for the fake (asked to look real) plus
  ``lambda_l1`` times the mean absolute error to the target (lambda = 100 in pix2pix).

Both return a named tuple whose first field is the scalar to call ``backward()`` on and whose other
fields are the detached components, for logging.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("vanilla", "lsgan")
LAMBDA_L1 = 100.0  # pix2pix's weight of the L1 term


class AdversarialLoss(nn.Module):
    """GAN loss on raw discriminator logits against an all-real or all-fake target map.

    ``"vanilla"``: ``BCEWithLogits(logits, target)``, the numerically stable form of sigmoid + BCE
    (it works on the logit directly, so a very confident logit never turns into log(0)).
    ``"lsgan"``: ``MSE(logits, target)``, the least-squares GAN of Mao et al. (2017).
    The target has the logits' shape, one value per patch, whatever the patch map's size.
    """

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {mode!r}; use one of {GAN_MODES}")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label

    def target_like(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        """A tensor of real (or fake) labels shaped like the patch map ``logits``."""
        return torch.full_like(logits, self.real_label if real else self.fake_label)

    def forward(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        target = self.target_like(logits, real)  # (B, 1, h, w) like the logits
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)


class DiscriminatorLoss(NamedTuple):
    """``total = 0.5 * (real + fake)``; ``real`` and ``fake`` are detached, for logging."""

    total: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor


class GeneratorLoss(NamedTuple):
    """``total = adversarial + lambda * l1``; ``adversarial`` and ``l1`` are detached, for logging."""

    total: torch.Tensor
    adversarial: torch.Tensor
    l1: torch.Tensor


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, adversarial: AdversarialLoss
) -> DiscriminatorLoss:
    """D's loss: real pairs should score "real", fakes "fake"; the sum is halved as in pix2pix."""
    real = adversarial(real_logits, True)
    fake = adversarial(fake_logits, False)
    return DiscriminatorLoss(0.5 * (real + fake), real.detach(), fake.detach())


def generator_loss(
    fake_logits: torch.Tensor,
    fake: torch.Tensor,
    target: torch.Tensor,
    adversarial: AdversarialLoss,
    lambda_l1: float = LAMBDA_L1,
) -> GeneratorLoss:
    """G's loss: fool D (its fakes should score "real") and stay close to the target in L1."""
    adv = adversarial(fake_logits, True)
    l1 = F.l1_loss(fake, target)
    return GeneratorLoss(adv + lambda_l1 * l1, adv.detach(), l1.detach())
