"""``python -m expolib bench``: how fast one training step is, and how close to the machine's limit.

For each network configuration (pix2pix's defaults and the book's small one) and batch size, it
times :meth:`expolib.train.Pix2Pix.train_step` on random pairs, counts the step's floating-point
operations with ``torch.utils.flop_counter.FlopCounterMode`` (the three discriminator forwards, the
two discriminator backwards and the generator's forward and backward), and compares the achieved
rate with the machine's matrix-multiply peak, which it measures itself with a large ``torch.mm`` at
the same precision. It also reports how many training pairs per second the data pipeline delivers.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from expolib.config import get_budget, seed_everything
from expolib.train import AUTO, Pix2Pix, TrainConfig, native_bf16, parse_switch

PRECISIONS = ("fp32", "bf16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class BenchNetwork:
    """A network configuration to time: widths, depth and the side of the square crops."""

    name: str
    ngf: int
    ndf: int
    depth: int
    image_size: int


def networks(quick: bool = False) -> list[BenchNetwork]:
    """pix2pix's defaults (unet_256) and the book's configuration (the standard budget); with
    ``quick``, only the quick budget's tiny one."""
    if quick:
        b = get_budget("quick")
        return [BenchNetwork("quick", b.ngf, b.ndf, b.depth, b.image_size)]
    b = get_budget("standard")
    return [
        BenchNetwork("pix2pix", 64, 64, 8, 256),
        BenchNetwork("book", b.ngf, b.ndf, b.depth, b.image_size),
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _best_time(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, float]:
    """(best, median) seconds of ``repeats`` calls of ``fn`` (after the caller's warm-up)."""
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def matmul_peak(precision: str = "fp32", device: torch.device | str = "cpu", quick: bool = False,
                max_side: int = 4096) -> dict[str, float]:
    """The machine's matrix-multiply rate in GFLOP/s: the best of a few ``torch.mm`` of n x n matrices.

    n grows from 256 (doubling) while the next multiply would take less than 2 s (0.2 s with ``quick``),
    up to ``max_side`` (1024 with ``quick``), so a slow precision stays short.
    """
    device = torch.device(device)
    dtype = _DTYPES[precision]
    limit, budget = (1024, 0.2) if quick else (max_side, 2.0)
    best_rate, side = 0.0, 256
    while True:
        a = torch.randn(side, side, device=device).to(dtype)
        b = torch.randn(side, side, device=device).to(dtype)
        torch.mm(a, b)  # warm-up (library initialisation, memory)
        seconds, _ = _best_time(lambda: torch.mm(a, b), device, repeats=2 if quick else 3)
        best_rate = max(best_rate, 2 * side**3 / seconds / 1e9)
        if side >= limit or seconds * 8 > budget:  # the next size takes 8 times as long
            break
        side *= 2
    return {"gflops": best_rate, "side": float(side)}


def _random_pairs(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(batch * 1000 + size)
    inputs = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    targets = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    return inputs.to(device), targets.to(device)


def step_flops(model: Pix2Pix, inputs: torch.Tensor, targets: torch.Tensor) -> int:
    """Floating-point operations of one full training step (it runs the step: the weights change)."""
    with FlopCounterMode(display=False) as counter:
        model.train_step(inputs, targets)
    return int(counter.get_total_flops())


def bench_step(net: BenchNetwork, batch: int, device: torch.device, precision: str = "fp32",
               repeats: int = 3, channels_last: Optional[bool] = None,
               gemm_convolutions: Optional[bool] = None) -> dict[str, float]:
    """Time the training step of ``net`` at ``batch`` pairs: ms per image, images/s, FLOPs, GFLOP/s."""
    seed_everything(0)
    config = TrainConfig(batch_size=batch, image_size=net.image_size, ngf=net.ngf, ndf=net.ndf,
                         depth=net.depth, amp=precision == "bf16", channels_last=channels_last,
                         gemm_convolutions=gemm_convolutions, device=str(device))
    model = Pix2Pix(config, device)
    inputs, targets = _random_pairs(batch, net.image_size, device)
    flops = step_flops(model, inputs, targets)  # also the first warm-up step
    model.train_step(inputs, targets)
    best, median = _best_time(lambda: model.train_step(inputs, targets), device, repeats)
    return {
        "batch": float(batch),
        "ms_per_image": 1000 * best / batch,
        "ms_per_image_median": 1000 * median / batch,
        "images_per_second": batch / best,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / best / 1e9,
    }


def run_bench(devices: Optional[list[str]] = None, precision: str = "fp32",
              batch_sizes: tuple[int, ...] = (1, 4), quick: bool = False, repeats: Optional[int] = None,
              pipeline_seconds: Optional[float] = None, channels_last: Optional[bool] = None,
              gemm_convolutions: Optional[bool] = None, out: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run the whole benchmark, print a table with ``out`` as it goes, and return the numbers."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    repeats = repeats if repeats is not None else (1 if quick else 3)
    results: dict[str, Any] = {"precision": precision, "devices": {}}
    out(f"expolib bench: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} CPU threads, precision {precision}")
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda":
            label = torch.cuda.get_device_name(device)
        else:
            label = f"CPU ({torch.backends.cpu.get_cpu_capability()})"
        peaks = {p: matmul_peak(p, device, quick=quick) for p in PRECISIONS}
        peak = peaks[precision]
        native = native_bf16(device)
        out(f"\n{name}: {label}; matmul peak " + ", ".join(
            f"{p} {v['gflops']:.1f} GFLOP/s (n={int(v['side'])})" for p, v in peaks.items())
            + ("" if native else " (bf16 emulated: no native support)"))
        results["devices"][name] = {"label": label, "peaks": {p: v["gflops"] for p, v in peaks.items()},
                                    "peak_gflops": peak["gflops"], "steps": []}
        if precision == "bf16" and not native:
            out("training steps in bf16 skipped: emulated bf16 would be far slower than fp32 here")
            continue
        cl = channels_last if channels_last is not None else device.type == "cuda"
        gemm = gemm_convolutions if gemm_convolutions is not None else device.type == "cpu"
        out(f"training step, {precision}: channels-last {'on' if cl else 'off'}, "
            f"GEMM transposed convolutions {'on' if gemm else 'off'}")
        out(f"{'network':<10}{'size':>6}{'batch':>6}{'ms/image':>10}{'(median)':>10}{'images/s':>10}"
            f"{'GFLOP/step':>12}{'GFLOP/s':>9}{'of peak':>9}")
        rows = []
        for net in networks(quick):
            for batch in batch_sizes:
                row = bench_step(net, batch, device, precision, repeats, channels_last, gemm_convolutions)
                row.update(network=net.name, image_size=float(net.image_size),
                           peak_fraction=row["gflops"] / peak["gflops"])
                rows.append(row)
                out(f"{net.name:<10}{net.image_size:>6}{batch:>6}{row['ms_per_image']:>10.1f}"
                    f"{row['ms_per_image_median']:>10.1f}{row['images_per_second']:>10.2f}"
                    f"{row['gflop_per_step']:>12.1f}{row['gflops']:>9.1f}{row['peak_fraction']:>9.0%}")
        results["devices"][name]["steps"] = rows

    from expolib.data import benchmark_pipeline

    size = get_budget("quick").image_size if quick else 256
    seconds = pipeline_seconds if pipeline_seconds is not None else (0.5 if quick else 3.0)
    pipe = benchmark_pipeline(size=size, seconds=seconds)
    results["pipeline"] = pipe
    out(f"\ndata pipeline (EmbeddedPairs, {size}x{size} crops, augmented, one thread): "
        f"{pipe['pairs_per_second']:.1f} pairs/s ({pipe['ms_per_pair']:.1f} ms per pair)")
    return results


def _auto(value: Any) -> Optional[bool]:
    return None if value is AUTO else value


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        message = f"expected comma-separated integers such as 1,4; got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return sizes


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``python -m expolib bench``."""
    parser = subparsers.add_parser(
        "bench",
        help="time a training step and the data pipeline on this machine",
        description=(
            "Time one pix2pix training step (D update on the detached fake, G update through the frozen D) "
            "for pix2pix's default networks (ngf=ndf=64, depth 8, 256x256) and the book's configuration "
            "(ngf=ndf=16, depth 7, 128x128), on the CPU and on the GPU when there is one. Reports ms per "
            "image, images per second, the FLOPs of one step, the achieved GFLOP/s and its fraction of the "
            "matrix-multiply peak that the command measures at the same precision, and the data "
            "pipeline's pairs per second."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny network, one repetition, short measurements (seconds; for tests)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32, or bf16 (autocast; skipped on devices without native bf16)")
    parser.add_argument("--batch-sizes", type=_batch_sizes, default=(1, 4), metavar="N[,N...]",
                        help="batch sizes to time")
    parser.add_argument("--device", action="append", default=None, metavar="DEVICE",
                        help="device to time (repeat for several; default: cpu, and cuda when present)")
    parser.add_argument("--channels-last", type=parse_switch, default=None, metavar="on|off|auto",
                        help="channels-last memory format (auto: as the trainer chooses, on for CUDA)")
    parser.add_argument("--gemm-convolutions", type=parse_switch, default=None, metavar="on|off|auto",
                        help="small transposed convolutions as matrix products (auto: as the trainer "
                             "chooses, on for the CPU)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps per measurement (default 3; 1 with --quick)")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    try:
        run_bench(devices=args.device, precision=args.precision, batch_sizes=args.batch_sizes,
                  quick=args.quick, repeats=args.repeats, channels_last=_auto(args.channels_last),
                  gemm_convolutions=_auto(args.gemm_convolutions), out=lambda line: print(line, flush=True))
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "BenchNetwork", "add_cli", "bench_step", "matmul_peak", "native_bf16", "networks", "run_bench",
    "step_flops",
]
