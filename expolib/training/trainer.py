"""The training loop: batches in, checkpoints and a history out, on one process or many.

- :class:`Trainer` feeds a :class:`expolib.training.pix2pix.Pix2Pix` batches on CUDA, MPS or the CPU, one
  process or many (``torchrun``), logs a :class:`History`, validates, saves image grids and checkpoints
  (``last.pt``, ``best.pt``), resumes where a run stopped, and stops with
  :class:`expolib.training.pix2pix.TrainingDiverged` on a NaN loss.
- :func:`expolib.training.validation.validate` (re-exported here): L1 and PSNR on the validation set, and a
  grid of images.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from expolib.config import pick_device, seed_everything
from expolib.networks.modelfile import save_generator
from expolib.networks.models import PatchDiscriminator, UNetGenerator
from expolib.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    ResumableBatches,
    atomic_save,
    check_resumable,
    generator_checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    rng_state,
    set_rng_state,
    working_side,
)
from expolib.training.config import TrainConfig, lr_factor
from expolib.training.distributed import gather, init_distributed, stop_agreed
from expolib.training.history import BATCH_KEYS, History
from expolib.training.pix2pix import Pix2Pix, TrainingDiverged
from expolib.training.validation import validate, validation_loader

PathLike = Union[str, os.PathLike]
LOG_EVERY = 10  # steps between two reads of the losses (and bar updates): the step itself never waits


# ----------------------------------------------------------------------------------------------------
# The run's state


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


def _epoch_line(row: dict[str, float], epochs: int, validated: bool) -> str:
    """The one line a finished epoch reports."""
    extra = f", val L1 {row['val_l1']:.4f}, val PSNR {row['val_psnr']:.2f} dB" if validated else ""
    return (f"epoch {int(row['epoch']) + 1}/{epochs}: G L1 {row['g_l1']:.4f}, G adv {row['g_adv']:.3f}, "
            f"D real {row['d_real']:.3f}, D fake {row['d_fake']:.3f}{extra}")


@contextlib.contextmanager
def _sigint_stops(state: RunState, report: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C, or SIGTERM (what ``docker stop``, SLURM and Kubernetes send): finish the step,
    save, stop. A second one interrupts at once."""

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


def render_where(config: TrainConfig, device: torch.device, train_set: Dataset) -> Optional[str]:
    """Where the training set's pairs are rendered: "device", "loader", or None for a set that does
    not render (files, tensors). ``config.render_on`` decides; auto is the device, except on a CPU
    with DataLoader workers (they render in parallel with the step)."""
    if not (hasattr(train_set, "draw") and hasattr(train_set, "render_batch")):
        return None
    if config.render_on is not None:
        return config.render_on
    return "loader" if device.type == "cpu" and config.num_workers > 0 else "device"


# ----------------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Train a :class:`Pix2Pix` on ``train_set`` (items ``{"input", "target", ...}`` in [-1, 1]).

    Writes to ``config.out_dir``: ``last.pt`` (everything a resumed run needs, on the schedule that
    :class:`TrainConfig` describes), ``best.pt`` (the generator and the configuration at the lowest
    validation L1, or training L1 without a validation set: what an export needs, no optimiser state),
    ``history.jsonl``, ``val_epoch_NNN.jpg`` (inputs, outputs and targets of the first validation batch,
    one row each; JPEG quality 90, to keep run folders small). One DataLoader serves the whole run
    (workers are not restarted each epoch), and the step never waits for the device: losses are read
    every :data:`LOG_EVERY` steps, and at checkpoints and epoch ends. Under
    ``torchrun`` every process trains on its share of each epoch and only rank 0 writes files and
    reports progress (a bar, and one line per epoch through ``report``: stderr by default).

    Resuming is exact on the CPU: the data order depends only on (seed, epoch), each pair's
    augmentation only on (seed, epoch, index), with or without DataLoader workers, and the checkpoint
    holds every random state the step uses. That needs the same batch size, crop size and steps per
    epoch (a checkpoint with others is refused), the same training set and the same number of
    processes. On GPUs, whose kernels are not all bitwise reproducible, a resumed run matches an
    uninterrupted one statistically.
    """

    def __init__(self, config: TrainConfig, train_set: Dataset, val_set: Optional[Dataset] = None,
                 report: Optional[Callable[[str], None]] = None) -> None:
        self.config, self.train_set, self.val_set = config, train_set, val_set
        self.process = init_distributed(config.device)
        self._report = report or (lambda message: tqdm.write(message, file=sys.stderr))
        if self.process.world_size > 1 and torch.cuda.is_available() and config.device in (None, "cuda"):
            device = torch.device("cuda", self.process.local_rank)
        else:
            device = pick_device(config.device)
        # each process its own random stream (dropout, augmentation); DDP gives all of them rank 0's
        # initial weights
        seed_everything(config.seed + self.process.rank)
        self.model = Pix2Pix(config, device, distributed=self.process.world_size > 1)
        self.device = self.model.device
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.model.opt_g, lambda e: lr_factor(config, e))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.model.opt_d, lambda e: lr_factor(config, e))
        self.out_dir = Path(config.out_dir)
        self.history = History()
        self.epoch = 0  # the epoch in progress (== config.epochs when done)
        self.step_in_epoch = 0  # steps of that epoch already done
        self.global_step = 0
        self.best = math.inf
        self.render_on = render_where(config, self.device, train_set)
        self.batches = ResumableBatches(train_set, config, self.process.rank, self.process.world_size,
                                        pin_memory=self.device.type == "cuda",
                                        draw=self.render_on == "device")
        self.steps_per_epoch = self.batches.steps_per_epoch
        self._written = (0, 0)  # history rows already in history.jsonl
        self.state = RunState(rng=rng_state(self.device))
        self._pending: list[tuple[int, int, float, torch.Tensor]] = []  # (epoch, step, lr, 6 numbers)
        self._saved_at = self._validated_at = time.monotonic()
        self._validated_step = 0
        self._val_loader: Optional[DataLoader] = None

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def generator(self) -> UNetGenerator:
        return self.model.generator

    @property
    def discriminator(self) -> PatchDiscriminator:
        return self.model.discriminator

    def _print(self, message: str) -> None:
        if self.process.main:
            self._report(message)

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: tensors, numbers, strings and lists/dicts of them.
        Under ``torchrun`` every process must call it (the random states are gathered)."""
        self._flush()
        return {
            "format": CHECKPOINT_FORMAT, "config": self.config.to_dict(), "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "world_size": self.process.world_size,
            **{key: part.state_dict() for key, part in self._parts().items()},
            "scaler": self.model.scaler.state_dict(), "rng": gather(self.state.rng, self.process),
            "history": self.history.to_dict(), "best": self.best,
        }

    def _parts(self) -> dict[str, Any]:
        """What a checkpoint holds the state of, by key: networks, optimisers, schedulers."""
        return {"generator": self.generator, "discriminator": self.discriminator, "opt_g": self.model.opt_g,
                "opt_d": self.model.opt_d, "sched_g": self.sched_g, "sched_d": self.sched_d}

    def save_checkpoint(self, best: bool = False) -> Optional[Path]:
        """Write ``last.pt`` (and ``best.pt`` when ``best``) atomically; every process must call it,
        only rank 0 writes. Returns the path written (None on other ranks)."""
        state = self.state_dict()
        self._saved_at = time.monotonic()
        if not self.process.main:
            return None
        atomic_save(state, self.last_path)
        if best:
            self.save_best()
        self._written = self.history.write_jsonl(self.out_dir / "history.jsonl", self._written)
        return self.last_path

    def save_best(self) -> Path:
        """Write ``best.pt``: the generator and the configuration now (what
        :func:`expolib.training.checkpoint.export_checkpoint` needs), not the optimisers."""
        atomic_save(generator_checkpoint(self.generator, self.config, self.epoch, self.global_step,
                                         self.best), self.best_path)
        return self.best_path

    def load_state_dict(self, state: dict[str, Any], source: PathLike = "checkpoint") -> None:
        """Restore a :meth:`state_dict` (networks, optimisers, schedulers, scaler, position, RNG, history)."""
        check_resumable(state, self.config, source)
        try:
            for key, part in self._parts().items():
                part.load_state_dict(state[key])
            if state["scaler"] and self.model.scaler.is_enabled():  # empty when saved without fp16
                self.model.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise CheckpointError(f"{source} does not fit this run: {error}") from error
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step, self.best = int(state["global_step"]), float(state["best"])
        self.history = History.from_dict(state["history"])
        rng = state["rng"]
        if len(rng) != self.process.world_size:
            self._print(f"note: {source} was written by {len(rng)} process(es), this run has "
                        f"{self.process.world_size}: the random streams will differ from an "
                        "uninterrupted run")
        set_rng_state(rng[self.process.rank % len(rng)], self.device)
        self.state.reach_boundary(self.device)
        self._written = (0, 0)  # rewrite history.jsonl from the checkpoint's history

    def export_generator(self, path: PathLike, half: bool = False) -> Path:
        """Save the generator for shipping (safetensors with its configuration), see
        :func:`expolib.networks.modelfile.save_generator`; ``half=True`` stores its floats as float16 (half the
        size). Load it back with :func:`expolib.networks.modelfile.load_generator`."""
        return save_generator(self.generator, path, half=half, working_side=working_side(self.config))

    def validate(self, save_grid: Optional[PathLike] = None) -> dict[str, float]:
        """Validation L1 and PSNR of the generator now, see :func:`validate`."""
        if self.val_set is not None and self._val_loader is None:
            self._val_loader = validation_loader(self.val_set, self.config)
        return validate(self.model, self.val_set, self.config, save_grid, self._val_loader)

    # -- the loop ---------------------------------------------------------------------------------

    def fit(self, resume: Union[bool, PathLike] = False, max_steps: Optional[int] = None) -> History:
        """Train until ``config.epochs`` are done and return the :class:`History`.

        ``resume=True`` continues from ``out_dir/last.pt`` when it exists (a fresh start otherwise);
        a path resumes from that file. ``max_steps`` stops (with a checkpoint) after that many steps
        in this call. Ctrl-C finishes the current step, saves ``last.pt`` and raises KeyboardInterrupt.
        Any other error (a photo that cannot be read, a full disk, running out of memory) also saves
        ``last.pt`` when it struck between two steps, so that no finished step is lost, and is then
        raised again; an error in the middle of an update, or under ``torchrun``, keeps the last
        checkpoint as it was. A NaN or infinite loss raises :class:`TrainingDiverged` and leaves the
        checkpoints as they were; see there for what it leaves in memory.
        """
        if self.process.main:
            remove_stale_temporaries(self.out_dir)  # left by a run killed while it was writing
        if resume:
            path = self.last_path if resume is True else Path(resume)
            if path.is_dir():  # a run folder means the run's last checkpoint
                path = path / self.last_path.name
            if path.is_file() or resume is not True:
                self.load_state_dict(load_checkpoint(path), source=path)
                self._print(f"resumed from {path} at epoch {self.epoch + 1}, step {self.step_in_epoch}")
            else:
                self._print(f"no checkpoint at {path}: starting a new run")
        if self.process.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state.stop_asked, self.state.between_steps = False, True
        total = self.config.epochs * self.steps_per_epoch
        bar = tqdm(total=total, initial=min(total, self.epoch * self.steps_per_epoch + self.step_in_epoch),
                   desc="training", unit="step", disable=not (self.config.progress and self.process.main),
                   dynamic_ncols=True)
        try:
            with _sigint_stops(self.state, self._print):
                self._loop(bar, max_steps)
        except TrainingDiverged:
            raise  # the last good checkpoint must stay as it is
        except (KeyboardInterrupt, Exception) as error:
            self._save_after_stop(error)
            raise
        finally:
            bar.close()
        return self.history

    def _save_after_stop(self, error: BaseException) -> None:
        """Save ``last.pt`` after Ctrl-C or an unexpected error when the run is between two steps."""
        interrupted = isinstance(error, KeyboardInterrupt)
        what = "interrupted" if interrupted else f"{type(error).__name__}"
        where = f"at epoch {self.epoch + 1}, step {self.step_in_epoch}"
        if self.process.world_size > 1 and not interrupted:  # a checkpoint is a collective
            self._print(f"{what} {where}: the last checkpoint was kept as it was")
        elif not self.state.between_steps:
            self._print(f"{what} {where}, in the middle of an update: the last checkpoint was kept as it was")
        else:
            self._flush()  # a diverged step found here raises TrainingDiverged: nothing is saved
            try:
                path = self.save_checkpoint()
            except Exception as save_error:  # e.g. the disk is full: report it, raise the first error
                self._print(f"{what} {where}; saving a checkpoint failed too: "
                            f"{type(save_error).__name__}: {save_error}")
                return
            fix = "" if interrupted else "fix the cause, then "
            self._print(f"{what} {where}: saved {path}; {fix}continue with fit(resume=True) or "
                        "`python -m expolib train --resume`")

    # -- the losses, read in bulk -----------------------------------------------------------------

    def _flush(self) -> None:
        """Read the losses of the steps since the last flush from the device (one wait for all of
        them), add them to the history, and raise :class:`TrainingDiverged` at the first step whose
        loss was not finite (its update was skipped; the checkpoints are still the last good ones)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        numbers = torch.stack([values for *_, values in pending])  # (steps, 6)
        bad = (~torch.isfinite(numbers[:, 4:])).any(dim=1)
        if self.process.world_size > 1:  # every process stops at the same flush, or none does
            bad = bad.to(torch.float32)
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
            bad = bad > 0
        rows, flags = numbers.tolist(), bad.tolist()
        first = self.global_step - len(pending) + 1  # global step of pending[0]
        for offset, ((epoch, step, lr, _), values, diverged) in enumerate(zip(pending, rows, flags)):
            if diverged:
                who, value = ("discriminator", values[4]) if not math.isfinite(values[4]) else \
                    ("generator", values[5])
                detail = f"the {who}'s loss is {value}" if not math.isfinite(value) else \
                    "another process's loss is not finite"
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1}, step {step} (global step {first + offset}): "
                    f"{detail}; the checkpoints in {self.out_dir} were left as they were (try a lower "
                    "learning rate or amp=False)"
                )
            self.history.batches.append({"epoch": epoch, "step": first + offset, "lr": lr,
                                         **dict(zip(BATCH_KEYS, values[:4]))})

    def _log(self, bar: tqdm, done: int, started: float) -> None:
        """Flush the losses and show their running means and the images/s on the bar."""
        self._flush()
        seconds = max(time.perf_counter() - started, 1e-9)
        rate = done * self.config.batch_size * self.process.world_size / seconds
        rows = [r for r in self.history.batches[-self.steps_per_epoch:] if r["epoch"] == self.epoch]
        means = {k: f"{np.mean([r[k] for r in rows]):.3g}" for k in BATCH_KEYS} if rows else {}
        bar.set_postfix({"epoch": self.epoch + 1, "img/s": f"{rate:.3g}", **means}, refresh=False)

    def _due(self, every_minutes: float, since: float) -> bool:
        return every_minutes > 0 and time.monotonic() - since >= 60.0 * every_minutes

    # -- the loop ---------------------------------------------------------------------------------

    def _loop(self, bar: tqdm, max_steps: Optional[int]) -> None:
        config, done, started = self.config, 0, time.perf_counter()
        estimate_at = min(20, max(3, bar.total // 20))  # steps after which the run's length is estimated
        self.model.train()
        batches = iter(self.batches.run(self.epoch, self.step_in_epoch))  # one loader for the whole run
        try:
            while self.epoch < config.epochs:
                epoch, lr = self.epoch, self.model.opt_g.param_groups[0]["lr"]
                epoch_start, epoch_steps = time.perf_counter(), 0
                while self.step_in_epoch < self.steps_per_epoch:
                    if stop_agreed(self.state.stop_asked, self.process, self.device):
                        raise KeyboardInterrupt
                    if max_steps is not None and done >= max_steps:
                        self.save_checkpoint()
                        bar.total = bar.n  # a planned stop: the bar ends full, not "interrupted"
                        self._print(f"stopped after {done} steps (max_steps) at epoch {epoch + 1}, "
                                    f"step {self.step_in_epoch}; saved {self.last_path}")
                        return
                    batch = next(batches)
                    inputs, targets = self._inputs(batch)
                    self.state.begin_update()
                    losses = self.model.train_step(inputs, targets, check=False)
                    values = torch.cat([torch.stack(list(losses)).float(), self.model.last_totals.float()])
                    self._pending.append((epoch, self.step_in_epoch + 1, lr, values))
                    self.step_in_epoch += 1
                    self.global_step += 1
                    self.state.reach_boundary(self.device)
                    done += 1
                    epoch_steps += 1
                    bar.update(1)
                    if done % LOG_EVERY == 0 or done == estimate_at:
                        self._log(bar, done, started)
                        if self._due(config.checkpoint_minutes, self._saved_at) and \
                                self.step_in_epoch < self.steps_per_epoch:
                            self.save_checkpoint()
                    if done == estimate_at:
                        left = (bar.total - bar.n) * (time.perf_counter() - started) / done
                        rate = done * config.batch_size * self.process.world_size / \
                            (time.perf_counter() - started)
                        self._print(f"{rate:.1f} images/s: about {left / 60:.1f} min for the "
                                    f"{bar.total - bar.n} steps left (validation and checkpoints not "
                                    "counted)")
                    # (at an epoch's end, _end_epoch decides)
                    if config.checkpoint_every and self.global_step % config.checkpoint_every == 0 and \
                            self.step_in_epoch < self.steps_per_epoch:
                        self.save_checkpoint()
                self._log(bar, max(done, 1), started)
                self._end_epoch(epoch, lr, time.perf_counter() - epoch_start, epoch_steps)
        finally:
            del batches  # ends the loader's workers now, not at garbage collection

    def _inputs(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The (input, target) tensors of a batch: rendered here, on the training device, when the
        training set renders its pairs there (see :mod:`expolib.imaging.render`), else as the loader gave them."""
        if self.render_on == "device":
            return self.train_set.render_batch(batch, self.device)  # type: ignore[attr-defined]
        return batch["input"], batch["target"]

    def _validation_due(self, last_epoch: bool) -> bool:
        if self.val_set is None or not self.process.main:
            return False
        if last_epoch:
            return True
        steps_ok = self.config.validate_every is None or \
            self.global_step - self._validated_step >= self.config.validate_every
        minutes_ok = self.config.validate_minutes <= 0 or self._due(self.config.validate_minutes,
                                                                    self._validated_at)
        return steps_ok and minutes_ok

    def _end_epoch(self, epoch: int, lr: float, seconds: float, steps: int) -> None:
        rows = [r for r in self.history.batches if r["epoch"] == epoch]  # includes steps before a resume
        means = {k: float(np.mean([r[k] for r in rows])) if rows else math.nan for k in BATCH_KEYS}
        metrics = {"val_l1": math.nan, "val_psnr": math.nan}
        last_epoch = epoch + 1 == self.config.epochs
        validated = self._validation_due(last_epoch)
        if validated:  # changes no state: an error here can still save the epoch's steps
            metrics = self.validate(save_grid=self.out_dir / f"val_epoch_{epoch + 1:03d}.jpg")
            self._validated_at, self._validated_step = time.monotonic(), self.global_step
        self.state.begin_update()
        images = steps * self.config.batch_size * self.process.world_size
        self.history.epochs.append({
            "epoch": epoch, "steps": len(rows), "lr": lr, **means, **metrics, "seconds": seconds,
            "images_per_second": images / seconds if seconds > 0 else math.nan,
        })
        self.sched_g.step()
        self.sched_d.step()
        self.epoch, self.step_in_epoch = epoch + 1, 0
        score = metrics["val_l1"] if self.val_set is not None else means["g_l1"]
        improved = math.isfinite(score) and score < self.best
        self.best = score if improved else self.best
        self.state.reach_boundary(self.device)
        if improved and self.process.main:
            self.save_best()
        every = self.config.checkpoint_every
        due = last_epoch or self._due(self.config.checkpoint_minutes, self._saved_at) or \
            bool(every and self.global_step % every == 0)
        if stop_agreed(due, self.process, self.device):
            self.save_checkpoint()
        elif self.process.main:  # the history file follows the epochs even between checkpoints
            self._written = self.history.write_jsonl(self.out_dir / "history.jsonl", self._written)
        self._print(_epoch_line(self.history.epochs[-1], self.config.epochs, validated))


__all__ = ["LOG_EVERY", "History", "RunState", "Trainer", "validate", "validation_loader"]
