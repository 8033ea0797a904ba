"""How fast and how lean full-resolution correction is (``python -m expolib correct --benchmark``).

:func:`benchmark_fullres`: time and peak memory of both correction modes of
:func:`expolib.evaluation.infer.correct` on a large synthetic photo, and :func:`compare_modes`, their
PSNR on the embedded test photos. Results come back as numbers; a line of text per result goes to
``out`` when one is given.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from PIL import Image

from expolib.benchmarks.timing import Out, say
from expolib.evaluation.corrector import Corrector
from expolib.evaluation.infer import MODES, correct
from expolib.networks.modelfile import load_model, model_source


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
    from expolib.data.rendered import EmbeddedPairs
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
            "import json\nfrom expolib.benchmarks.fullres import _benchmark_worker\n"
            f"print(json.dumps(_benchmark_worker({group!r}, {float(megapixels)!r}, "
            f"{None if weights is None else str(weights)!r}, {int(working_side)})))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"benchmark of {', '.join(group)} failed:\n{done.stderr.strip()}")
        for r in json.loads(done.stdout.strip().splitlines()[-1]):
            results["modes"][r["mode"]] = r
            if verbose:
                say(out,
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
        say(out,
            f"PSNR on the embedded test photos (guided at {psnr_working_side} px): "
            f"guided {p['guided']:.2f} dB, "
            f"direct {p['direct']:.2f} dB, difference {p['difference']:+.2f} dB"
        )
    return results


__all__ = ["benchmark_fullres", "compare_modes", "embedded_test_pairs", "synthetic_photo"]
