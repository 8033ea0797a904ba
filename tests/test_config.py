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


# ----------------------------------------------------------------------------------------------------
# How a run computes: decided once, by decide_runtime


def test_cuda_runs_in_bf16_or_fp16_with_loss_scaling_and_channels_last(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_backends(monkeypatch, cuda=True, mps=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    runtime = config.decide_runtime()
    assert runtime.device.type == "cuda" and runtime.autocast == torch.bfloat16 and not runtime.grad_scaling
    assert runtime.channels_last and not runtime.gemm_convolutions and not runtime.compile
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    older = config.decide_runtime()
    assert older.autocast == torch.float16 and older.grad_scaling  # float16's small gradients need scaling
    monkeypatch.setattr(config, "compile_problem", lambda device: None)  # as if Triton were installed
    plain = config.decide_runtime(amp=False, channels_last=False, compile=True)
    assert plain.autocast is None and not plain.grad_scaling and not plain.channels_last and plain.compile


def test_each_torchrun_process_takes_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_backends(monkeypatch, cuda=True, mps=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert config.decide_runtime().device == torch.device("cuda", 1)
    assert config.decide_runtime("cuda").device == torch.device("cuda", 1)
    assert config.decide_runtime("cuda:0").device == torch.device("cuda", 0)  # a numbered GPU is kept
    assert config.decide_runtime("cpu").device == torch.device("cpu")


def test_the_cpu_gets_bf16_only_natively_and_gemm_convolutions(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_backends(monkeypatch, cuda=False, mps=False)
    monkeypatch.setattr(config, "native_bf16", lambda device: True)
    native = config.decide_runtime()
    assert native.autocast == torch.bfloat16 and native.gemm_convolutions and not native.channels_last
    monkeypatch.setattr(config, "native_bf16", lambda device: False)
    assert config.decide_runtime().autocast is None  # emulated bf16 is slower than float32
    with pytest.warns(UserWarning, match="no native bfloat16"):
        forced = config.decide_runtime(amp=True, gemm_convolutions=False)
    assert forced.autocast == torch.bfloat16 and not forced.gemm_convolutions and not forced.grad_scaling


def test_mps_runs_in_float32_and_refuses_mixed_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_backends(monkeypatch, cuda=False, mps=True)
    runtime = config.decide_runtime()
    assert runtime.device.type == "mps" and runtime.autocast is None
    assert not runtime.channels_last and not runtime.gemm_convolutions
    with pytest.raises(ValueError, match="mps"):
        config.decide_runtime(amp=True)


def test_a_runtime_puts_batches_on_its_device_in_its_memory_format() -> None:
    runtime = config.Runtime(torch.device("cpu"), channels_last=True)
    batch = runtime.prepare(torch.zeros(2, 3, 4, 4))
    assert batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous()
    with runtime.autocast_context():
        assert not torch.is_autocast_enabled("cpu")  # float32: no autocast
    with config.Runtime(torch.device("cpu"), autocast=torch.bfloat16).autocast_context():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
