"""Training: the step, the loop, checkpoints (resume, interrupt, corruption), divergence, torchrun,
and the command line."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import signal
import subprocess
import sys
from itertools import islice
from pathlib import Path
from typing import Any, Optional

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from expolib import cli
from expolib.book.loops import endless, fit_reconstruction
from expolib.config import get_budget
from expolib.imaging.imageio import ImageLoadError
from expolib.networks.layers import GemmConvTranspose2d, use_gemm_transposed_convolutions
from expolib.networks.modelfile import load_generator, save_generator
from expolib.networks.patchgan import PatchConfig
from expolib.networks.unet import UNetConfig, UNetGenerator
from expolib.training.checkpoint import CheckpointError, load_checkpoint
from expolib.training.config import NETWORK_SETTINGS, TrainConfig, lr_factor, with_network_settings
from expolib.training.history import History
from expolib.training.pix2pix import Pix2Pix, TrainingDiverged, build_pix2pix, prepare_pix2pix
from expolib.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread (conftest.py)


class TinyPairs(Dataset):
    """Smooth random 32x32 pairs: the target is fixed per index, the input a darker copy with a random
    offset drawn from torch's global generator (like augmentation), optionally with traps."""

    def __init__(self, n: int = 12, size: int = 32, seed: int = 0, nan_at: Optional[int] = None,
                 interrupt_at: Optional[int] = None, fail_at: Optional[int] = None) -> None:
        g = torch.Generator().manual_seed(seed)
        coarse = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1  # smooth photos-to-be: upsampled 4x4 noise
        self.targets = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
        self.nan_at, self.interrupt_at, self.fail_at, self.calls = nan_at, interrupt_at, fail_at, 0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict[str, Any]:
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while loading data
        if self.fail_at is not None and self.calls == self.fail_at:
            raise ImageLoadError(f"photo_{index}.jpg: cannot decode (truncated file)")  # one corrupt photo
        target = self.targets[index]
        x = (0.5 * target - 0.3 + 0.1 * torch.rand(())).clamp(-1, 1)
        if self.nan_at is not None and self.calls >= self.nan_at:
            x = torch.full_like(x, float("nan"))
        return {"input": x, "target": target, "ev": -1.0, "scene": f"s{index}"}


def tiny_config(tmp_path: Path, **changes: Any) -> TrainConfig:
    """A tiny run's configuration; ``changes`` may also give network settings (ngf=8, ...)."""
    networks = {name: changes.pop(name) for name in list(changes) if name in NETWORK_SETTINGS}
    values: dict[str, Any] = dict(epochs=2, batch_size=4, image_size=32, generator=UNetConfig(ngf=4, depth=4),
                                  discriminator=PatchConfig(ndf=4, n_layers=2), out_dir=str(tmp_path / "run"),
                                  device="cpu", progress=False, seed=3)
    values.update(changes)
    return with_network_settings(TrainConfig(**values), **networks)


def tiny_model(config: TrainConfig) -> Pix2Pix:
    """The networks of ``config`` on its runtime (seed the RNGs first for repeatable weights)."""
    return build_pix2pix(config, config.runtime())


def tiny_trainer(config: TrainConfig, train_set: Dataset, val_set: Optional[Dataset] = None,
                 **options: Any) -> Trainer:
    """A trainer of the run ``config`` describes, its networks built as a run builds them."""
    return Trainer(config, prepare_pix2pix(config), train_set, val_set, **options)


def network_states(trainer: Trainer) -> dict[str, torch.Tensor]:
    states = {f"g.{k}": v for k, v in trainer.generator.state_dict().items()}
    states.update({f"d.{k}": v for k, v in trainer.discriminator.state_dict().items()})
    return states


def assert_same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = network_states(a), network_states(b)
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"tensors differ: {different[:5]}"
    for opt_a, opt_b in [(a.model.opt_g, b.model.opt_g), (a.model.opt_d, b.model.opt_d)]:
        states_a, states_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
        for state_a, state_b in zip(states_a.values(), states_b.values()):
            for key in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(state_a[key], state_b[key])


def same_numbers(a: list[dict[str, float]], b: list[dict[str, float]], ignore: tuple[str, ...] = ()) -> bool:
    """Rows equal key by key (NaN equals NaN), leaving out the ``ignore`` keys (timings)."""
    def clean(rows: list[dict[str, float]]) -> list[dict[str, Any]]:
        return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in r.items() if k not in ignore} for r in rows]
    return clean(a) == clean(b)


# ----------------------------------------------------------------------------------------------------
# Configuration and schedule


def test_config_from_budget_takes_sizes_and_counts_from_the_budget() -> None:
    budget = get_budget("standard")
    config = TrainConfig.from_budget(budget, lr=1e-4)
    assert (config.image_size, config.batch_size, config.epochs) == (128, 8, 3)
    assert (config.generator.ngf, config.discriminator.ndf, config.generator.depth) == (16, 16, 7)
    assert config.steps_per_epoch == 30
    assert config.lr == 1e-4 and config.betas == (0.5, 0.999) and config.lambda_l1 == 100
    assert TrainConfig.from_budget().image_size == get_budget().image_size
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("change", [{"gan_mode": "wgan"}, {"lr_policy": "cosine"}, {"epochs": 0}, {"lr": 0.0},
                                    {"norm": "group"}, {"decay_epochs": 9, "epochs": 3}])
def test_invalid_settings_are_refused(change: dict[str, Any]) -> None:
    networks = {k: v for k, v in change.items() if k in NETWORK_SETTINGS}
    with pytest.raises(ValueError, match=next(iter(change))):
        others = {k: v for k, v in change.items() if k not in networks}
        with_network_settings(TrainConfig(**others), **networks)


def test_the_networks_settings_are_held_once_and_old_flat_configs_still_read() -> None:
    config = with_network_settings(TrainConfig(), ngf=8, ndf=16, depth=5, n_layers=2, norm="instance",
                                   upsample="bilinear", residual=True)
    assert config.generator == UNetConfig(ngf=8, depth=5, norm="instance", upsample="bilinear", residual=True)
    assert config.discriminator == PatchConfig(ndf=16, n_layers=2, norm="instance")
    values = config.to_dict()
    assert values["generator"]["ngf"] == 8 and "ngf" not in values  # nested, not repeated
    assert TrainConfig.from_dict(values) == config
    old = {"lr": 1e-3, "ngf": 8, "ndf": 16, "depth": 5, "n_layers": 2, "norm": "instance",
           "upsample": "bilinear", "residual": True}  # a checkpoint's config before the nesting
    assert TrainConfig.from_dict(old) == dataclasses.replace(config, lr=1e-3)


def test_the_command_lines_network_options_fill_the_nested_configs() -> None:
    from expolib.cli.train import config_from_args

    parser = argparse.ArgumentParser()
    cli.train.add_cli(parser.add_subparsers())
    args = parser.parse_args(["train", "--budget", "quick", "--ngf", "12", "--n-layers", "2", "--norm",
                              "instance", "--upsample", "bilinear", "--residual", "on"])
    config = config_from_args(args)
    quick = get_budget("quick")
    assert config.generator == UNetConfig(ngf=12, depth=quick.depth, norm="instance", upsample="bilinear",
                                          residual=True)
    assert config.discriminator == PatchConfig(ndf=quick.ndf, n_layers=2, norm="instance")


def test_linear_policy_keeps_then_decays_the_learning_rate() -> None:
    config = TrainConfig(epochs=6, decay_epochs=3)
    factors = [lr_factor(config, e) for e in range(6)]
    assert factors[:3] == [1.0, 1.0, 1.0]
    assert factors[3:] == pytest.approx([0.75, 0.5, 0.25])  # linear towards 0
    assert [lr_factor(TrainConfig(epochs=6, lr_policy="constant"), e) for e in range(6)] == [1.0] * 6


# ----------------------------------------------------------------------------------------------------
# The step


def test_a_few_steps_lower_the_l1_on_a_fixed_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny_model(tiny_config(tmp_path, lr=1e-3))
    data = TinyPairs(4)
    batch = [data[i] for i in range(4)]
    inputs = torch.stack([b["input"] for b in batch])
    targets = torch.stack([b["target"] for b in batch])
    l1s = [model.train_step(inputs, targets)["g_l1"].item() for _ in range(12)]
    assert l1s[-1] < 0.95 * l1s[0], l1s


def test_step_runs_the_generator_once_and_updates_d_only_from_its_own_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny_model(tiny_config(tmp_path))
    calls = {"g": 0, "d": 0}
    model.generator.register_forward_hook(lambda *_: calls.__setitem__("g", calls["g"] + 1))
    model.discriminator.register_forward_hook(lambda *_: calls.__setitem__("d", calls["d"] + 1))
    accumulated = {"d": 0, "g": 0}
    d_param = next(model.discriminator.parameters())
    g_param = next(model.generator.parameters())
    d_param.register_post_accumulate_grad_hook(lambda p: accumulated.__setitem__("d", accumulated["d"] + 1))
    g_param.register_post_accumulate_grad_hook(lambda p: accumulated.__setitem__("g", accumulated["g"] + 1))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    model.train_step(x, x.flip(-1))
    assert calls == {"g": 1, "d": 3}  # G once; D on the real pair, the detached fake, the fake for G
    # D's weights get gradients from D's loss only (frozen in G's update); G's only from G's loss
    assert accumulated == {"d": 1, "g": 1}


@pytest.mark.parametrize("side, kernel, stride, padding, bias",
                         [(1, 4, 2, 1, False), (4, 4, 2, 1, True), (5, 3, 1, 1, True), (3, 3, 2, 0, False)])
def test_gemm_transposed_convolution_matches_pytorchs(side: int, kernel: int, stride: int, padding: int,
                                                      bias: bool) -> None:
    torch.manual_seed(0)
    reference = nn.ConvTranspose2d(6, 5, kernel, stride, padding, bias=bias)
    gemm = copy.deepcopy(reference)
    assert use_gemm_transposed_convolutions(gemm) == 1 and isinstance(gemm, GemmConvTranspose2d)
    assert gemm.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(2, 6, side, side, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    a, b = reference(x), gemm(x2)
    assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    g = torch.randn_like(a)
    a.backward(g)
    b.backward(g)
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)
    assert torch.allclose(reference.weight.grad, gemm.weight.grad, atol=1e-4)


def test_gemm_transposed_convolution_leaves_large_maps_to_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    gemm = nn.ConvTranspose2d(4, 4, 4, 2, 1)
    use_gemm_transposed_convolutions(gemm)
    calls = []
    monkeypatch.setattr(torch.nn.functional, "fold", lambda *a, **k: calls.append(1))
    gemm(torch.randn(1, 4, 16, 16))  # 256 pixels > max_pixels: PyTorch's own kernel
    assert calls == []


def test_the_step_is_the_same_with_and_without_gemm_convolutions(tmp_path: Path) -> None:
    # float32 stated: the two routes round differently in bf16, and Adam's first step turns a gradient
    # near zero that changes sign into a weight 2 lr away (tests/test_precision.py runs both in bf16)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    results = []
    for gemm in (False, True):
        torch.manual_seed(0)
        model = tiny_model(tiny_config(tmp_path, gemm_convolutions=gemm, amp=False))
        torch.manual_seed(1)  # the same dropout masks
        losses = model.train_step(x, x.flip(-1))
        weights = [p.detach().clone() for p in model.generator.parameters()]
        results.append((torch.stack(list(losses.values())), weights))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)
    for p, q in zip(results[0][1], results[1][1]):
        assert torch.allclose(p, q, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# The loop and its files


def test_fit_writes_checkpoints_history_and_grids(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    history = tiny_trainer(config, TinyPairs(), TinyPairs(4, seed=1)).fit()
    run = Path(config.out_dir)
    expected = {"last.pt", "best.pt", "history.jsonl", "val_epoch_001.jpg", "val_epoch_002.jpg"}
    assert expected <= set(os.listdir(run))
    assert (run / "val_epoch_001.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, not a large PNG
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]  # no temporary file left behind
    assert len(history.batches) == 2 * 3 and len(history.epochs) == 2  # 12 pairs / batch 4 = 3 steps
    assert [r["step"] for r in history.batches] == list(range(1, 7))
    for row in history.epochs:
        assert math.isfinite(row["val_l1"]) and 0 < row["val_psnr"] < 60
    assert same_numbers(History.load(run / "history.jsonl").batches, history.batches)
    assert same_numbers(History.load(run / "history.jsonl").epochs, history.epochs)
    state = load_checkpoint(run / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (2, 0, 6)


def test_validation_psnr_is_the_metrics_psnr_of_each_image(tmp_path: Path) -> None:
    from expolib.evaluation.metrics import psnr
    from expolib.imaging.transforms import denormalize

    pairs = TinyPairs(4, seed=1)
    val_set = [pairs[i] for i in range(4)]  # fixed items (TinyPairs draws a new offset on every read)
    # batches of 3 and 1, against images one by one, to 1e-5: float32 stated, as bf16 kernels may round
    # a batch of three otherwise than one image
    trainer = tiny_trainer(tiny_config(tmp_path, batch_size=3, amp=False), TinyPairs(), val_set)
    result = trainer.validate()
    scores = []
    for item in val_set:
        out = trainer.model.correct(item["input"].unsqueeze(0))[0]
        scores.append(psnr(denormalize(out), denormalize(item["target"])))
    assert result["val_psnr"] == pytest.approx(sum(scores) / len(scores), rel=1e-5)


def test_history_file_round_trips_without_a_validation_set(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, epochs=1)
    history = tiny_trainer(config, TinyPairs()).fit()
    assert math.isnan(history.epochs[0]["val_l1"])
    assert '"val_l1": null' in (Path(config.out_dir) / "history.jsonl").read_text()  # NaN is not JSON
    loaded = History.load(Path(config.out_dir) / "history.jsonl")
    assert same_numbers(loaded.epochs, history.epochs) and loaded.batches == history.batches
    val_l1 = loaded.column("val_l1", per="epoch")  # what a plot of the run reads
    assert len(val_l1) == 1 and math.isnan(val_l1[0])
    assert not list(Path(config.out_dir).glob("val_epoch_*"))  # no validation set, no grid
    assert (Path(config.out_dir) / "best.pt").is_file()  # best by training L1


def test_a_new_loss_term_reaches_the_history_and_the_report_by_its_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = Pix2Pix.train_step

    def with_a_new_term(self: Pix2Pix, inputs: torch.Tensor, targets: torch.Tensor,
                        check: bool = True) -> dict[str, torch.Tensor]:
        terms = step(self, inputs, targets, check)
        return {**terms, "g_tv": torch.full_like(terms["g_l1"], 0.5)}

    monkeypatch.setattr(Pix2Pix, "train_step", with_a_new_term)
    lines: list[str] = []
    history = tiny_trainer(tiny_config(tmp_path, epochs=1), TinyPairs(), report=lines.append).fit()
    assert history.terms() == ["g_adv", "g_l1", "d_real", "d_fake", "g_tv"]
    assert all(row["g_tv"] == 0.5 for row in history.batches) and history.epochs[0]["g_tv"] == 0.5
    assert lines[-1].startswith("epoch 1/1: G L1 ") and lines[-1].endswith(", g_tv 0.5")
    assert History.load(Path(tiny_config(tmp_path).out_dir) / "history.jsonl").batches[0]["g_tv"] == 0.5


def test_history_columns_read_json_null_as_nan() -> None:
    history = History.from_dict({"epochs": [{"val_l1": None}, {"val_l1": 0.25}]})
    values = history.column("val_l1", per="epoch")
    assert math.isnan(values[0]) and values[1] == 0.25


def test_interrupted_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    straight = tiny_trainer(tiny_config(tmp_path / "a"), TinyPairs())
    straight.fit()

    first = tiny_trainer(tiny_config(tmp_path / "b"), TinyPairs())
    first.fit(max_steps=4)  # stops inside the second epoch
    assert load_checkpoint(first.last_path)["step_in_epoch"] == 1
    resumed = tiny_trainer(tiny_config(tmp_path / "b"), TinyPairs())
    history = resumed.fit(resume=True)
    assert_same_state(straight, resumed)
    assert history.batches == straight.history.batches
    assert same_numbers(history.epochs, straight.history.epochs, ignore=("seconds", "images_per_second"))


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path: Path) -> None:
    straight = tiny_trainer(tiny_config(tmp_path / "a", num_workers=0), TinyPairs())
    straight.fit()

    config = tiny_config(tmp_path / "b")
    interrupted = tiny_trainer(config, TinyPairs(interrupt_at=4 * 4 + 2))  # while loading the 5th batch
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert load_checkpoint(interrupted.last_path)["global_step"] == 4
    resumed = tiny_trainer(config, TinyPairs())
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, checkpoint_every=3)  # last.pt at the end of epoch 1 (global step 3)
    trainer = tiny_trainer(config, TinyPairs(nan_at=3 * 4 + 1))  # the first batch of epoch 2 has NaN inputs
    written: list[bytes] = []  # last.pt as each save left it, read before any later step runs
    save = trainer.save_checkpoint

    def save_and_read(best: bool = False) -> Optional[Path]:
        path = save(best)
        written.append(trainer.last_path.read_bytes())
        return path

    trainer.save_checkpoint = save_and_read  # type: ignore[method-assign]
    with pytest.raises(TrainingDiverged, match="epoch 2, step 1 .*discriminator's loss is nan"):
        trainer.fit()
    assert len(written) == 1  # the end of epoch 1, and nothing after the divergence
    assert trainer.last_path.read_bytes() == written[0]
    state = load_checkpoint(trainer.last_path)
    assert (state["epoch"], state["global_step"]) == (1, 3)
    # every later step had a NaN loss: the device skipped each update (no host check in the step), so
    # the weights and Adam's moments still equal the checkpoint's
    for name, tensor in trainer.generator.named_parameters():
        assert torch.equal(tensor, state["generator"][name]), name
    for name, tensor in trainer.discriminator.named_parameters():
        assert torch.equal(tensor, state["discriminator"][name]), name
    for key in ("opt_g", "opt_d"):
        saved = state[key]["state"]
        now = getattr(trainer.model, key).state_dict()["state"]
        for index, moments in now.items():
            assert torch.equal(moments["exp_avg"], saved[index]["exp_avg"])
            assert torch.equal(moments["step"], saved[index]["step"])


def test_the_unchecked_step_skips_a_poisoned_update_on_the_device(tmp_path: Path) -> None:
    # train_step(check=False) never reads a loss on the host, yet a non-finite loss changes nothing
    torch.manual_seed(0)
    model = tiny_model(tiny_config(tmp_path))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    g_before = {k: v.clone() for k, v in model.generator.named_parameters()}
    d_before = {k: v.clone() for k, v in model.discriminator.named_parameters()}
    model.train_step(torch.full_like(x, float("nan")), x, check=False)  # no exception: checked later
    assert not torch.isfinite(model.last_totals).all()
    assert all(torch.equal(t, g_before[k]) for k, t in model.generator.named_parameters())
    assert all(torch.equal(t, d_before[k]) for k, t in model.discriminator.named_parameters())
    model.train_step(x, x.flip(-1), check=False)  # a good batch afterwards trains as usual
    assert torch.isfinite(model.last_totals).all()
    assert not all(torch.equal(t, g_before[k]) for k, t in model.generator.named_parameters())


def test_a_non_finite_generator_loss_comes_after_the_discriminators_step(tmp_path: Path) -> None:
    # What TrainingDiverged documents: G's loss needs the updated D, so D has stepped; G has not, and
    # the normalisation statistics of both are put back.
    torch.manual_seed(0)
    model = tiny_model(tiny_config(tmp_path, lambda_l1=math.inf))  # G's loss is inf, D's is finite
    g_before = copy.deepcopy(model.generator.state_dict())
    d_before = copy.deepcopy(model.discriminator.state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with pytest.raises(TrainingDiverged, match="generator"):
        model.train_step(x, x.flip(-1))
    assert all(torch.equal(t, g_before[k]) for k, t in model.generator.state_dict().items())
    d_after = model.discriminator.state_dict()
    buffers = {name for name, _ in model.discriminator.named_buffers()}
    assert all(torch.equal(d_after[k], d_before[k]) for k in buffers)
    assert not all(torch.equal(d_after[k], d_before[k]) for k in d_after if k not in buffers)


def test_an_error_between_steps_saves_the_steps_done_and_resumes_exactly(tmp_path: Path) -> None:
    straight = tiny_trainer(tiny_config(tmp_path / "a"), TinyPairs())
    straight.fit()

    config = tiny_config(tmp_path / "b")
    broken = tiny_trainer(config, TinyPairs(fail_at=4 * 4 + 2))  # a corrupt photo in the 5th batch
    with pytest.raises(ImageLoadError, match="photo_"):
        broken.fit()
    state = load_checkpoint(broken.last_path)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 4)  # no step lost
    resumed = tiny_trainer(config, TinyPairs())  # the photo repaired
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)


def test_an_error_inside_an_update_keeps_the_last_checkpoint(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(tmp_path, epochs=2, steps_per_epoch=1)
    trainer = tiny_trainer(config, TinyPairs())
    trainer.fit(max_steps=1)  # one epoch done: last.pt at global step 1
    before = trainer.last_path.read_bytes()

    def out_of_memory(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("out of memory")  # as if the GPU ran out halfway through the step

    monkeypatch.setattr(trainer.model, "_step", out_of_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.fit()
    assert trainer.last_path.read_bytes() == before


def test_corrupt_or_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, epochs=1, steps_per_epoch=1)
    trainer = tiny_trainer(config, TinyPairs())
    trainer.fit()
    whole = trainer.last_path.read_bytes()
    trainer.last_path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="last.pt"):
        tiny_trainer(config, TinyPairs()).fit(resume=True)
    trainer.last_path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="last.pt"):
        load_checkpoint(trainer.last_path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_refuses_a_checkpoint_of_other_networks(tmp_path: Path) -> None:
    tiny_trainer(tiny_config(tmp_path, epochs=1, steps_per_epoch=1), TinyPairs()).fit()
    wider = tiny_trainer(tiny_config(tmp_path, epochs=1, steps_per_epoch=1, ngf=8), TinyPairs())
    with pytest.raises(CheckpointError, match="ngf"):
        wider.fit(resume=True)


@pytest.mark.parametrize("change", [{"batch_size": 2}, {"image_size": 64}, {"steps_per_epoch": 3}])
def test_resume_refuses_other_data_settings(tmp_path: Path, change: dict[str, Any]) -> None:
    # a step's position in the epoch means other pairs with another batch size, crop or epoch length
    config = tiny_config(tmp_path, epochs=2, steps_per_epoch=2)
    tiny_trainer(config, TinyPairs()).fit(max_steps=3)  # stops inside the second epoch
    other = tiny_trainer(tiny_config(tmp_path, epochs=2, **{"steps_per_epoch": 2, **change}), TinyPairs())
    with pytest.raises(CheckpointError, match=f"last.pt.*{next(iter(change))}"):
        other.fit(resume=True)
    longer = tiny_trainer(tiny_config(tmp_path, epochs=3, steps_per_epoch=2), TinyPairs())
    longer.fit(resume=True)  # more epochs is fine
    assert longer.global_step == 6


def test_resume_inside_an_epoch_is_exact_with_dataloader_workers(tmp_path: Path) -> None:
    # each pair's augmentation comes from (seed, epoch, index), not from whichever worker loads it
    straight = tiny_trainer(tiny_config(tmp_path / "a", num_workers=2), TinyPairs())
    straight.fit()
    config = tiny_config(tmp_path / "b", num_workers=2)
    tiny_trainer(config, TinyPairs()).fit(max_steps=4)  # stops inside the second epoch
    resumed = tiny_trainer(config, TinyPairs())
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)


def test_endless_cycles_and_refuses_an_empty_loader() -> None:
    assert list(islice(endless([1, 2, 3]), 7)) == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ValueError, match="no batches"):
        next(endless([]))


def test_fit_reconstruction_lowers_the_chosen_loss_on_a_fixed_batch() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    batch = {"input": x, "target": 0.5 * x + 0.2}  # darker and brighter at once: learnable per pixel

    def fresh() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))

    curves = {}
    for loss, fn in (("l1", torch.nn.functional.l1_loss), ("l2", torch.nn.functional.mse_loss)):
        model = fresh()
        with torch.no_grad():
            first = fn(model(batch["input"]), batch["target"]).item()  # the loss before any step
        curves[loss] = fit_reconstruction(model, [batch], steps=30, lr=1e-2, loss=loss, progress=False)
        assert len(curves[loss]) == 30 and curves[loss][0] == pytest.approx(first, rel=1e-6)
        assert curves[loss][-1] < 0.5 * curves[loss][0], curves[loss]
    assert curves["l1"][0] != pytest.approx(curves["l2"][0])  # the loss asked for is the one used
    with pytest.raises(ValueError, match="l1"):
        fit_reconstruction(fresh(), [batch], steps=1, lr=1e-3, loss="huber")


def test_export_ships_the_generator(tmp_path: Path) -> None:
    trainer = tiny_trainer(tiny_config(tmp_path, epochs=1, steps_per_epoch=1), TinyPairs())
    trainer.fit()
    path = save_generator(trainer.generator, tmp_path / "g.safetensors")
    loaded = load_generator(path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    trainer.generator.eval()
    assert torch.allclose(loaded(x), trainer.generator(x), atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# Command line and several processes


def test_train_help_lists_sources_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--msec", "--photos", "--pairs", "--budget", "--resume", "--out", "--export", "--lr",
                   "--gan-mode", "--amp", "--channels-last", "--num-workers", "--steps-per-epoch"):
        assert option in text


TINY_CLI = ["--budget", "quick", "--image-size", "32", "--ngf", "4", "--ndf", "4", "--depth", "4",
            "--n-layers", "2", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
            "--val-batches", "1", "--device", "cpu", "--progress", "off"]


def test_tiny_training_from_the_command_line(tmp_path: Path) -> None:
    out, export = tmp_path / "run", tmp_path / "g.safetensors"
    status = cli.main(["train", *TINY_CLI, "--lr", "1e-4", "--out", str(out), "--export", str(export)])
    assert status == 0
    state = load_checkpoint(out / "last.pt")
    assert state["global_step"] == 2 and state["config"]["lr"] == 1e-4
    # every checkpoint that holds a generator says what it is and the side it corrects photos at
    assert state["config"]["generator"]["ngf"] == 4 and state["generator_config"]["ngf"] == 4
    assert "working_side" in state and state["working_side"] is None  # no --crop-scale
    assert load_generator(export).config.ngf == 4
    assert (out / "val_epoch_001.jpg").is_file()


def test_export_half_writes_a_smaller_generator_that_loads(tmp_path: Path) -> None:
    out, export = tmp_path / "run", tmp_path / "g16.safetensors"
    assert cli.main(["train", *TINY_CLI, "--max-steps", "1", "--out", str(out), "--export", str(export),
                     "--export-half"]) == 0
    trained = UNetGenerator(UNetConfig(ngf=4, depth=4))
    trained.load_state_dict(load_checkpoint(out / "last.pt")["generator"])
    full = save_generator(trained, tmp_path / "g32.safetensors")  # the same weights in float32
    assert export.stat().st_size < 0.6 * full.stat().st_size
    half, single = load_generator(export), load_generator(full)
    for (name, a), b in zip(half.state_dict().items(), single.state_dict().values()):
        assert a.dtype == b.dtype and torch.allclose(a, b, rtol=1e-3, atol=1e-4), name
    assert cli.main(["train", *TINY_CLI, "--out", str(out), "--export-half"]) == 2  # needs --export


def _stderr_after(command: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = cli.main(command)
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_a_corrupt_photo_during_training_is_one_line_and_exit_2(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    inputs, targets = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    targets.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        photo = (torch.rand(40, 40, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(photo).save(inputs / f"p{i}.png")
        Image.fromarray(photo).save(targets / f"p{i}.png")
    (targets / "p2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)  # a corrupt file
    out = tmp_path / "run"
    status, lines = _stderr_after(["train", *TINY_CLI, "--pairs", str(inputs), str(targets),
                                   "--out", str(out)], capsys)
    assert status == 2
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "p2.png" in errors[0], lines
    assert not any("Traceback" in line for line in lines)
    assert (out / "last.pt").is_file()  # the steps before the corrupt photo were saved


def test_a_corrupt_checkpoint_on_the_command_line_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    status, lines = _stderr_after(["train", *TINY_CLI, "--out", str(tmp_path / "run"), "--resume", str(bad)],
                                  capsys)
    assert status == 2 and lines[-1].startswith("error:") and "bad.pt" in lines[-1]
    status, lines = _stderr_after(["train", *TINY_CLI, "--out", str(tmp_path / "run"),
                                   "--resume", str(tmp_path / "missing.pt")], capsys)
    assert status == 2 and lines[-1].startswith("error:") and "missing.pt" in lines[-1]


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_writes_one_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "expolib", "train", *TINY_CLI, "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files.count("last.pt") == 1 and not [f for f in files if f.endswith(".tmp")]
    state = load_checkpoint(out / "last.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["global_step"] == 2


# ----------------------------------------------------------------------------------------------------
# Faults while training: SIGTERM, run folders, leftovers, full disks, exports, foreign checkpoints


class TermAt(TinyPairs):
    """TinyPairs that sends this process SIGTERM (what `docker stop` or SLURM send) at one load."""

    def __init__(self, term_at: int) -> None:
        super().__init__()
        self.term_at = term_at

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.calls + 1 == self.term_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__getitem__(index)


def test_sigterm_saves_at_the_step_boundary_and_resumes_exactly(tmp_path: Path) -> None:
    straight = tiny_trainer(tiny_config(tmp_path / "a"), TinyPairs())
    straight.fit()
    config = tiny_config(tmp_path / "b")
    stopped = tiny_trainer(config, TermAt(term_at=4 * 4 + 2))  # while loading the 5th batch
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    assert load_checkpoint(stopped.last_path)["global_step"] == 5  # the batch being loaded was finished
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    resumed = tiny_trainer(config, TinyPairs())
    resumed.fit(resume=config.out_dir)  # a run folder means its last.pt
    assert_same_state(straight, resumed)


def test_a_killed_runs_temporary_file_is_removed_on_the_next_start(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, epochs=1)
    run = Path(config.out_dir)
    run.mkdir(parents=True)
    leftover = run / ".last.pt.abc123.tmp"
    leftover.write_bytes(b"")
    tiny_trainer(config, TinyPairs()).fit(max_steps=1)
    assert not leftover.exists() and (run / "last.pt").is_file()


def test_resume_with_a_run_folder_on_the_command_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli.main(["train", *TINY_CLI, "--out", str(out), "--max-steps", "2"]) == 0
    capsys.readouterr()
    other = str(tmp_path / "other")
    status, lines = _stderr_after(["train", *TINY_CLI, "--out", other, "--resume", str(out)], capsys)
    assert status == 0 and any(f"resumed from {out / 'last.pt'}" in line for line in lines), lines


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import expolib.training.checkpoint as checkpoint

    out = tmp_path / "run"
    assert cli.main(["train", *TINY_CLI, "--out", str(out), "--max-steps", "1"]) == 0
    capsys.readouterr()
    before = (out / "last.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj: Any, handle: Any) -> None:
        real_save(obj, handle)
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing "
                           "file data/0: file write failed")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    status, lines = _stderr_after(["train", *TINY_CLI, "--out", str(out), "--resume"], capsys)
    errors = [line for line in lines if line.startswith("error:")]
    # one line naming the file being written (best.pt comes first when the score improved)
    assert status == 2 and len(errors) == 1 and str(out) in errors[0] and ".pt:" in errors[0], lines
    assert not any("Traceback" in line for line in lines)
    assert (out / "last.pt").read_bytes() == before  # the previous checkpoint is whole
    assert not list(out.glob(".*.tmp"))


def test_export_onto_a_folder_is_refused_before_training(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    out = tmp_path / "run"
    status, lines = _stderr_after(["train", *TINY_CLI, "--out", str(out), "--export", str(folder)], capsys)
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith("error: --export:") and "folder" in lines[0]
    assert not out.exists()  # nothing was trained


def test_a_checkpoint_with_foreign_objects_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"format": "expolib.train/1", "payload": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "foreign.pt" in message and "weights_only" not in message and "\n" not in message


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from expolib.config import Runtime
    from expolib.training import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"2 processes .* 1 GPU\(s\).*--device cpu"):
        distributed.init_distributed(Runtime(torch.device("cuda", 1)))
    assert not distributed.dist.is_initialized()


def test_training_estimates_its_length_after_the_first_steps(tmp_path: Path) -> None:
    lines: list[str] = []
    trainer = tiny_trainer(tiny_config(tmp_path, epochs=3), TinyPairs(), report=lines.append)
    trainer.fit()
    estimates = [line for line in lines if "steps left" in line]
    assert len(estimates) == 1 and "images/s" in estimates[0] and "min" in estimates[0]


# ----------------------------------------------------------------------------------------------------
# One loader for the run, checkpoints and validation on a schedule


class PidPairs(TinyPairs):
    """TinyPairs whose items say which process loaded them."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["pid"] = os.getpid()
        return item


def test_one_loader_with_one_worker_serves_every_epoch(tmp_path: Path) -> None:
    from expolib.training.checkpoint import ResumableBatches

    config = tiny_config(tmp_path, epochs=3, num_workers=1)
    batches = ResumableBatches(PidPairs(), config)
    pids = [int(p) for batch in batches.run() for p in batch["pid"]]
    assert len(pids) == 3 * 3 * 4  # three epochs of three batches of four
    assert len(set(pids)) == 1 and pids[0] != os.getpid()  # one worker, never restarted


def test_an_epoch_can_be_longer_than_the_set_and_still_resumes_exactly(tmp_path: Path) -> None:
    # 12 pairs make 3 batches of 4; an epoch of 5 steps reshuffles the set within the epoch
    straight = tiny_trainer(tiny_config(tmp_path / "a", steps_per_epoch=5), TinyPairs())
    straight.fit()
    assert straight.global_step == 10
    config = tiny_config(tmp_path / "b", steps_per_epoch=5)
    tiny_trainer(config, TinyPairs()).fit(max_steps=4)  # inside the second pass of epoch 1
    resumed = tiny_trainer(config, TinyPairs())
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)


def test_the_epoch_order_covers_the_set_before_repeating(tmp_path: Path) -> None:
    from expolib.training.checkpoint import ResumableBatches

    batches = ResumableBatches(TinyPairs(), tiny_config(tmp_path, steps_per_epoch=6, epochs=1))
    keys = [key for batch in batches.run().batch_sampler for key in batch]
    first, second = [k[2] for k in keys[:12]], [k[2] for k in keys[12:]]
    assert sorted(first) == sorted(second) == list(range(12))  # two whole passes
    assert first != second  # each pass its own shuffle
    assert {k[1] for k in keys[:12]} == {0} and {k[1] for k in keys[12:]} == {1}


def test_last_pt_follows_the_clock_and_best_pt_holds_only_the_generator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import expolib.training.trainer as trainer_module
    from expolib.networks.modelfile import export_checkpoint, generator_from_checkpoint

    clock = [0.0]
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: clock[0])
    config = tiny_config(tmp_path, epochs=3, checkpoint_minutes=1.0)
    trainer = tiny_trainer(config, TinyPairs(), TinyPairs(4, seed=1))
    saves: list[int] = []
    save = trainer.save_checkpoint

    def counted(best: bool = False) -> Optional[Path]:
        saves.append(trainer.global_step)
        return save(best)

    trainer.save_checkpoint = counted  # type: ignore[method-assign]
    original_end = trainer._end_epoch

    def end_epoch(*args: Any) -> None:
        clock[0] += 25.0  # each epoch takes 25 s on this clock
        original_end(*args)

    trainer._end_epoch = end_epoch  # type: ignore[method-assign]
    trainer.fit()
    assert saves == [9]  # 25 s and 50 s are under a minute; the run's end always saves
    clock[0] = 0.0

    best = Path(config.out_dir) / "best.pt"
    assert best.stat().st_size < 0.5 * trainer.last_path.stat().st_size  # no optimiser state
    with pytest.raises(CheckpointError, match="resume from the run's last.pt"):
        load_checkpoint(best)
    generator = generator_from_checkpoint(best)
    assert generator.config.ngf == config.generator.ngf and generator.working_side is None
    exported = export_checkpoint(best, tmp_path / "best.safetensors")
    loaded = load_generator(exported)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(loaded(x), generator(x), atol=1e-6)


def test_validation_runs_at_most_every_k_steps_and_at_the_end(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, epochs=4, validate_every=5)  # 3 steps per epoch
    history = tiny_trainer(config, TinyPairs(), TinyPairs(4, seed=1)).fit()
    validated = [math.isfinite(row["val_l1"]) for row in history.epochs]
    assert validated == [False, True, False, True]  # after steps 6 (>= 5 since 0) and 12 (the end)
    grids = sorted(p.name for p in Path(config.out_dir).glob("val_epoch_*.jpg"))
    assert grids == ["val_epoch_002.jpg", "val_epoch_004.jpg"]


KILLED_RUN = '''
import os, signal, sys
import torch
sys.path.insert(0, {tests!r})
from test_train import TinyPairs, tiny_config, tiny_trainer
from pathlib import Path

class KilledAt(TinyPairs):
    def __getitem__(self, index):
        if self.calls + 1 == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # no handler, no save: the process just ends
        return super().__getitem__(index)

torch.set_num_threads(1)
config = tiny_config(Path({tmp!r}), checkpoint_every=2, checkpoint_minutes=0.0, epochs=3)
tiny_trainer(config, KilledAt()).fit(resume=True)
'''


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_scheduled_checkpoint_to_the_same_weights(tmp_path: Path) -> None:
    straight = tiny_trainer(tiny_config(tmp_path / "a", checkpoint_every=2, checkpoint_minutes=0.0, epochs=3),
                       TinyPairs())
    straight.fit()
    script = tmp_path / "killed.py"
    # killed while loading the 6th batch: last.pt was written after step 4 (inside epoch 2)
    script.write_text(KILLED_RUN.format(tests=str(ROOT / "tests"), kill_at=5 * 4 + 2,
                                        tmp=str(tmp_path / "b")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    config = tiny_config(tmp_path / "b", checkpoint_every=2, checkpoint_minutes=0.0, epochs=3)
    state = load_checkpoint(Path(config.out_dir) / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 4)
    resumed = tiny_trainer(config, TinyPairs())
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)


def test_training_on_msec_with_jpegs_decoded_on_the_device(tmp_path: Path) -> None:
    from expolib.benchmarks.endtoend import write_msec_folder

    root = write_msec_folder(tmp_path / "msec", scenes=3, side=64)
    write_msec_folder(tmp_path / "val", scenes=2, side=64)
    (tmp_path / "val" / "training").rename(root / "validation")
    out = tmp_path / "run"
    assert cli.main(["train", *TINY_CLI, "--msec", str(root), "--decode", "device", "--out", str(out)]) == 0
    state = load_checkpoint(out / "last.pt")
    assert state["global_step"] == 2 and math.isfinite(state["history"]["epochs"][0]["val_psnr"])


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import expolib.config as config

    monkeypatch.setattr(config, "native_bf16", lambda device: True)
    assert TrainConfig(device="cpu").runtime().autocast == torch.bfloat16
    assert TrainConfig(device="cpu", amp=False).runtime().autocast is None
    monkeypatch.setattr(config, "native_bf16", lambda device: False)
    runtime = TrainConfig(device="cpu").runtime()
    assert runtime.autocast is None  # emulated bf16 would be slower
    # the rest of the CPU's auto settings: no loss scaling, contiguous tensors, GEMM convolutions
    assert (runtime.grad_scaling, runtime.channels_last, runtime.gemm_convolutions) == (False, False, True)


def test_a_full_budget_run_validates_at_most_every_two_minutes_unless_asked() -> None:
    from expolib.cli.train import config_from_args

    parser = argparse.ArgumentParser()
    cli.train.add_cli(parser.add_subparsers())
    full = config_from_args(parser.parse_args(["train", "--budget", "full"]))
    asked = config_from_args(parser.parse_args(["train", "--budget", "full", "--validate-minutes", "0"]))
    standard = config_from_args(parser.parse_args(["train", "--budget", "standard"]))
    assert (full.validate_minutes, asked.validate_minutes, standard.validate_minutes) == (2.0, 0.0, 0.0)
