"""What the benchmarks share: timing a call on a device, and where their lines of text go."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Optional

import torch

#: Where a benchmark's lines of text go (``print``, say); None: nowhere, the numbers only.
Out = Optional[Callable[[str], Any]]


def say(out: Out, line: str) -> None:
    """Give ``line`` to ``out``, when there is one."""
    if out is not None:
        out(line)


def sync(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (a GPU runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def best_time(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, float]:
    """(best, median) seconds of ``repeats`` calls of ``fn`` (after the caller's warm-up)."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


__all__ = ["Out", "best_time", "say", "sync"]
