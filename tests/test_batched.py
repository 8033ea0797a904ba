"""Seeds trained as one batched model (expolib.book.batched) give the runs trained one by one."""

import copy

import pytest
import torch

from expolib.book.batched import fit_reconstruction_seeds
from expolib.book.experiments import BankLoader
from expolib.book.loops import fit_reconstruction
from expolib.networks.factory import build_generator
from expolib.networks.unet import UNetConfig

# no dropout: with it the batched copies draw other masks than separate runs, by design
CONFIG = UNetConfig(ngf=4, depth=3, dropout=0.0, residual=True)
SEEDS = (0, 1, 2)


def _bank(side: int = 16) -> dict:
    g = torch.Generator().manual_seed(5)
    return {"input": torch.rand(24, 3, side, side, generator=g) * 2 - 1,
            "target": torch.rand(24, 3, side, side, generator=g) * 2 - 1}


def _models() -> list[torch.nn.Module]:
    models = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        models.append(build_generator(CONFIG))
    return models


@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_batched_seeds_equal_runs_one_after_another(loss: str) -> None:
    bank = _bank()
    batched = _models()
    alone = copy.deepcopy(batched)
    before = [m.state_dict()["unet.down.0.weight"].clone() for m in batched]
    batched_losses = fit_reconstruction_seeds(batched, [BankLoader(bank, 4, s) for s in SEEDS], steps=10,
                                              lr=2e-3, loss=loss, progress=False)
    alone_losses = [fit_reconstruction(m, BankLoader(bank, 4, s), steps=10, lr=2e-3, loss=loss,
                                       progress=False) for m, s in zip(alone, SEEDS)]
    assert torch.allclose(torch.tensor(batched_losses), torch.tensor(alone_losses), atol=1e-5)
    for m, ref, start in zip(batched, alone, before):
        assert m.training
        state, expected = m.state_dict(), ref.state_dict()
        assert not torch.equal(state["unet.down.0.weight"], start)  # trained, and written back
        for key, value in expected.items():  # weights, and BatchNorm's running statistics
            assert torch.allclose(state[key].float(), value.float(), atol=1e-4), key
    # three different runs, not one run three times
    assert not torch.allclose(batched[0].state_dict()["unet.down.0.weight"],
                              batched[1].state_dict()["unet.down.0.weight"])


def test_each_copy_learns_from_its_own_batches_only() -> None:
    bank = _bank()
    other = {key: -value for key, value in bank.items()}
    models = _models()[:2]
    reference = copy.deepcopy(models[0])
    fit_reconstruction_seeds(models, [BankLoader(bank, 4, 0), BankLoader(other, 4, 1)], steps=5, lr=2e-3,
                             progress=False)
    fit_reconstruction(reference, BankLoader(bank, 4, 0), steps=5, lr=2e-3, progress=False)
    for key, value in reference.state_dict().items():
        assert torch.allclose(models[0].state_dict()[key].float(), value.float(), atol=1e-4), key


def test_bad_arguments_are_refused() -> None:
    models = _models()
    with pytest.raises(ValueError, match="one loader per model"):
        fit_reconstruction_seeds(models, [BankLoader(_bank(), 4, 0)], steps=1, lr=1e-3)
    with pytest.raises(ValueError, match="loss must be one of"):
        fit_reconstruction_seeds(models, [BankLoader(_bank(), 4, s) for s in SEEDS], steps=1, lr=1e-3,
                                 loss="huber")


def test_batched_pix2pix_equals_its_train_step() -> None:
    from expolib.networks.patchgan import PatchConfig
    from expolib.training.config import TrainConfig
    from expolib.book.batched import fit_pix2pix_seeds
    from expolib.training.pix2pix import build_pix2pix

    config = TrainConfig(epochs=1, batch_size=4, image_size=32, lr=2e-3, generator=CONFIG,
                         discriminator=PatchConfig(ndf=4), amp=False, device="cpu", progress=False)
    runtime = config.runtime()
    models = []
    for seed in SEEDS[:2]:
        torch.manual_seed(seed)
        models.append(build_pix2pix(config, runtime))
    alone = copy.deepcopy(models)
    bank = _bank(32)
    fit_pix2pix_seeds(models, [BankLoader(bank, 4, s) for s in SEEDS[:2]], steps=6, progress=False)
    for model, seed in zip(alone, SEEDS[:2]):
        for batch, _ in zip(BankLoader(bank, 4, seed), range(6)):
            model.train_step(batch["input"], batch["target"])
    for batched, ref in zip(models, alone):
        for net in ("generator", "discriminator"):
            state, expected = getattr(batched, net).state_dict(), getattr(ref, net).state_dict()
            for key, value in expected.items():
                assert torch.allclose(state[key].float(), value.float(), atol=1e-4), (net, key)


def test_batched_discriminators_equal_runs_one_after_another() -> None:
    from expolib.book.batched import fit_discriminator_seeds
    from expolib.networks.factory import build_discriminator
    from expolib.networks.patchgan import PatchConfig
    from expolib.training.losses import AdversarialLoss, discriminator_loss

    bank = {**_bank(32), "fake": _bank(32)["input"].flip(-1)}
    discs = []
    for seed in SEEDS[:2]:
        torch.manual_seed(seed)
        discs.append(build_discriminator(PatchConfig(ndf=4)))
    alone = copy.deepcopy(discs)
    losses = fit_discriminator_seeds(discs, [BankLoader(bank, 4, s) for s in SEEDS[:2]], steps=5, lr=2e-3,
                                     progress=False)
    for disc, ref, seed, run in zip(discs, alone, SEEDS, losses):
        ref.train()
        opt = torch.optim.Adam(ref.parameters(), lr=2e-3, betas=(0.5, 0.999))
        expected_losses = []
        for batch, _ in zip(BankLoader(bank, 4, seed), range(5)):
            x, y, f = batch["input"], batch["target"], batch["fake"]
            loss = discriminator_loss(ref(x, y), ref(x, f), AdversarialLoss()).total
            opt.zero_grad()
            loss.backward()
            opt.step()
            expected_losses.append(loss.item())
        assert run == pytest.approx(expected_losses, abs=1e-5)
        for key, value in ref.state_dict().items():
            assert torch.allclose(disc.state_dict()[key].float(), value.float(), atol=1e-4), key
