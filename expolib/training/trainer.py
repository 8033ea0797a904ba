"""The training loop: batches in, checkpoints and a history out, on one process or many.

:class:`Trainer` takes a built :class:`~expolib.training.pix2pix.Pix2Pix` (its networks, optimisers,
runtime and process) and the data (a training set, optionally a validation set), and knows nothing of
how they were made: :func:`~expolib.training.pix2pix.prepare_pix2pix` and
:func:`~expolib.training.datasets.training_sets` make them. It feeds the step batches, logs a
:class:`History`, validates, saves image grids and checkpoints, resumes where a run stopped, and
stops with :class:`~expolib.training.pix2pix.TrainingDiverged` on a NaN loss.

What a run writes to ``config.out_dir``: ``last.pt`` (everything a resumed run needs, on the schedule
that :class:`TrainConfig` describes), ``best.pt`` (the generator and the configuration at the lowest
validation L1, or training L1 without a validation set: what an export needs, no optimiser state),
``history.jsonl``, ``val_epoch_NNN.jpg`` (inputs, outputs and targets of the first validation batch,
one row each; JPEG quality 90). One DataLoader serves the whole run, and the step never waits for the
device: losses are read every :data:`LOG_EVERY` steps, and at checkpoints and epoch ends. Under
``torchrun`` every process trains on its share of each epoch and only rank 0 writes files and reports
progress (a bar, and one line per epoch through ``report``: stderr by default).

Resuming is exact on the CPU: the data order depends only on (seed, epoch), each pair's augmentation
only on (seed, epoch, index), with or without DataLoader workers, and the checkpoint holds every
random state the step uses. That needs the same batch size, crop size and steps per epoch (a
checkpoint with others is refused), the same training set and the same number of processes. On GPUs,
whose kernels are not all bitwise reproducible, a resumed run matches an uninterrupted one
statistically.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from expolib.networks.modelfile import generator_checkpoint
from expolib.progress import progress_write
from expolib.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    ResumableBatches,
    atomic_save,
    check_resumable,
    load_checkpoint,
    remove_stale_temporaries,
    resume_path,
    rng_state,
    set_rng_state,
)
from expolib.training.config import TrainConfig, lr_factor
from expolib.training.datasets import render_where
from expolib.training.distributed import gather, stop_agreed
from expolib.training.history import History
from expolib.training.pix2pix import Pix2Pix, TrainingDiverged
from expolib.training.progress import LOG_EVERY, PendingLosses, RunProgress, epoch_line
from expolib.training.runstate import RunState, Schedule, stop_on_signals
from expolib.training.validation import validate, validation_loader

PathLike = Union[str, os.PathLike]
TRAIN_SCORE = "g_l1"  # without a validation set, best.pt follows this loss term's epoch mean


class Trainer:
    """Train ``model`` on ``train_set`` (items ``{"input", "target", ...}`` in [-1, 1]) as ``config``
    says, validating on ``val_set``; see the module's description for what it writes and how it resumes.
    ``model`` is the :class:`Pix2Pix` that ``config`` describes, built by the caller (its runtime and
    its place in a ``torchrun`` job come with it)."""

    def __init__(self, config: TrainConfig, model: Pix2Pix, train_set: Dataset,
                 val_set: Optional[Dataset] = None, report: Optional[Callable[[str], None]] = None) -> None:
        self.config, self.model, self.train_set, self.val_set = config, model, train_set, val_set
        self.process, self.device = model.process, model.device
        self._report = report or (lambda message: progress_write(message, file=sys.stderr))
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(model.opt_g, lambda e: lr_factor(config, e))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(model.opt_d, lambda e: lr_factor(config, e))
        self.out_dir = Path(config.out_dir)
        self.last_path, self.best_path = self.out_dir / "last.pt", self.out_dir / "best.pt"
        self.history = History()
        # the epoch in progress (== config.epochs when done), the steps of it done, of the run; best score
        self.epoch, self.step_in_epoch, self.global_step, self.best = 0, 0, 0, math.inf
        self.render_on = render_where(config, self.device, train_set)
        self.batches = ResumableBatches(train_set, config, self.process.rank, self.process.world_size,
                                        pin_memory=self.device.type == "cuda",
                                        draw=self.render_on == "device")
        self.steps_per_epoch = self.batches.steps_per_epoch
        self._written = (0, 0)  # history rows already in history.jsonl
        self.state = RunState(rng=rng_state(self.device))
        self.pending, self.schedule = PendingLosses(), Schedule(config)
        self._val_loader: Optional[DataLoader] = None

    @property
    def generator(self) -> nn.Module:
        return self.model.generator

    @property
    def discriminator(self) -> nn.Module:
        return self.model.discriminator

    def _print(self, message: str) -> None:
        if self.process.main:
            self._report(message)

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (tensors, numbers, strings, lists and dicts of them); under
        ``torchrun`` every process must call it (the random states are gathered)."""
        self._flush()
        parts = {key: part.state_dict() for key, part in self._parts().items() if key != "generator"}
        return generator_checkpoint(
            self.generator, working_side=getattr(self.generator, "working_side", None),
            format=CHECKPOINT_FORMAT, config=self.config.to_dict(), epoch=self.epoch,
            step_in_epoch=self.step_in_epoch, global_step=self.global_step,
            world_size=self.process.world_size, **parts, scaler=self.model.scaler.state_dict(),
            rng=gather(self.state.rng, self.process), history=self.history.to_dict(), best=self.best)

    def _parts(self) -> dict[str, Any]:
        """What a checkpoint holds the state of, by key: networks, optimisers, schedulers."""
        return {"generator": self.generator, "discriminator": self.discriminator, "opt_g": self.model.opt_g,
                "opt_d": self.model.opt_d, "sched_g": self.sched_g, "sched_d": self.sched_d}

    def save_checkpoint(self, best: bool = False) -> Optional[Path]:
        """Write ``last.pt`` (and ``best.pt`` when ``best``) atomically; every process must call it,
        only rank 0 writes. Returns the path written (None on other ranks)."""
        state = self.state_dict()
        self.schedule.saved()
        if not self.process.main:
            return None
        atomic_save(state, self.last_path)
        if best:
            self.save_best()
        self._written = self.history.write_jsonl(self.out_dir / "history.jsonl", self._written)
        return self.last_path

    def save_best(self) -> Path:
        """Write ``best.pt``: the generator and the configuration now (what
        :func:`expolib.networks.modelfile.export_checkpoint` needs), not the optimisers."""
        side = getattr(self.generator, "working_side", None)  # what every checkpoint of it records
        atomic_save(generator_checkpoint(self.generator, working_side=side, config=self.config.to_dict(),
                                         epoch=self.epoch, global_step=self.global_step, score=self.best),
                    self.best_path)
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

    def validate(self, save_grid: Optional[PathLike] = None) -> dict[str, float]:
        """Validation L1 and PSNR of the generator now, see :func:`validate`."""
        if self.val_set is not None and self._val_loader is None:
            self._val_loader = validation_loader(self.val_set, self.config)
        return validate(self.model, self.val_set, self.config, save_grid, self._val_loader)

    # -- the loop ---------------------------------------------------------------------------------

    def fit(self, resume: Union[bool, PathLike] = False, max_steps: Optional[int] = None) -> History:
        """Train until ``config.epochs`` are done and return the :class:`History`.

        ``resume``: see :func:`~expolib.training.checkpoint.resume_path`. ``max_steps`` stops (with a
        checkpoint) after that many steps in this call. Ctrl-C or SIGTERM finishes the current step,
        saves ``last.pt`` and raises KeyboardInterrupt. Any other error also saves ``last.pt`` when it
        struck between two steps (no finished step is lost), and is raised again; in the middle of an
        update, or under ``torchrun``, the last checkpoint is kept as it was. A NaN or infinite loss
        raises :class:`TrainingDiverged` and leaves the checkpoints as they were.
        """
        if self.process.main:
            remove_stale_temporaries(self.out_dir)  # left by a run killed while it was writing
        path = resume_path(resume, self.last_path) if resume else None
        if path is not None:
            self.load_state_dict(load_checkpoint(path), source=path)
            self._print(f"resumed from {path} at epoch {self.epoch + 1}, step {self.step_in_epoch}")
        elif resume:
            self._print(f"no checkpoint at {self.last_path}: starting a new run")
        if self.process.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state.stop_asked, self.state.between_steps = False, True
        progress = RunProgress(self.config.epochs * self.steps_per_epoch,
                               self.epoch * self.steps_per_epoch + self.step_in_epoch,
                               self.config.batch_size * self.process.world_size,
                               self.config.progress and self.process.main)
        try:
            with stop_on_signals(self.state, self._print):
                self._loop(progress, max_steps)
        except TrainingDiverged:
            raise  # the last good checkpoint must stay as it is
        except (KeyboardInterrupt, Exception) as error:
            self._save_after_stop(error)
            raise
        finally:
            progress.close()
        return self.history

    def _save_after_stop(self, error: BaseException) -> None:
        """Save ``last.pt`` after Ctrl-C or an unexpected error when the run is between two steps."""
        interrupted = isinstance(error, KeyboardInterrupt)
        what = "interrupted" if interrupted else f"{type(error).__name__}"
        where = f"at epoch {self.epoch + 1}, step {self.step_in_epoch}"
        collective = self.process.world_size > 1 and not interrupted  # a checkpoint is a collective
        if collective or not self.state.between_steps:
            during = "" if collective else ", in the middle of an update"
            self._print(f"{what} {where}{during}: the last checkpoint was kept as it was")
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

    def _flush(self) -> None:
        """The losses since the last flush into the history; raises :class:`TrainingDiverged`."""
        self.pending.flush(self.history, self.global_step, self.process, self.out_dir)

    def _log(self, progress: RunProgress) -> None:
        """Flush the losses and show their running means and the images/s on the bar."""
        self._flush()
        means = self.history.term_means(self.epoch, last=self.steps_per_epoch)
        progress.show(self.epoch, means if self.history.batches else {})

    def _loop(self, progress: RunProgress, max_steps: Optional[int]) -> None:
        self.model.train()
        batches = iter(self.batches.run(self.epoch, self.step_in_epoch))  # one loader for the whole run
        try:
            while self.epoch < self.config.epochs:
                epoch, lr = self.epoch, self.model.opt_g.param_groups[0]["lr"]
                epoch_start, epoch_steps = time.perf_counter(), 0
                while self.step_in_epoch < self.steps_per_epoch:
                    if stop_agreed(self.state.stop_asked, self.process, self.device):
                        raise KeyboardInterrupt
                    if max_steps is not None and progress.done >= max_steps:
                        self.save_checkpoint()
                        progress.end_planned()
                        self._print(f"stopped after {progress.done} steps (max_steps) at epoch {epoch + 1}, "
                                    f"step {self.step_in_epoch}; saved {self.last_path}")
                        return
                    inputs, targets = self._inputs(next(batches))
                    self.state.begin_update()
                    terms = self.model.train_step(inputs, targets, check=False)
                    self.pending.add(epoch, self.step_in_epoch + 1, lr, terms, self.model.last_totals)
                    self.step_in_epoch, self.global_step = self.step_in_epoch + 1, self.global_step + 1
                    self.state.reach_boundary(self.device)
                    epoch_steps += 1
                    progress.advance()
                    if logged := progress.log_due:
                        self._log(progress)
                    if progress.done == progress.estimate_at:
                        self._print(progress.estimate())
                    # inside an epoch (its end is _end_epoch's): by the clock at log points, by steps
                    due = (logged and self.schedule.clock_due()) or self.schedule.step_due(self.global_step)
                    if due and self.step_in_epoch < self.steps_per_epoch:
                        self.save_checkpoint()
                self._log(progress)
                self._end_epoch(epoch, lr, time.perf_counter() - epoch_start, epoch_steps)
        finally:
            del batches  # ends the loader's workers now, not at garbage collection

    def _inputs(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's (input, target), rendered here on the device when the set renders there."""
        if self.render_on == "device":
            return self.train_set.render_batch(batch, self.device)  # type: ignore[attr-defined]
        return batch["input"], batch["target"]

    def _end_epoch(self, epoch: int, lr: float, seconds: float, steps: int) -> None:
        metrics = {"val_l1": math.nan, "val_psnr": math.nan}
        last_epoch = epoch + 1 == self.config.epochs
        validated = self.val_set is not None and self.process.main and \
            (last_epoch or self.schedule.validation_due(self.global_step))
        if validated:  # changes no state: an error here can still save the epoch's steps
            metrics = self.validate(save_grid=self.out_dir / f"val_epoch_{epoch + 1:03d}.jpg")
            self.schedule.validated(self.global_step)
        self.state.begin_update()
        row = self.history.add_epoch(epoch, lr, metrics, seconds,
                                     images=steps * self.config.batch_size * self.process.world_size)
        self.sched_g.step()
        self.sched_d.step()
        self.epoch, self.step_in_epoch = epoch + 1, 0
        score = metrics["val_l1"] if self.val_set is not None else row.get(TRAIN_SCORE, math.nan)
        improved = math.isfinite(score) and score < self.best
        self.best = score if improved else self.best
        self.state.reach_boundary(self.device)
        if improved and self.process.main:
            self.save_best()
        due = last_epoch or self.schedule.clock_due() or self.schedule.step_due(self.global_step)
        if stop_agreed(due, self.process, self.device):
            self.save_checkpoint()
        elif self.process.main:  # the history file follows the epochs even between checkpoints
            self._written = self.history.write_jsonl(self.out_dir / "history.jsonl", self._written)
        self._print(epoch_line(row, self.history.terms(), self.config.epochs, validated))


__all__ = ["LOG_EVERY", "TRAIN_SCORE", "Trainer"]
