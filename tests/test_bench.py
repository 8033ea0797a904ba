"""``python -m expolib bench``: it runs, prints its fields, and counts the FLOPs of a whole step."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from expolib import cli
from expolib.bench import bench_step, matmul_peak, native_bf16, networks, run_bench, step_flops
from expolib.train import Pix2Pix, TrainConfig


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
        ms_per_image, images_per_second = float(row[3]), float(row[5])
        assert ms_per_image > 0 and images_per_second == pytest.approx(1000 / ms_per_image, rel=0.02)
        assert row[-1].endswith("%")


def test_step_flops_cover_the_whole_step_and_grow_with_the_batch() -> None:
    torch.manual_seed(0)
    config = TrainConfig(image_size=32, ngf=4, ndf=4, depth=4, n_layers=2, device="cpu")
    model = Pix2Pix(config, "cpu")
    one = step_flops(model, torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    two = step_flops(model, torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32))
    assert one > 0 and two == 2 * one
    # more than the generator's forward and backward alone: the discriminator's passes are counted
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model.generator(x).sum().backward()
    assert one > counter.get_total_flops()


def test_bench_step_reports_consistent_numbers() -> None:
    row = bench_step(networks(quick=True)[0], batch=2, device=torch.device("cpu"), repeats=1)
    assert row["batch"] == 2
    assert row["images_per_second"] == pytest.approx(1000 / row["ms_per_image"])
    assert row["gflops"] == pytest.approx(row["gflop_per_step"] * row["images_per_second"] / 2)


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
