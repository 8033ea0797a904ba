"""Tests for expolib.networks: shapes, receptive fields, parameter counts, modes, init, the factory,
saving, loading and exporting a generator."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from expolib.config import get_budget
from expolib.networks import factory
from expolib.networks.factory import (
    Architecture,
    build_discriminator,
    build_generator,
    config_to_dict,
    discriminator_from_budget,
    generator_from_budget,
)
from expolib.networks.layers import count_parameters, init_weights
from expolib.networks.modelfile import (
    ModelFileError,
    export_checkpoint,
    generator_checkpoint,
    generator_from_checkpoint,
    load_generator,
    save_generator,
)
from expolib.networks.patchgan import PatchConfig, PatchDiscriminator, receptive_field
from expolib.networks.unet import UNetConfig, UNetGenerator


def small_unet(**changes: object) -> UNetGenerator:
    torch.manual_seed(0)
    return UNetGenerator(UNetConfig(**{"ngf": 4, "depth": 4, **changes}))


# --- generator shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "height", "width"),
    [(2, 8, 8), (4, 64, 48), (5, 37, 50), (6, 300, 451), (8, 300, 451), (4, 1, 1), (6, 3, 130)],
)
def test_generator_output_has_input_size(depth: int, height: int, width: int) -> None:
    g = UNetGenerator(UNetConfig(ngf=2, depth=depth)).eval()
    x = torch.rand(2, 3, height, width) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == (2, 3, height, width)
    assert y.abs().max() <= 1.0  # tanh output


@pytest.mark.parametrize("depth", [3, 6, 8])
def test_bottleneck_is_one_by_one_at_side_two_to_the_depth(depth: int) -> None:
    """At side 2**depth the innermost down conv gives 1x1 (batch 1, train mode: no norm there)."""
    g = UNetGenerator(UNetConfig(ngf=2, depth=depth)).train()
    seen: dict[str, tuple[int, ...]] = {}
    blocks = g.blocks()
    assert len(blocks) == depth
    blocks[-1].down.register_forward_hook(lambda m, i, o: seen.__setitem__("bottleneck", tuple(o.shape)))
    side = 2**depth
    y = g(torch.randn(1, 3, side, side))
    assert seen["bottleneck"] == (1, g.config.channels(depth - 1), 1, 1)
    assert y.shape == (1, 3, side, side)


def test_level_sides_halve_and_channels_cap_at_eight_ngf() -> None:
    g = UNetGenerator(UNetConfig(ngf=2, depth=8)).eval()
    shapes: list[tuple[int, ...]] = []
    for block in g.blocks():
        block.down.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        g(torch.randn(1, 3, 256, 256))
    assert [s[-1] for s in shapes] == [128, 64, 32, 16, 8, 4, 2, 1]
    assert [s[1] for s in shapes] == [2, 4, 8, 16, 16, 16, 16, 16]


def test_generator_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match="expects a"):
        small_unet()(torch.randn(1, 1, 16, 16))


def test_channels_last_input_gives_the_same_output() -> None:
    g = small_unet().eval()
    x = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        expected = g(x)
        got = g(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_instance_norm_variant_runs_with_batch_one() -> None:
    g = small_unet(norm="instance").train()
    assert any(isinstance(m, nn.InstanceNorm2d) for m in g.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert g(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("changes", [{"depth": 1}, {"norm": "group"}, {"dropout": 1.0}, {"ngf": 0}])
def test_bad_unet_config_is_rejected(changes: dict) -> None:
    with pytest.raises(ValueError):
        UNetConfig(**changes)


# --- skip connections -------------------------------------------------------------------------------


def _zero_bottleneck_outputs(skip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = small_unet(skip=skip).eval()
    g.blocks()[-1].down.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    with torch.no_grad():
        return g(torch.randn(1, 3, 16, 16)), g(torch.randn(1, 3, 16, 16))


def test_without_skips_everything_passes_through_the_bottleneck() -> None:
    """With the bottleneck zeroed, a plain encoder-decoder gives the same output for any input."""
    a, b = _zero_bottleneck_outputs(skip=False)
    torch.testing.assert_close(a, b)
    a, b = _zero_bottleneck_outputs(skip=True)
    assert not torch.allclose(a, b)  # the skips still carry the input around the bottleneck


def test_skip_false_up_convs_read_only_the_level_below() -> None:
    g = small_unet(skip=False)
    for block in g.blocks():
        down_conv = next(m for m in block.down if isinstance(m, nn.Conv2d))
        up_conv = next(m for m in block.up if isinstance(m, nn.ConvTranspose2d))
        assert up_conv.in_channels == down_conv.out_channels
    assert g(torch.randn(2, 3, 20, 20)).shape == (2, 3, 20, 20)


# --- parameter counts against a hand calculation ----------------------------------------------------


def test_unet_parameter_count_by_hand() -> None:
    # ngf=4, depth=3: levels produce 4, 8, 16 channels; every conv is 4x4 (16 weights per in/out pair).
    # A conv followed by a norm has no bias; each BatchNorm has a scale and a shift per channel.
    level0 = (3 * 4 * 16 + 4) + (2 * 4 * 3 * 16 + 3)  # down 3->4 (+bias); up 8->3 (+bias), tanh
    level1 = (4 * 8 * 16 + 2 * 8) + (2 * 8 * 4 * 16 + 2 * 4)  # down 4->8 + BN; up 16->4 + BN
    # innermost: down 8->16 (+bias, no norm at 1x1); up 16->8 + BN
    level2 = (8 * 16 * 16 + 16) + (16 * 8 * 16 + 2 * 8)
    assert count_parameters(UNetGenerator(UNetConfig(ngf=4, depth=3))) == level0 + level1 + level2 == 6_271

    # without skips the up convs read half the channels
    no_skip = (3 * 4 * 16 + 4) + (4 * 3 * 16 + 3) + (4 * 8 * 16 + 16) + (8 * 4 * 16 + 8) + level2
    assert count_parameters(UNetGenerator(UNetConfig(ngf=4, depth=3, skip=False))) == no_skip


def test_patchgan_parameter_count_by_hand() -> None:
    # ndf=2, n_layers=2: 6->2 (s2, bias), 2->4 (s2) + BN, 4->8 (s1) + BN, 8->1 (s1, bias)
    expected = (6 * 2 * 16 + 2) + (2 * 4 * 16 + 2 * 4) + (4 * 8 * 16 + 2 * 8) + (8 * 1 * 16 + 1)
    assert count_parameters(PatchDiscriminator(PatchConfig(ndf=2, n_layers=2))) == expected


def test_count_parameters_counts_every_parameter() -> None:
    assert count_parameters(nn.Linear(5, 3)) == 5 * 3 + 3


# --- receptive field ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_layers", "field"), [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_patchgan_receptive_field(n_layers: int, field: int) -> None:
    d = PatchDiscriminator(PatchConfig(ndf=2, n_layers=n_layers))
    assert receptive_field(d) == field
    assert receptive_field(list(d.layers)) == field


def test_receptive_field_of_hand_built_stacks() -> None:
    conv3 = lambda **kw: nn.Conv2d(1, 1, 3, **kw)  # noqa: E731
    assert receptive_field(nn.Sequential(conv3(), nn.ReLU(), conv3())) == 5
    assert receptive_field([conv3(stride=2), conv3()]) == 1 + 2 + 2 * 2
    assert receptive_field([conv3(dilation=2)]) == 5
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2), conv3())) == 8
    assert receptive_field([]) == 1


def test_receptive_field_matches_the_gradient_footprint() -> None:
    """The pixels that move one output logit span exactly the computed receptive field."""
    d = PatchDiscriminator(PatchConfig(ndf=2, n_layers=2)).eval()
    x = torch.randn(1, 3, 96, 96, requires_grad=True)
    out = d(x, torch.zeros_like(x))
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)) > 0).flatten()
    assert int(rows.max() - rows.min() + 1) == receptive_field(d) == 34


# --- train vs eval mode ------------------------------------------------------------------------------


def test_eval_mode_is_deterministic_and_train_mode_is_stochastic() -> None:
    g = small_unet()
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == 2  # capped by depth - 2
    x = torch.randn(2, 3, 16, 16)
    g.eval()
    with torch.no_grad():
        torch.testing.assert_close(g(x), g(x))
        g.train()
        assert not torch.allclose(g(x), g(x))  # dropout draws a new mask each call


def test_batchnorm_uses_batch_statistics_only_in_train_mode() -> None:
    g = small_unet(dropout=0.0)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        g.train()
        assert not torch.allclose(g(x)[:1], g(x[:1]), atol=1e-5)  # depends on the rest of the batch
        bn = next(m for m in g.modules() if isinstance(m, nn.BatchNorm2d))
        before = bn.running_mean.clone()
        g.eval()
        torch.testing.assert_close(g(x)[:1], g(x[:1]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_mean, before)  # eval does not update the statistics


def test_default_dropout_blocks_follow_pix2pix() -> None:
    g = UNetGenerator(UNetConfig(ngf=1))  # depth 8: dropout in levels 4, 5, 6
    levels = [i for i, b in enumerate(g.blocks()) if any(isinstance(m, nn.Dropout) for m in b.up)]
    assert levels == [4, 5, 6]


# --- gradients and initialisation --------------------------------------------------------------------


def test_gradient_reaches_the_first_layers() -> None:
    g, d = small_unet(), PatchDiscriminator(PatchConfig(ndf=2))
    x = torch.randn(2, 3, 32, 32)
    d(x, g(x)).mean().backward()
    assert g.blocks()[0].down[0].weight.grad.abs().sum() > 0
    assert d.layers[0].weight.grad.abs().sum() > 0


def test_init_statistics() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(UNetConfig(ngf=16, depth=5))
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.numel() > 100_000
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs if m.bias is not None)
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight for m in norms])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01)
    assert 0.01 < scales.std().item() < 0.03
    assert all(torch.count_nonzero(m.bias) == 0 for m in norms)


def test_init_weights_resets_a_module() -> None:
    conv = nn.Conv2d(3, 64, 4)
    nn.init.constant_(conv.weight, 1.0)
    init_weights(conv, std=0.5)
    assert conv.weight.std().item() == pytest.approx(0.5, rel=0.1)
    assert torch.count_nonzero(conv.bias) == 0


# --- discriminator -----------------------------------------------------------------------------------


def test_patch_map_sizes_and_raw_logits() -> None:
    d = PatchDiscriminator(PatchConfig(ndf=2)).eval()
    a = torch.randn(2, 3, 256, 256)
    assert d(a, a).shape == (2, 1, 30, 30)
    b = torch.randn(1, 3, 100, 160)
    assert d(b, b).shape == (1, 1, 10, 18)  # 100 -> 50 -> 25 -> 12 -> 11 -> 10; 160 -> ... -> 18
    assert d.layers[0].in_channels == 6
    assert not isinstance(d.layers[-1], nn.Sigmoid)


def test_discriminator_rejects_mismatched_pair() -> None:
    d = PatchDiscriminator(PatchConfig(ndf=2))
    with pytest.raises(ValueError, match="same shape"):
        d(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 32, 32))


def test_networks_from_budget() -> None:
    budget = get_budget("quick")
    g, d = generator_from_budget(budget), discriminator_from_budget(budget)
    assert (g.config.ngf, g.config.depth) == (budget.ngf, budget.depth)
    assert d.config.ndf == budget.ndf and d.config.n_layers == 3
    assert generator_from_budget(budget, skip=False).config.skip is False


# --- saving and loading ------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path) -> None:
    g = small_unet(norm="instance", n_dropout=1)
    g.train()
    g(torch.randn(2, 3, 16, 16))  # move the weights' buffers away from their initial values
    path = save_generator(g, tmp_path / "sub" / "g.safetensors")
    loaded = load_generator(path)
    assert loaded.config == g.config
    assert not loaded.training
    for (name, a), (_, b) in zip(g.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), g.eval()(x))


def test_save_load_keeps_batchnorm_running_statistics(tmp_path) -> None:
    g = small_unet().train()
    g(torch.randn(4, 3, 16, 16) + 3)
    loaded = load_generator(save_generator(g, tmp_path / "g.safetensors"))
    bn = [m for m in loaded.modules() if isinstance(m, nn.BatchNorm2d)][0]
    assert bn.num_batches_tracked.item() == 1
    assert torch.count_nonzero(bn.running_mean) > 0


def test_load_missing_file_names_it(tmp_path) -> None:
    path = tmp_path / "nothing.safetensors"
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        load_generator(path)


def test_load_corrupt_file_names_it(tmp_path) -> None:
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ModelFileError, match="corrupt.safetensors"):
        load_generator(path)


def test_load_truncated_file_names_it(tmp_path) -> None:
    path = save_generator(small_unet(), tmp_path / "cut.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="cut.safetensors"):
        load_generator(path)


def test_load_foreign_safetensors_file_names_it(tmp_path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="other.safetensors.*not an expolib generator"):
        load_generator(path)


def test_load_mismatched_weights_names_the_file(tmp_path) -> None:
    path = tmp_path / "mismatch.safetensors"
    g = small_unet()
    tensors = {k: v.contiguous() for k, v in g.state_dict().items() if "running" not in k}
    metadata = {"format": "expolib.UNetGenerator", "config": '{"ngf": 4, "depth": 4}'}
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ModelFileError, match="mismatch.safetensors.*do not match"):
        load_generator(path)


def test_save_rejects_other_models(tmp_path) -> None:
    with pytest.raises(TypeError, match="UNetGenerator"):
        save_generator(PatchDiscriminator(PatchConfig(ndf=2)), tmp_path / "d.safetensors")


def test_save_half_precision_halves_the_file_and_loads_as_float32(tmp_path) -> None:
    g = small_unet().eval()
    full = save_generator(g, tmp_path / "full.safetensors")
    half = save_generator(g, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_generator(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), g(x), atol=5e-3, rtol=0)


def test_save_half_refuses_values_beyond_float16(tmp_path) -> None:
    g = small_unet()
    with torch.no_grad():
        next(g.parameters()).view(-1)[0] = 1e6
    with pytest.raises(ValueError, match="float16"):
        save_generator(g, tmp_path / "g.safetensors", half=True)


# --- the factory -------------------------------------------------------------------------------------


def test_factory_builds_the_network_a_config_names() -> None:
    g = build_generator(UNetConfig(ngf=2, depth=3))
    d = build_discriminator(PatchConfig(ndf=2, n_layers=2))
    assert type(g) is UNetGenerator and g.config.depth == 3 and g.working_side is None
    assert type(d) is PatchDiscriminator and d.config.n_layers == 2
    with pytest.raises(TypeError, match="no generator is built from a PatchConfig"):
        build_generator(PatchConfig())
    with pytest.raises(TypeError, match="no discriminator is built from a UNetConfig"):
        build_discriminator(UNetConfig())


def test_saved_config_leaves_out_how_the_network_computes() -> None:
    values = config_to_dict(UNetConfig(ngf=2, gemm_upsampling=True))
    assert "gemm_upsampling" not in values and values["ngf"] == 2


@dataclass
class TinyConfig:
    """A second generator architecture, as a newcomer would add one."""

    channels: int = 3
    scale: float = field(default=1.0, metadata={"saved": False})


class TinyGenerator(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.mix = nn.Conv2d(config.channels, config.channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mix(x))


def test_a_registered_architecture_saves_loads_and_exports(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(factory.GENERATORS, "tiny", Architecture("tiny", TinyConfig, TinyGenerator))
    g = build_generator(TinyConfig(scale=2.0))
    path = save_generator(g, tmp_path / "tiny.safetensors", working_side=64)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["architecture"] == "tiny" and json.loads(metadata["config"]) == {"channels": 3}
    loaded = load_generator(path)
    assert type(loaded) is TinyGenerator and loaded.working_side == 64
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(loaded(x), g(x))
    state = generator_checkpoint(g, working_side=None)
    assert state["generator_architecture"] == "tiny"
    assert type(generator_from_checkpoint(state)) is TinyGenerator


def test_unknown_architecture_in_a_file_is_named(tmp_path) -> None:
    path = save_generator(small_unet(), tmp_path / "g.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = {k: v.contiguous() for k, v in small_unet().state_dict().items()}
    save_file(tensors, str(path), metadata={**metadata, "architecture": "vit"})
    with pytest.raises(ModelFileError, match="g.safetensors.*unknown generator architecture 'vit'"):
        load_generator(path)


def test_files_written_before_the_architecture_was_recorded_load_as_a_unet(tmp_path) -> None:
    g = small_unet().eval()
    path = tmp_path / "old.safetensors"
    config = config_to_dict(g.config)
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(path),
              metadata={"format": "expolib.UNetGenerator", "config": json.dumps(config),
                        "working_side": "96"})
    loaded = load_generator(path)
    assert loaded.config == g.config and loaded.working_side == 96


# --- checkpoints ------------------------------------------------------------------------------------


def test_generator_checkpoint_round_trip_and_export(tmp_path) -> None:
    g = small_unet(residual=True).eval()
    state = generator_checkpoint(g, g.config, working_side=80, config={"lr": 1e-4}, epoch=2)
    assert state["format"] == "expolib.generator/1" and state["epoch"] == 2
    assert state["generator_config"]["residual"] is True and state["working_side"] == 80
    torch.save(state, tmp_path / "best.pt")
    back = generator_from_checkpoint(tmp_path / "best.pt")
    assert back.config == g.config and back.working_side == 80 and not back.training
    exported = load_generator(export_checkpoint(tmp_path / "best.pt", tmp_path / "best.safetensors"))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(exported(x), g(x))
    assert exported.working_side == 80


def test_older_checkpoints_read_the_generator_from_the_run_settings() -> None:
    g = small_unet(norm="instance", upsample="bilinear")
    run = {"ngf": 4, "depth": 4, "norm": "instance", "upsample": "bilinear", "residual": False,
           "image_size": 64, "crop_scale": 1.5, "lr": 2e-4}
    state = {"format": "expolib.train/1", "config": run, "generator": g.state_dict()}
    back = generator_from_checkpoint(state)
    assert back.config == g.config and back.working_side == 96
    run["crop_scale"] = None
    assert generator_from_checkpoint({"config": run, "generator": g.state_dict()}).working_side is None


def test_checkpoint_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="none.pt"):
        generator_from_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="junk.pt is not a readable"):
        generator_from_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="other.pt is not an expolib checkpoint holding a generator"):
        export_checkpoint(tmp_path / "other.pt", tmp_path / "g.safetensors")
    state = generator_checkpoint(small_unet(), working_side=None)
    state["generator_config"]["depth"] = 5
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(ModelFileError, match="shape.pt: the weights do not match"):
        generator_from_checkpoint(tmp_path / "shape.pt")
