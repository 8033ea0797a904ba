"""``python -m expolib bench``: it runs, prints its fields, and counts the FLOPs of a whole step (checked
against a count by hand of every convolution the step runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from expolib import cli
from expolib.benchmarks.trainstep import bench_step, matmul_peak, networks, run_bench, step_flops
from expolib.config import native_bf16
from expolib.training.config import TrainConfig, with_network_settings
from expolib.training.pix2pix import Pix2Pix, build_pix2pix

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread (conftest.py)


def test_bench_quick_prints_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["bench", "--quick", "--batch-sizes", "1,2", "--device", "cpu"])
    assert status == 0
    text = capsys.readouterr().out
    for field in ("matmul peak", "fp32", "bf16", "GFLOP/s", "ms/image", "images/s", "GFLOP/step", "of peak",
                  "pairs/s"):
        assert field in text, field
    rows = [line.split() for line in text.splitlines() if line.startswith("quick")]
    assert [int(row[2]) for row in rows] == [1, 2]  # one row per batch size
    for row in rows:
        assert float(row[3]) > 0 and float(row[7]) > 0  # ms per image and GFLOP/s were measured
        assert row[-1].endswith("%")


def test_bench_seeds_times_both_ways_for_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["bench", "--seeds", "--quick"])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 seeds at the experiment size")
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"l1", "pix2pix", "discriminator"}
    for row in rows.values():
        alone, batched, gain = re.search(r"another\s+([\d.]+) ms/step\s+batched\s+([\d.]+) ms/step\s+gain\s+([\d.]+)x",
                                         row).groups()
        assert float(alone) > 0 and float(batched) > 0
        assert float(gain) == pytest.approx(float(alone) / float(batched), rel=0.05)


def conv_flops(module: nn.Module, *inputs: torch.Tensor) -> list[int]:
    """Forward FLOPs of each convolution in the order one forward pass runs them, by hand: a multiply
    and an add per weight per output pixel, 2 Cin Cout k k Hout Wout for a convolution and, since a
    transposed convolution stamps its weights once per *input* pixel, 2 Cin Cout k k Hin Win for it."""
    counts: list[int] = []

    def count(m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        kh, kw = m.kernel_size
        h, w = (args[0] if isinstance(m, nn.ConvTranspose2d) else out).shape[-2:]
        counts.append(2 * m.in_channels * m.out_channels * kh * kw * h * w * out.shape[0])

    hooks = [m.register_forward_hook(count) for m in module.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        module(*inputs)
    for hook in hooks:
        hook.remove()
    return counts


def hand_count(model: Pix2Pix, x: torch.Tensor) -> int:
    """FLOPs of one training step from the convolutions alone (normalisation, activations and losses are
    elementwise and not counted). A backward pass costs a forward for the input gradient and one for
    the weight gradient, except where nothing needs them:

    - G: forward, then backward with both gradients, except its first layer (the photo needs none);
    - D's update: two forwards (real, detached fake), two backwards with both gradients, except the
      first layer (neither input pair needs one);
    - G's update: a third D forward, and a backward to the fake only (D frozen: no weight gradients).
    """
    g = conv_flops(model.generator, x)
    d = conv_flops(model.discriminator, x, x)
    generator = sum(g) + (2 * sum(g) - g[0])
    discriminator = 2 * sum(d) + 2 * (2 * sum(d) - d[0]) + sum(d) + sum(d)
    return generator + discriminator


@pytest.mark.parametrize("gemm", [False, True])
def test_step_flops_match_a_hand_count_of_the_convolutions(gemm: bool) -> None:
    torch.manual_seed(0)
    config = with_network_settings(TrainConfig(image_size=32, device="cpu", gemm_convolutions=gemm),
                                   ngf=4, ndf=4, depth=4, n_layers=2)
    model = build_pix2pix(config, config.runtime())
    x = torch.zeros(2, 3, 32, 32)
    expected = hand_count(model, x)
    assert step_flops(model, x, x) == expected
    assert step_flops(model, x[:1], x[:1]) * 2 == expected  # and in proportion to the batch


def test_bench_step_reports_the_flops_of_its_network() -> None:
    net = networks(quick=True)[0]
    row = bench_step(net, batch=2, device=torch.device("cpu"), repeats=1)
    config = with_network_settings(TrainConfig(batch_size=2, image_size=net.image_size, device="cpu"),
                                   ngf=net.ngf, ndf=net.ndf, depth=net.depth)
    side = net.image_size
    expected = hand_count(build_pix2pix(config, config.runtime()), torch.zeros(2, 3, side, side))
    assert row["gflop_per_step"] * 1e9 == pytest.approx(expected, rel=1e-9)
    assert row["ms_per_image"] > 0 and row["gflops"] > 0


def test_matmul_peak_is_measured() -> None:
    peak = matmul_peak("fp32", "cpu", quick=True)
    assert peak["gflops"] > 0 and 256 <= peak["side"] <= 1024


def test_bf16_on_a_cpu_without_it_is_skipped_not_emulated() -> None:
    lines: list[str] = []
    results = run_bench(devices=["cpu"], precision="bf16", batch_sizes=(1,), quick=True, pipeline_seconds=0.1,
                        out=lines.append)
    text = "\n".join(lines)
    cpu = results["devices"]["cpu"]
    assert cpu["peaks"]["fp32"] > 0 and cpu["peaks"]["bf16"] > 0  # both peaks are measured either way
    if native_bf16(torch.device("cpu")):
        assert len(cpu["steps"]) == 1 and "skipped" not in text
    else:
        assert cpu["steps"] == [] and "skipped" in text


def test_bad_batch_sizes_are_refused() -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--quick", "--batch-sizes", "0,x"])


def test_end_to_end_bench_reports_both_sources_against_the_bare_step(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--end-to-end", "--quick", "--device", "cpu", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "bare step" in out and "plain pix2pix step" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] in (["embedded"], ["msec"])}
    assert set(rows) == {"embedded", "msec"}
    for cells in rows.values():
        assert float(cells[1]) > 0 and cells[2].endswith("%")


def test_the_generated_msec_folder_reads_as_msec(tmp_path: Path) -> None:
    from expolib.benchmarks.endtoend import write_msec_folder
    from expolib.data.msec import MSECPairs

    root = write_msec_folder(tmp_path / "msec", scenes=3, side=80)
    pairs = MSECPairs(root, "train", size=32)
    assert len(pairs) == 3 * 5 and len(pairs.scenes) == 3
    assert sorted({r[2] for r in pairs.records}) == [-1.5, -1.0, 0.0, 1.0, 1.5]
    item = pairs[0]
    assert item["input"].shape == (3, 32, 32) and item["input"].min() >= -1 and item["input"].max() <= 1
