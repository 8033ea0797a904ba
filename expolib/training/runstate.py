"""Where a run stands between two steps, what stops it, and when it saves and validates.

- :class:`RunState`: whether a checkpoint taken now would resume correctly, the random states of the
  last step boundary, and whether a stop was asked for.
- :func:`stop_on_signals`: the first Ctrl-C or SIGTERM asks the run to stop after the current step.
- :class:`Schedule`: when ``last.pt`` is written and validation runs (the rules are
  :class:`~expolib.training.config.TrainConfig`'s).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from expolib.training.checkpoint import rng_state
from expolib.training.config import TrainConfig


@dataclass
class RunState:
    """Where a run stands, for the loop and for whatever stops it.

    ``between_steps`` is False while the networks, optimisers and counters disagree (in the middle of
    an update or of an epoch's bookkeeping): a checkpoint then would not resume correctly. ``rng`` holds
    every random state at the last step boundary; ``stop_asked`` is set by Ctrl-C.
    """

    rng: dict[str, Any]
    between_steps: bool = True
    stop_asked: bool = False

    def begin_update(self) -> None:
        """From here on until :meth:`reach_boundary` a checkpoint would not resume correctly."""
        self.between_steps = False

    def reach_boundary(self, device: torch.device) -> None:
        """Networks, optimisers and counters agree again: remember the random states of this moment."""
        self.rng = rng_state(device)
        self.between_steps = True


@contextlib.contextmanager
def stop_on_signals(state: RunState, report: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C, or SIGTERM (what ``docker stop``, SLURM and Kubernetes send): finish the step,
    save, stop. A second one interrupts at once. The previous handlers are put back afterwards."""

    def handler(signum: int, frame: Any) -> None:
        if state.stop_asked:
            raise KeyboardInterrupt
        state.stop_asked = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        report(f"{name}: stopping after this step (Ctrl-C again to stop at once)")

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):  # not allowed here (some embedded interpreters)
                previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@dataclass
class Schedule:
    """When a run writes ``last.pt`` and validates, besides the end of the run: every
    ``checkpoint_every`` steps, every ``checkpoint_minutes``, and validation at an epoch's end at most
    every ``validate_every`` steps and ``validate_minutes`` minutes (always after the last epoch)."""

    config: TrainConfig
    saved_at: float = field(default_factory=time.monotonic)
    validated_at: float = field(default_factory=time.monotonic)
    validated_step: int = 0

    @staticmethod
    def _passed(minutes: float, since: float) -> bool:
        return minutes > 0 and time.monotonic() - since >= 60.0 * minutes

    def clock_due(self) -> bool:
        """Whether ``checkpoint_minutes`` have passed since the last save."""
        return self._passed(self.config.checkpoint_minutes, self.saved_at)

    def step_due(self, global_step: int) -> bool:
        """Whether ``global_step`` is one that ``checkpoint_every`` saves at."""
        every = self.config.checkpoint_every
        return bool(every and global_step % every == 0)

    def validation_due(self, global_step: int) -> bool:
        """Whether an epoch ending at ``global_step`` validates (the last epoch always does)."""
        steps_ok = self.config.validate_every is None or \
            global_step - self.validated_step >= self.config.validate_every
        minutes_ok = self.config.validate_minutes <= 0 or self._passed(self.config.validate_minutes,
                                                                       self.validated_at)
        return steps_ok and minutes_ok

    def saved(self) -> None:
        self.saved_at = time.monotonic()

    def validated(self, global_step: int) -> None:
        self.validated_at, self.validated_step = time.monotonic(), global_step


__all__ = ["RunState", "Schedule", "stop_on_signals"]
