"""What a run reports while it trains: the losses read from the device in bulk, and the lines it prints.

- :class:`PendingLosses` keeps each step's loss terms on the device, so that the step never waits for
  them, and reads them all at once (:meth:`PendingLosses.flush`) into the
  :class:`~expolib.training.history.History`, stopping at the first step whose loss was not finite.
- :class:`RunProgress` is the run's progress bar, its speed and the estimate of its length.
- :func:`epoch_line` and :func:`bar_postfix` format the loss terms, whatever the step named them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from expolib.progress import progress_bar
from expolib.training.distributed import Process
from expolib.training.history import History
from expolib.training.losses import TERM_LABELS
from expolib.training.pix2pix import TrainingDiverged

LOG_EVERY = 10  # steps between two reads of the losses (and bar updates): the step itself never waits


class PendingLosses:
    """The loss terms of the steps since the last :meth:`flush`, still on the device."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, int, float, tuple[str, ...], torch.Tensor]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, epoch: int, step: int, lr: float, terms: Mapping[str, torch.Tensor],
            totals: torch.Tensor) -> None:
        """One step's ``terms`` by name and its (D, G) ``totals``, at ``step`` of ``epoch``."""
        values = torch.cat([torch.stack(list(terms.values())).float(), totals.float()])
        self._rows.append((epoch, step, lr, tuple(terms), values))

    def flush(self, history: History, global_step: int, process: Process, out_dir: Path) -> None:
        """Read the pending losses from the device (one wait for all of them) into ``history``'s batch
        rows; ``global_step`` is the step of the last of them. Raise :class:`TrainingDiverged` at the
        first step whose total loss was not finite, in this or (under ``torchrun``) any process."""
        if not self._rows:
            return
        pending, self._rows = self._rows, []
        numbers = torch.stack([values for *_, values in pending])  # (steps, terms + 2)
        bad = (~torch.isfinite(numbers[:, -2:])).any(dim=1)
        if process.world_size > 1:  # every process stops at the same flush, or none does
            bad = bad.to(torch.float32)
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
            bad = bad > 0
        rows, flags = numbers.tolist(), bad.tolist()
        first = global_step - len(pending) + 1  # global step of pending[0]
        for offset, ((epoch, step, lr, names, _), values, diverged) in enumerate(zip(pending, rows, flags)):
            if diverged:
                d_total, g_total = values[-2:]
                who, value = ("discriminator", d_total) if not math.isfinite(d_total) else \
                    ("generator", g_total)
                detail = f"the {who}'s loss is {value}" if not math.isfinite(value) else \
                    "another process's loss is not finite"
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1}, step {step} (global step {first + offset}): "
                    f"{detail}; the checkpoints in {out_dir} were left as they were (try a lower "
                    "learning rate or amp=False)"
                )
            history.batches.append({"epoch": epoch, "step": first + offset, "lr": lr,
                                    **dict(zip(names, values[:len(names)]))})


class RunProgress:
    """A run's progress bar (``total`` steps, ``done_before`` of them already), the images per second
    since this call started, and one estimate of the time left after the first few steps."""

    def __init__(self, total: int, done_before: int, images_per_step: int, enabled: bool) -> None:
        self.bar = progress_bar(total=total, initial=min(total, done_before), desc="training", unit="step",
                        disable=not enabled, dynamic_ncols=True)
        self.images_per_step, self.started, self.done = images_per_step, time.perf_counter(), 0
        self.estimate_at = min(20, max(3, total // 20))  # steps after which the run's length is estimated

    def advance(self) -> None:
        """One more step done."""
        self.done += 1
        self.bar.update(1)

    @property
    def log_due(self) -> bool:
        """Whether to read the losses now: every :data:`LOG_EVERY` steps, and for the estimate."""
        return self.done % LOG_EVERY == 0 or self.done == self.estimate_at

    def rate(self) -> float:
        """Images per second since this call started."""
        return max(self.done, 1) * self.images_per_step / max(time.perf_counter() - self.started, 1e-9)

    def show(self, epoch: int, means: Mapping[str, float]) -> None:
        """The epoch, the speed and the running means of the loss terms on the bar."""
        self.bar.set_postfix(bar_postfix(epoch, self.rate(), means), refresh=False)

    def estimate(self) -> str:
        """What the run says about its length after its first steps."""
        seconds_per_step = (time.perf_counter() - self.started) / max(self.done, 1)
        return estimate_line(self.rate(), seconds_per_step, self.bar.total - self.bar.n)

    def end_planned(self) -> None:
        """A planned stop (``max_steps``): the bar ends full, not "interrupted"."""
        self.bar.total = self.bar.n

    def close(self) -> None:
        self.bar.close()


def epoch_line(row: Mapping[str, Any], terms: list[str], epochs: int, validated: bool) -> str:
    """The one line a finished epoch reports: its loss terms' means (those :data:`TERM_LABELS` names
    first, in its order), and the validation scores when it validated."""
    ordered = [t for t in TERM_LABELS if t in terms] + [t for t in terms if t not in TERM_LABELS]
    parts = []
    for term in ordered:
        label, fmt = TERM_LABELS.get(term, (term, ".4g"))
        parts.append(f"{label} {row[term]:{fmt}}")
    extra = f", val L1 {row['val_l1']:.4f}, val PSNR {row['val_psnr']:.2f} dB" if validated else ""
    return f"epoch {int(row['epoch']) + 1}/{epochs}: " + ", ".join(parts) + extra


def estimate_line(images_per_second: float, seconds_per_step: float, steps_left: int) -> str:
    """What a run says about its length after its first steps."""
    return (f"{images_per_second:.1f} images/s: about {steps_left * seconds_per_step / 60:.1f} min for the "
            f"{steps_left} steps left (validation and checkpoints not counted)")


def bar_postfix(epoch: int, rate: float, means: Mapping[str, float]) -> dict[str, Any]:
    """The progress bar's postfix: the epoch, images/s and the running means of the loss terms."""
    return {"epoch": epoch + 1, "img/s": f"{rate:.3g}", **{k: f"{v:.3g}" for k, v in means.items()}}


__all__ = ["LOG_EVERY", "PendingLosses", "RunProgress", "bar_postfix", "epoch_line", "estimate_line"]
