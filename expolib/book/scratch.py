"""One pix2pix training step written from scratch, in plain PyTorch, for chapter 5 to read.

:func:`scratch_train_step` does what :meth:`expolib.training.pix2pix.Pix2Pix.train_step` does on its
float32 path, with nothing but the two networks, their optimisers and ``torch.nn.functional``: the
discriminator's update on the detached fake (binary cross-entropy on logits, real and fake pairs,
halved), then the generator's through the frozen discriminator (adversarial term + lambda * L1).
``tests/test_scratch_step.py`` checks that both give the same losses and the same weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scratch_train_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
                       opt_d: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                       lambda_l1: float = 100.0) -> dict[str, float]:
    """One update of D, then of G, on inputs ``x`` and targets ``y`` ((B, 3, H, W) in [-1, 1], on the
    networks' device); returns the four loss terms by name, as floats."""
    fake = generator(x)  # the step's only generator forward

    # 1. D: real pairs -> 1, generated pairs -> 0. The fake is detached: D's backward stops at D.
    discriminator.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    real_logits, fake_logits = discriminator(x, y), discriminator(x, fake.detach())
    d_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    d_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    (0.5 * (d_real + d_fake)).backward()
    opt_d.step()

    # 2. G: the updated D, frozen, judges the same fake; G wants "real" and to stay close to y.
    discriminator.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    logits = discriminator(x, fake)
    g_adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    g_l1 = F.l1_loss(fake, y)
    (g_adv + lambda_l1 * g_l1).backward()
    opt_g.step()
    return {"g_adv": g_adv.item(), "g_l1": g_l1.item(), "d_real": d_real.item(), "d_fake": d_fake.item()}


__all__ = ["scratch_train_step"]
