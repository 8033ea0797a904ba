"""Every benchmark of expolib: how fast a training step is, how fast pairs arrive, how fast and how
lean full-resolution correction is.

- :func:`run_bench` (``python -m expolib bench``): for each network configuration (pix2pix's defaults
  and the book's small one) and batch size, it times :meth:`expolib.training.pix2pix.Pix2Pix.train_step` on
  random pairs, counts the step's floating-point operations with
  ``torch.utils.flop_counter.FlopCounterMode`` (the three discriminator forwards, the two
  discriminator backwards and the generator's forward and backward), and compares the achieved rate
  with the machine's matrix-multiply peak, which it measures itself with a large ``torch.mm`` at the
  same precision. It also reports how many training pairs per second the data pipeline delivers
  (:func:`benchmark_pipeline`).
- :func:`benchmark_fullres` (``python -m expolib correct --benchmark``): time and peak memory of
  both correction modes of :func:`expolib.evaluation.infer.correct` on a large synthetic photo, and
  :func:`compare_modes`, their PSNR on the embedded test photos.

Results come back as numbers; a line of text per result goes to ``out`` when one is given.
"""

from __future__ import annotations

import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from expolib.config import get_budget, seed_everything
from expolib.evaluation.corrector import Corrector
from expolib.evaluation.infer import MODES, correct
from expolib.networks.pretrained import load_model, model_source
from expolib.training.config import TrainConfig
from expolib.training.pix2pix import Pix2Pix, device_defaults, native_bf16

Out = Optional[Callable[[str], Any]]


def _say(out: Out, line: str) -> None:
    if out is not None:
        out(line)


# ----------------------------------------------------------------------------------------------------
# The training step


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
        seconds, _ = _best_time(lambda a=a, b=b: torch.mm(a, b), device, repeats=2 if quick else 3)
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
        model.train_step(inputs, targets, check=False)
    return int(counter.get_total_flops())


def bench_step(net: BenchNetwork, batch: int, device: torch.device, precision: str = "fp32",
               repeats: int = 3, channels_last: Optional[bool] = None,
               gemm_convolutions: Optional[bool] = None) -> dict[str, float]:
    """Time the training step of ``net`` at ``batch`` pairs as the trainer runs it (no host check of
    the losses): ms per image, images/s, FLOPs, GFLOP/s."""
    seed_everything(0)
    config = TrainConfig(batch_size=batch, image_size=net.image_size, ngf=net.ngf, ndf=net.ndf,
                         depth=net.depth, amp=precision == "bf16", channels_last=channels_last,
                         gemm_convolutions=gemm_convolutions, device=str(device))
    model = Pix2Pix(config, device)
    inputs, targets = _random_pairs(batch, net.image_size, device)
    flops = step_flops(model, inputs, targets)  # also the first warm-up step
    model.train_step(inputs, targets, check=False)
    best, median = _best_time(lambda: model.train_step(inputs, targets, check=False), device, repeats)
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
    _say(out, f"expolib bench: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
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
        _say(out, f"\n{name}: {label}; matmul peak " + ", ".join(
            f"{p} {v['gflops']:.1f} GFLOP/s (n={int(v['side'])})" for p, v in peaks.items())
            + ("" if native else " (bf16 emulated: no native support)"))
        results["devices"][name] = {"label": label, "peaks": {p: v["gflops"] for p, v in peaks.items()},
                                    "peak_gflops": peak["gflops"], "steps": []}
        if precision == "bf16" and not native:
            _say(out, "training steps in bf16 skipped: emulated bf16 would be far slower than fp32 here")
            continue
        auto = TrainConfig(amp=precision == "bf16", channels_last=channels_last,
                           gemm_convolutions=gemm_convolutions, device=name)
        _, cl, gemm = device_defaults(auto, device)  # what the trainer would choose
        _say(out, f"training step, {precision}: channels-last {'on' if cl else 'off'}, "
            f"GEMM transposed convolutions {'on' if gemm else 'off'}")
        _say(out, f"{'network':<10}{'size':>6}{'batch':>6}{'ms/image':>10}{'(median)':>10}{'images/s':>10}"
            f"{'GFLOP/step':>12}{'GFLOP/s':>9}{'of peak':>9}")
        rows = []
        for net in networks(quick):
            for batch in batch_sizes:
                row = bench_step(net, batch, device, precision, repeats, channels_last, gemm_convolutions)
                row.update(network=net.name, image_size=float(net.image_size),
                           peak_fraction=row["gflops"] / peak["gflops"])
                rows.append(row)
                _say(out, f"{net.name:<10}{net.image_size:>6}{batch:>6}{row['ms_per_image']:>10.1f}"
                    f"{row['ms_per_image_median']:>10.1f}{row['images_per_second']:>10.2f}"
                    f"{row['gflop_per_step']:>12.1f}{row['gflops']:>9.1f}{row['peak_fraction']:>9.0%}")
        results["devices"][name]["steps"] = rows

    size = get_budget("quick").image_size if quick else 256
    seconds = pipeline_seconds if pipeline_seconds is not None else (0.5 if quick else 3.0)
    pipe = benchmark_pipeline(size=size, seconds=seconds)
    results["pipeline"] = pipe
    _say(out, f"\ndata pipeline (EmbeddedPairs, {size}x{size} crops, augmented, one thread): "
        f"{pipe['pairs_per_second']:.1f} pairs/s ({pipe['ms_per_pair']:.1f} ms per pair)")
    return results


# ----------------------------------------------------------------------------------------------------
# The data pipeline


def benchmark_pipeline(size: int = 256, seconds: float = 5.0) -> dict[str, float]:
    """Training pairs per second that :class:`EmbeddedPairs` with augmentation delivers on one CPU thread.

    Returns ``{"pairs_per_second", "pairs", "seconds", "size", "ms_per_pair"}``; the thread count is
    restored afterwards.
    """
    from expolib.data.sources import EmbeddedPairs, _embedded_codes

    dataset = EmbeddedPairs("train", size=size, augment=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        order = torch.randperm(len(dataset)).tolist()
        for name in {photo for _scene, photo in dataset.photos}:  # decode the photos before timing
            _embedded_codes(name, dataset.max_side)
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


# ----------------------------------------------------------------------------------------------------
# Full-resolution correction


def synthetic_photo(megapixels: float, ev: float = -1.0) -> np.ndarray:
    """A test photo of about ``megapixels`` (4:3): the embedded cat, rendered at ``ev`` and enlarged."""
    from skimage import data as skdata

    from expolib.imaging.exposure import render_exposure

    base = render_exposure(skdata.chelsea(), ev)
    width = int(round(math.sqrt(megapixels * 1e6 * 4 / 3)))
    height = int(round(width * 3 / 4))
    return np.array(Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC))


def _memory_kib() -> tuple[int, int]:
    """(current, peak) resident memory of this process in KiB.

    Linux reports both in /proc/self/status (VmRSS, VmHWM); elsewhere only the peak is known
    (``ru_maxrss``), and it stands in for both.
    """
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        peak = _maxrss_kib()
        return peak, peak


def _maxrss_kib() -> int:
    """The process's peak resident size in KiB from ``ru_maxrss``, which is in bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux and the BSDs
    return peak // 1024 if sys.platform == "darwin" else peak


def _reset_peak_memory() -> None:
    """Restart the peak-memory count from the current size (Linux: write 5 to /proc/self/clear_refs).

    Importing torch alone briefly peaks higher than correcting a small photo, so without a reset the
    peak would say nothing about the correction. Where the reset is not possible, nothing happens.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _benchmark_worker(
    modes: Sequence[str], megapixels: float, weights: Optional[str], working_side: int
) -> list[dict[str, Any]]:
    """Time each mode's correction of one photo in this process and measure how far the resident
    memory rose above its size before that correction (the peak count restarts for every mode)."""
    import gc

    model, source = load_model(weights), model_source(weights)
    photo = synthetic_photo(megapixels)
    results = []
    for mode in modes:
        # Warm-up on a corner: the first call of each operator pays one-off setup costs.
        correct(model, photo[:64, :64], mode=mode, working_side=min(64, working_side))
        gc.collect()
        _reset_peak_memory()
        before, _ = _memory_kib()
        start = time.perf_counter()
        correct(model, photo, mode=mode, working_side=working_side)
        seconds = time.perf_counter() - start
        _, peak = _memory_kib()
        results.append({
            "mode": mode, "megapixels": photo.shape[0] * photo.shape[1] / 1e6,
            "size": f"{photo.shape[1]}x{photo.shape[0]}", "seconds": seconds, "peak_mib": peak / 1024,
            "extra_peak_mib": max(0, peak - before) / 1024, "model": source,
            "threads": torch.get_num_threads(),
        })
    return results


def compare_modes(
    model: Corrector, pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, working_side: int = 256
) -> dict[str, float]:
    """Mean PSNR against the ground truth of guided and direct correction over (input, target) uint8 pairs."""
    from expolib.evaluation.metrics import psnr  # a heavy import (colour science), only when measuring

    scores: dict[str, list[float]] = {m: [] for m in MODES}
    for source, target in pairs:
        for m in MODES:
            scores[m].append(psnr(correct(model, source, mode=m, working_side=working_side), target))
    means = {m: float(np.mean(v)) for m, v in scores.items()}
    means["difference"] = means["guided"] - means["direct"]
    return means


def embedded_test_pairs(max_side: Optional[int] = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input, ground truth) uint8 pairs of the embedded test photos at every EV (native size by default)."""
    from expolib.data.sources import EmbeddedPairs
    from expolib.imaging.imageio import to_uint8_image

    dataset = EmbeddedPairs(split="test", size=None, augment=False, max_side=max_side)
    return [
        (to_uint8_image(item["input"], normalized=True), to_uint8_image(item["target"], normalized=True))
        for item in dataset
    ]


def benchmark_fullres(
    megapixels: float = 12.0,
    *,
    weights: Optional[Union[str, Path]] = None,
    working_side: int = 512,
    modes: Sequence[str] = MODES,
    psnr_working_side: int = 256,
    measure_psnr: bool = True,
    verbose: bool = True,
    out: Out = None,
) -> dict[str, Any]:
    """Time and peak memory of each mode on a ``megapixels`` photo (CPU), and the PSNR difference.

    The measurement runs in a fresh Python process, so that nothing of the caller's counts. Memory is
    the process's resident size (which, unlike ``tracemalloc``, counts what torch allocates): its peak
    during the correction (``peak_mib``) and how far that rose above the size just before it
    (``extra_peak_mib``, the model and the photo being already loaded). The PSNR of both modes is measured
    on the embedded test photos at every EV (native size, guided at ``psnr_working_side``) unless
    ``measure_psnr`` is False. Returns ``{"modes": {mode: {...}}, "psnr": {...}}``; with ``verbose``,
    ``out`` (e.g. ``print``) also gets one line per result.
    """
    results: dict[str, Any] = {"modes": {}}
    # With a resettable peak (Linux) one process measures every mode; elsewhere the peak only grows,
    # so each mode needs a process of its own.
    groups = [list(modes)] if Path("/proc/self/clear_refs").exists() else [[m] for m in modes]
    for group in groups:
        code = (
            "import json\nfrom expolib.benchmarks.bench import _benchmark_worker\n"
            f"print(json.dumps(_benchmark_worker({group!r}, {float(megapixels)!r}, "
            f"{None if weights is None else str(weights)!r}, {int(working_side)})))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"benchmark of {', '.join(group)} failed:\n{done.stderr.strip()}")
        for r in json.loads(done.stdout.strip().splitlines()[-1]):
            results["modes"][r["mode"]] = r
            if verbose:
                _say(out,
                    f"{r['mode']:>6}: {r['size']} ({r['megapixels']:.1f} MP) in {r['seconds']:.2f} s, "
                    f"peak memory {r['peak_mib']:.0f} MiB "
                    f"(+{r['extra_peak_mib']:.0f} MiB for the correction), "
                    f"{r['threads']} threads, {r['model']}"
                )
    if not measure_psnr:
        return results
    model = load_model(weights)
    results["psnr"] = compare_modes(model, embedded_test_pairs(), working_side=psnr_working_side)
    if verbose:
        p = results["psnr"]
        _say(out,
            f"PSNR on the embedded test photos (guided at {psnr_working_side} px): "
            f"guided {p['guided']:.2f} dB, "
            f"direct {p['direct']:.2f} dB, difference {p['difference']:+.2f} dB"
        )
    return results


__all__ = [
    "BenchNetwork", "bench_step", "benchmark_fullres", "benchmark_pipeline", "compare_modes",
    "embedded_test_pairs", "matmul_peak", "native_bf16", "networks", "run_bench", "step_flops",
    "synthetic_photo",
]
