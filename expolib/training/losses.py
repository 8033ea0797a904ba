"""The pix2pix objective: an adversarial loss on the discriminator's logits plus lambda * L1.

- :class:`AdversarialLoss` compares a map of patch logits with "real" (1) or "fake" (0) targets of the
  same shape: binary cross-entropy on logits (``"vanilla"``, pix2pix) or least squares (``"lsgan"``).
- :func:`discriminator_loss` is half the sum of its real and fake terms, as in pix2pix, so that D
  learns at half the rate of G.
- :func:`generator_loss` is the adversarial term for the fake (asked to look real) plus
  ``lambda_l1`` times the mean absolute error to the target (lambda = 100 in pix2pix).

Both return a :class:`Loss`: the scalar to call ``backward()`` on, and its detached terms by name
(``d_real``, ``d_fake``; ``g_adv``, ``g_l1``), which the training step returns and the trainer logs
whatever they are. A new term is added here and in the step; :data:`TERM_LABELS` may name it for the
epoch's report line.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("vanilla", "lsgan")
LAMBDA_L1 = 100.0  # pix2pix's weight of the L1 term
# how the end of an epoch reports a term (label, format), in this order; a term not listed is reported
# by its own name after these
TERM_LABELS = {"g_l1": ("G L1", ".4f"), "g_adv": ("G adv", ".3f"), "d_real": ("D real", ".3f"),
               "d_fake": ("D fake", ".3f")}


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


@dataclass(frozen=True)
class Loss:
    """A network's loss: ``total`` to call ``backward()`` on, and its ``terms`` by name (detached), for
    logging."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, adversarial: AdversarialLoss
) -> Loss:
    """D's loss: real pairs should score "real", fakes "fake"; the sum is halved as in pix2pix.
    Terms: ``d_real`` and ``d_fake``."""
    real = adversarial(real_logits, True)
    fake = adversarial(fake_logits, False)
    return Loss(0.5 * (real + fake), {"d_real": real.detach(), "d_fake": fake.detach()})


def generator_loss(
    fake_logits: torch.Tensor,
    fake: torch.Tensor,
    target: torch.Tensor,
    adversarial: AdversarialLoss,
    lambda_l1: float = LAMBDA_L1,
) -> Loss:
    """G's loss: fool D (its fakes should score "real") and stay close to the target in L1.
    Terms: ``g_adv`` and ``g_l1``."""
    adv = adversarial(fake_logits, True)
    l1 = F.l1_loss(fake, target)
    return Loss(adv + lambda_l1 * l1, {"g_adv": adv.detach(), "g_l1": l1.detach()})


__all__ = ["GAN_MODES", "LAMBDA_L1", "TERM_LABELS", "AdversarialLoss", "Loss", "discriminator_loss",
           "generator_loss"]
