"""The pix2pix objective: BCE on logits (or least squares), the halved D loss, adversarial + lambda * L1."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from expolib.training.losses import (
    LAMBDA_L1,
    AdversarialLoss,
    discriminator_loss,
    generator_loss,
)


def test_vanilla_is_binary_cross_entropy_of_the_sigmoid_for_moderate_logits() -> None:
    logits = torch.tensor([[-2.0, -0.5], [0.3, 1.7]]).view(1, 1, 2, 2)
    p = torch.sigmoid(logits)
    adversarial = AdversarialLoss("vanilla")
    assert torch.allclose(adversarial(logits, True), (-torch.log(p)).mean())
    assert torch.allclose(adversarial(logits, False), (-torch.log(1 - p)).mean())


def test_targets_take_the_shape_of_the_patch_map() -> None:
    adversarial = AdversarialLoss()
    for shape in [(2, 1, 30, 30), (1, 1, 3, 5)]:
        logits = torch.zeros(shape)
        assert adversarial.target_like(logits, True).shape == logits.shape
        assert torch.all(adversarial.target_like(logits, True) == 1)
        assert torch.all(adversarial.target_like(logits, False) == 0)
        # a logit of 0 means "can't tell": log 2 whichever the target
        assert math.isclose(adversarial(logits, True).item(), math.log(2), rel_tol=1e-6)


def test_saturated_logits_stay_finite_and_keep_their_gradient() -> None:
    # a very confident wrong answer: "fake" (logit -200) for a real pair
    logits = torch.full((1, 1, 2, 2), -200.0, requires_grad=True)
    loss = AdversarialLoss("vanilla")(logits, True)
    loss.backward()
    assert math.isclose(loss.item(), 200.0, rel_tol=1e-6)  # -log(sigmoid(-200)) = 200 (about)
    assert torch.allclose(logits.grad, torch.full_like(logits, -1.0 / logits.numel()))
    # the naive formula on the probability overflows: sigmoid(-200) is exactly 0 in float32
    naive = -torch.log(torch.sigmoid(logits.detach())).mean()
    assert math.isinf(naive.item())


def test_lsgan_is_the_mean_squared_distance_to_the_labels() -> None:
    logits = torch.tensor([0.0, 0.5, 2.0]).view(1, 1, 1, 3)
    adversarial = AdversarialLoss("lsgan")
    assert torch.allclose(adversarial(logits, True), ((logits - 1) ** 2).mean())
    assert torch.allclose(adversarial(logits, False), (logits**2).mean())


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="wgan"):
        AdversarialLoss("wgan")


def test_discriminator_loss_is_halved_and_components_are_detached() -> None:
    real_logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    fake_logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    adversarial = AdversarialLoss()
    d = discriminator_loss(real_logits, fake_logits, adversarial)
    expected_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    expected_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    assert torch.allclose(d.total, 0.5 * (expected_real + expected_fake))
    assert d.terms.keys() == {"d_real", "d_fake"}
    assert torch.allclose(d.terms["d_real"], expected_real)
    assert torch.allclose(d.terms["d_fake"], expected_fake)
    assert d.total.requires_grad and not any(term.requires_grad for term in d.terms.values())


def test_discriminator_loss_rewards_a_discriminator_that_is_right() -> None:
    adversarial = AdversarialLoss()
    right = discriminator_loss(torch.full((1, 1, 2, 2), 5.0), torch.full((1, 1, 2, 2), -5.0), adversarial)
    wrong = discriminator_loss(torch.full((1, 1, 2, 2), -5.0), torch.full((1, 1, 2, 2), 5.0), adversarial)
    assert right.total < 0.01 < 4.0 < wrong.total


def test_generator_loss_is_adversarial_plus_lambda_l1() -> None:
    assert LAMBDA_L1 == 100.0
    torch.manual_seed(0)
    fake = (torch.rand(2, 3, 8, 8) * 2 - 1).requires_grad_()
    target = torch.rand(2, 3, 8, 8) * 2 - 1
    logits = torch.randn(2, 1, 2, 2)
    adversarial = AdversarialLoss()
    g = generator_loss(logits, fake, target, adversarial, lambda_l1=100.0)
    l1 = (fake - target).abs().mean()
    adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # fakes should look real
    assert g.terms.keys() == {"g_adv", "g_l1"}
    assert torch.allclose(g.terms["g_l1"], l1) and torch.allclose(g.terms["g_adv"], adv)
    assert torch.allclose(g.total, adv + 100.0 * l1)
    assert not any(term.requires_grad for term in g.terms.values())
    g.total.backward()
    # L1's gradient: lambda * sign(fake - target) / N on every pixel
    assert torch.allclose(fake.grad, 100.0 * torch.sign(fake.detach() - target) / fake.numel())


def test_lambda_zero_leaves_only_the_adversarial_term() -> None:
    logits = torch.randn(1, 1, 3, 3)
    fake, target = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    g = generator_loss(logits, fake, target, AdversarialLoss(), lambda_l1=0.0)
    assert torch.allclose(g.total, g.terms["g_adv"])
    assert g.terms["g_l1"].item() == 1.0
