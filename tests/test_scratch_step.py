"""Chapter 5's pix2pix step written from scratch does what the library's ``Pix2Pix.train_step`` does:
the same losses and the same weights after each step, on tiny networks in float32 on the CPU; and the
comparison notices a step that differs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from expolib.book.scratch import scratch_train_step
from expolib.networks.patchgan import PatchConfig
from expolib.networks.unet import UNetConfig
from expolib.training.config import TrainConfig
from expolib.training.pix2pix import Pix2Pix, build_pix2pix

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread (conftest.py)


def tiny_pix2pix(gemm_convolutions: bool) -> Pix2Pix:
    """A tiny pix2pix in float32 on the CPU (precision stated: a CPU with native bf16 would pick
    autocast), with Adam state from two library steps, so that the compared steps are mid-run ones."""
    config = TrainConfig(epochs=1, batch_size=4, image_size=32, generator=UNetConfig(ngf=4, depth=4),
                         discriminator=PatchConfig(ndf=4, n_layers=2), device="cpu", amp=False,
                         gemm_convolutions=gemm_convolutions, progress=False)
    torch.manual_seed(0)
    model = build_pix2pix(config, config.runtime())
    assert model.runtime.autocast is None and not model.runtime.channels_last
    for seed in (1, 2):
        inputs, targets = batch(seed)
        model.train_step(inputs, targets)
    return model


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    targets = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    inputs = (0.5 * targets - 0.3 + 0.1 * torch.rand(4, 1, 1, 1, generator=g)).clamp(-1, 1)
    return inputs, targets


def differing(a: nn.Module, b: nn.Module) -> list[str]:
    """Names of the tensors (parameters and BatchNorm statistics) of ``a`` and ``b`` that are not equal
    to float32 rounding."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.allclose(sa[k].double(), sb[k].double(), rtol=1e-5, atol=1e-7)]


@pytest.mark.parametrize("gemm", [True, False], ids=["gemm-convolutions", "pytorch-convolutions"])
def test_the_scratch_step_gives_the_librarys_losses_and_weights(gemm: bool) -> None:
    library = tiny_pix2pix(gemm)
    scratch = copy.deepcopy(library)
    assert not differing(library.generator, scratch.generator)
    for seed in (3, 4):  # two steps: the second starts from the first's weights and Adam state
        inputs, targets = batch(seed)
        torch.manual_seed(seed)  # the same dropout masks in both generators
        ours = library.train_step(inputs, targets)
        torch.manual_seed(seed)
        theirs = scratch_train_step(scratch.generator, scratch.discriminator, scratch.opt_g, scratch.opt_d,
                                    inputs, targets, lambda_l1=scratch.config.lambda_l1)
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert ours[name].item() == pytest.approx(theirs[name], rel=1e-6, abs=1e-7), name
    assert not differing(library.generator, scratch.generator)
    assert not differing(library.discriminator, scratch.discriminator)
    # and the optimisers moved on alike
    for opt_a, opt_b in [(library.opt_g, scratch.opt_g), (library.opt_d, scratch.opt_d)]:
        states_a, states_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
        for state_a, state_b in zip(states_a.values(), states_b.values()):
            assert torch.equal(state_a["step"], state_b["step"])
            assert torch.allclose(state_a["exp_avg"], state_b["exp_avg"], rtol=1e-5, atol=1e-9)


def test_the_comparison_catches_a_step_that_differs() -> None:
    library = tiny_pix2pix(True)
    scratch = copy.deepcopy(library)
    inputs, targets = batch(3)
    torch.manual_seed(3)
    library.train_step(inputs, targets)
    torch.manual_seed(3)
    scratch_train_step(scratch.generator, scratch.discriminator, scratch.opt_g, scratch.opt_d,
                       inputs, targets, lambda_l1=10.0)  # pix2pix's lambda is 100
    # D's update comes first and does not read lambda; G's does
    assert not differing(library.discriminator, scratch.discriminator)
    assert differing(library.generator, scratch.generator)
    # other dropout masks in the generator: a different fake, so both networks end elsewhere
    again = copy.deepcopy(library)
    other = copy.deepcopy(library)
    torch.manual_seed(5)
    again.train_step(inputs, targets)
    torch.manual_seed(6)
    scratch_train_step(other.generator, other.discriminator, other.opt_g, other.opt_d, inputs, targets)
    assert differing(again.discriminator, other.discriminator)
    assert differing(again.generator, other.generator)
