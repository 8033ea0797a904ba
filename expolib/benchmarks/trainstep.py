"""How fast a training step is, and how fast the data pipeline delivers pairs (``python -m expolib bench``).

:func:`run_bench`: for each network configuration (pix2pix's defaults and the book's small one) and
batch size, it times :meth:`expolib.training.pix2pix.Pix2Pix.train_step` on random pairs, counts the
step's floating-point operations with ``torch.utils.flop_counter.FlopCounterMode`` (the three
discriminator forwards, the two discriminator backwards and the generator's forward and backward), and
compares the achieved rate with the machine's matrix-multiply peak, which it measures itself with a
large ``torch.mm`` at the same precision. It also reports how many training pairs per second the data
pipeline delivers (:func:`benchmark_pipeline`).

Results come back as numbers; a line of text per result goes to ``out`` when one is given.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from expolib.benchmarks.timing import Out, best_time, say
from expolib.config import get_budget, native_bf16, seed_everything
from expolib.networks.patchgan import PatchConfig
from expolib.networks.unet import UNetConfig
from expolib.training.config import TrainConfig
from expolib.training.pix2pix import Pix2Pix, build_pix2pix

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
        seconds, _ = best_time(lambda a=a, b=b: torch.mm(a, b), device, repeats=2 if quick else 3)
        best_rate = max(best_rate, 2 * side**3 / seconds / 1e9)
        if side >= limit or seconds * 8 > budget:  # the next size takes 8 times as long
            break
        side *= 2
    return {"gflops": best_rate, "side": float(side)}


def random_pairs(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random (input, target) pairs in [-1, 1] on ``device``, the same for a given size."""
    g = torch.Generator().manual_seed(batch * 1000 + size)
    inputs = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    targets = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    return inputs.to(device), targets.to(device)


def step_flops(model: Pix2Pix, inputs: torch.Tensor, targets: torch.Tensor) -> int:
    """Floating-point operations of one full training step (it runs the step: the weights change)."""
    with FlopCounterMode(display=False) as counter:
        model.train_step(inputs, targets, check=False)
    return int(counter.get_total_flops())


def bench_step(net: BenchNetwork, batch: int, device: torch.device, precision: str = "fp32",
               repeats: int = 3, channels_last: Optional[bool] = None,
               gemm_convolutions: Optional[bool] = None) -> dict[str, float]:
    """Time the training step of ``net`` at ``batch`` pairs as the trainer runs it (no host check of
    the losses): ms per image, images/s, FLOPs, GFLOP/s."""
    seed_everything(0)
    config = TrainConfig(batch_size=batch, image_size=net.image_size, amp=precision == "bf16",
                         generator=UNetConfig(ngf=net.ngf, depth=net.depth),
                         discriminator=PatchConfig(ndf=net.ndf), channels_last=channels_last,
                         gemm_convolutions=gemm_convolutions, device=str(device))
    model = build_pix2pix(config, config.runtime())
    inputs, targets = random_pairs(batch, net.image_size, device)
    flops = step_flops(model, inputs, targets)  # also the first warm-up step
    model.train_step(inputs, targets, check=False)
    best, median = best_time(lambda: model.train_step(inputs, targets, check=False), device, repeats)
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
              gemm_convolutions: Optional[bool] = None, out: Out = None) -> dict[str, Any]:
    """Run the whole benchmark and return the numbers; ``out`` (e.g. ``print``) gets a table as it goes."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    repeats = repeats if repeats is not None else (1 if quick else 3)
    results: dict[str, Any] = {"precision": precision, "devices": {}}
    say(out, f"expolib bench: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
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
        say(out, f"\n{name}: {label}; matmul peak " + ", ".join(
            f"{p} {v['gflops']:.1f} GFLOP/s (n={int(v['side'])})" for p, v in peaks.items())
            + ("" if native else " (bf16 emulated: no native support)"))
        results["devices"][name] = {"label": label, "peaks": {p: v["gflops"] for p, v in peaks.items()},
                                    "peak_gflops": peak["gflops"], "steps": []}
        if precision == "bf16" and not native:
            say(out, "training steps in bf16 skipped: emulated bf16 would be far slower than fp32 here")
            continue
        auto = TrainConfig(amp=precision == "bf16", channels_last=channels_last,
                           gemm_convolutions=gemm_convolutions, device=name)
        runtime = auto.runtime()  # what the trainer would choose
        cl, gemm = runtime.channels_last, runtime.gemm_convolutions
        say(out, f"training step, {precision}: channels-last {'on' if cl else 'off'}, "
            f"GEMM transposed convolutions {'on' if gemm else 'off'}")
        say(out, f"{'network':<10}{'size':>6}{'batch':>6}{'ms/image':>10}{'(median)':>10}{'images/s':>10}"
            f"{'GFLOP/step':>12}{'GFLOP/s':>9}{'of peak':>9}")
        rows = []
        for net in networks(quick):
            for batch in batch_sizes:
                row = bench_step(net, batch, device, precision, repeats, channels_last, gemm_convolutions)
                row.update(network=net.name, image_size=float(net.image_size),
                           peak_fraction=row["gflops"] / peak["gflops"])
                rows.append(row)
                say(out, f"{net.name:<10}{net.image_size:>6}{batch:>6}{row['ms_per_image']:>10.1f}"
                    f"{row['ms_per_image_median']:>10.1f}{row['images_per_second']:>10.2f}"
                    f"{row['gflop_per_step']:>12.1f}{row['gflops']:>9.1f}{row['peak_fraction']:>9.0%}")
        results["devices"][name]["steps"] = rows

    size = get_budget("quick").image_size if quick else 256
    seconds = pipeline_seconds if pipeline_seconds is not None else (0.5 if quick else 3.0)
    pipe = benchmark_pipeline(size=size, seconds=seconds)
    results["pipeline"] = pipe
    say(out, f"\ndata pipeline (EmbeddedPairs, {size}x{size} crops, augmented, one thread): "
        f"{pipe['pairs_per_second']:.1f} pairs/s ({pipe['ms_per_pair']:.1f} ms per pair)")
    return results


# ----------------------------------------------------------------------------------------------------
# The data pipeline


def benchmark_pipeline(size: int = 256, seconds: float = 5.0) -> dict[str, float]:
    """Training pairs per second that :class:`EmbeddedPairs` with augmentation delivers on one CPU thread.

    Returns ``{"pairs_per_second", "pairs", "seconds", "size", "ms_per_pair"}``; the thread count is
    restored afterwards.
    """
    from expolib.data.photos import embedded_codes
    from expolib.data.rendered import EmbeddedPairs

    dataset = EmbeddedPairs("train", size=size, augment=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        order = torch.randperm(len(dataset)).tolist()
        for name in {photo for _scene, photo in dataset.photos}:  # decode the photos before timing
            embedded_codes(name, dataset.max_side)
        pairs, start = 0, time.perf_counter()
        while True:
            dataset[order[pairs % len(order)]]
            pairs += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
    finally:
        torch.set_num_threads(threads)
    return {
        "pairs_per_second": pairs / elapsed,
        "pairs": float(pairs),
        "seconds": elapsed,
        "size": float(size),
        "ms_per_pair": 1000.0 * elapsed / pairs,
    }


__all__ = [
    "PRECISIONS", "BenchNetwork", "bench_step", "benchmark_pipeline", "matmul_peak", "networks",
    "random_pairs", "run_bench", "step_flops",
]
