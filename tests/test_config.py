"""The budget and the device: the two choices every chapter makes first."""

from __future__ import annotations

import pytest
import torch

import expolib
from expolib import config


def test_session_runs_in_quick_budget() -> None:
    # conftest.py sets the budget for the whole test session (notebook kernels included).
    assert config.get_budget().name == "quick"


def test_default_budget_is_standard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    assert config.get_budget().name == "standard"


@pytest.mark.parametrize("name", ["quick", "standard", "full", " Full "])
def test_budget_read_from_environment(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(config.ENV_VAR, name)
    assert config.get_budget().name == name.strip().lower()


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ENV_VAR, "full")
    assert config.get_budget("quick").name == "quick"


def test_unknown_budget_lists_valid_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ENV_VAR, "huge")
    with pytest.raises(ValueError) as info:
        config.get_budget()
    message = str(info.value)
    assert "huge" in message and config.ENV_VAR in message
    for valid in ("quick", "standard", "full"):
        assert valid in message


def test_budgets_grow_from_quick_to_full() -> None:
    quick, standard, full = (config.BUDGETS[n] for n in ("quick", "standard", "full"))
    assert quick.image_size < standard.image_size < full.image_size
    assert quick.ngf < standard.ngf < full.ngf
    assert quick.demo_steps < standard.demo_steps < full.demo_steps
    # the full budget is the design report's recipe: 256x256, batch 64, 150 epochs, unet_256
    assert (full.image_size, full.batch_size, full.epochs, full.depth) == (256, 64, 150, 8)
    for budget in config.BUDGETS.values():
        # the U-Net must be able to halve the crop `depth` times
        assert budget.image_size % 2**budget.depth == 0


def test_with_overrides_keeps_the_rest() -> None:
    base = config.get_budget("quick")
    changed = config.with_overrides(base, epochs=9)
    assert changed.epochs == 9 and changed.image_size == base.image_size and base.epochs != 9


def _fake_backends(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(config, "_mps_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_device_order_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str
) -> None:
    _fake_backends(monkeypatch, cuda, mps)
    assert config.pick_device().type == expected


def test_asking_for_a_missing_device_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_backends(monkeypatch, cuda=False, mps=False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        config.pick_device("cuda")
    with pytest.raises(RuntimeError, match="MPS is not available"):
        config.pick_device("mps")
    assert config.pick_device("cpu") == torch.device("cpu")


def test_seed_everything_repeats_random_draws() -> None:
    config.seed_everything(7)
    a = torch.rand(3)
    config.seed_everything(7)
    assert torch.equal(a, torch.rand(3))


def test_package_exports() -> None:
    assert isinstance(expolib.__version__, str) and expolib.__version__.count(".") == 2
    assert expolib.get_budget is config.get_budget
