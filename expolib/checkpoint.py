"""Checkpoints, and everything an exact resume needs.

- The file: :data:`CHECKPOINT_FORMAT`, the keys it holds, :func:`atomic_save` (a crash mid-write leaves
  the previous file whole) and :func:`load_checkpoint` (tensors and plain containers only; clear
  errors naming the file); :func:`check_resumable` refuses a checkpoint whose networks or data
  settings differ from the run's.
- Random state: :func:`rng_state` / :func:`set_rng_state` (Python, NumPy, torch, CUDA).
- The data order: :class:`SeededItems` (each item augmented from its own seed), :class:`SkipSampler`
  (an epoch's order without the batches already done) and :class:`ResumableBatches`, which puts them
  together, so that a resumed run sees the pairs an uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from expolib.trainconfig import TrainConfig

PathLike = Union[str, os.PathLike]
CHECKPOINT_FORMAT = "expolib.train/1"
# settings that fix the networks' shapes: a checkpoint only resumes a run that agrees on them
ARCHITECTURE_FIELDS = ("ngf", "ndf", "depth", "n_layers", "norm", "upsample", "residual")
# settings that fix which pairs a step sees: resuming with others would skip the wrong pairs
DATA_FIELDS = ("batch_size", "image_size", "steps_per_epoch")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or does not fit this run; the message names the file."""


# ----------------------------------------------------------------------------------------------------
# The file


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename it over ``path``: a crash
    mid-write leaves the previous file whole. A failed write (a full disk, say) is an ``OSError``
    naming ``path``: PyTorch's zip writer reports it as a ``RuntimeError`` that hides the cause."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, RuntimeError) and "write" in str(error).lower():
            raise OSError(f"{path}: could not write the checkpoint (disk full?); the previous one is kept: "
                          f"{error}") from error
        if isinstance(error, OSError) and str(path) not in str(error):
            raise OSError(error.errno, f"{path}: could not write the checkpoint ({error.strerror or error}); "
                          "the previous one is kept") from error
        raise


TEMP_SUFFIX = ".tmp"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_save` leaves when a run is killed mid-write; returns
    what was removed."""
    removed = []
    if folder.is_dir():
        for tmp in folder.glob(f".*.pt.*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


CHECKPOINT_KEYS = ("format", "config", "epoch", "step_in_epoch", "global_step", "generator", "discriminator",
                   "opt_g", "opt_d", "sched_g", "sched_d", "scaler", "rng", "history", "best")


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Read a training checkpoint with ``torch.load(weights_only=True)`` (tensors and plain containers
    only: loading runs no code from the file). A missing file is ``FileNotFoundError``; a truncated,
    corrupt or foreign file is :class:`CheckpointError`; both name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # zip, pickle and EOF errors all mean the same thing here
        detail = str(error).split("\n")[0]
        if "weights_only" in str(error) or "Weights only" in str(error):
            # PyTorch's message advises weights_only=False, which would run code from the file: never
            # pass that on for a file the reader did not make
            detail = "it holds objects other than tensors and plain values, which are not loaded"
        raise CheckpointError(f"{path} is not a readable expolib checkpoint: {detail}") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an expolib training checkpoint (format {CHECKPOINT_FORMAT!r})")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete checkpoint: missing {', '.join(missing)}")
    return state


def check_resumable(state: dict[str, Any], config: TrainConfig, source: PathLike = "checkpoint") -> None:
    """Raise :class:`CheckpointError` when the checkpoint ``state`` was trained with other networks
    (:data:`ARCHITECTURE_FIELDS`) or other data settings (:data:`DATA_FIELDS`) than ``config``."""
    saved = TrainConfig.from_dict(state["config"])

    def clashes(names: tuple[str, ...]) -> str:
        return "; ".join(f"{name}: checkpoint {getattr(saved, name)!r}, this run {getattr(config, name)!r}"
                         for name in names if getattr(saved, name) != getattr(config, name))

    if clashes(ARCHITECTURE_FIELDS):
        raise CheckpointError(f"{source} was trained with other networks; " + clashes(ARCHITECTURE_FIELDS))
    if clashes(DATA_FIELDS):
        raise CheckpointError(
            f"{source} was trained with other data settings; resuming would skip the wrong pairs "
            "(resume with the checkpoint's settings, or start a new run in another folder): "
            + clashes(DATA_FIELDS)
        )


# ----------------------------------------------------------------------------------------------------
# Random states and the data order


def rng_state(device: torch.device) -> dict[str, Any]:
    """Python, NumPy and torch random states, as tensors and numbers (safe for weights_only loading)."""
    version, py_state, gauss = random.getstate()
    _name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": int(version),
        "python_gauss": gauss,
        "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached": float(cached),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    python_state = tuple(int(v) for v in state["python"].tolist())
    random.setstate((state["python_version"], python_state, state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_cached"]))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class SeededItems(Dataset):
    """The training set, each item drawn with random generators seeded from (seed, epoch, index).

    Augmentation draws from the global random generators (torch's, NumPy's, Python's). Left alone,
    what an item gets would depend on where those streams stand when it is loaded: on the items
    loaded before it, and with DataLoader workers on which worker loads it. Both change when a run
    resumes inside an epoch. Seeding every item from its own numbers makes its augmentation the same
    whichever process loads it and whenever; the global states are put back afterwards, so dropout and
    everything else in the process keep their own streams. Set :attr:`epoch` before each epoch's
    DataLoader starts (its workers copy the dataset then).
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        words = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(2, np.uint64)
        saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
        torch.default_generator.manual_seed(int(words[0] >> 1))  # the CPU generator only, not CUDA's
        np.random.seed(int(words[1] % 2**32))
        random.seed(int(words[1]))
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])


def seed_worker(worker_id: int) -> None:
    """DataLoader workers: seed NumPy and Python from the worker's torch seed (which the loader's
    seeded generator fixes), so that augmentations repeat from run to run."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class SkipSampler(Sampler[int]):
    """The indices of ``base`` without the first ``skip``: resuming inside an epoch continues with
    the batches that the interrupted run had not seen yet (same order, nothing loaded twice)."""

    def __init__(self, base: DistributedSampler, skip: int) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[int]:
        indices = iter(self.base)
        for _ in range(self.skip):
            next(indices, None)
        return indices

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)


class ResumableBatches:
    """The training set's batches, epoch by epoch, in an order a resumed run can repeat exactly.

    The order depends only on (seed, epoch) (a seeded :class:`DistributedSampler`: one process gets a
    shuffle, several each their share), each item's augmentation only on (seed, epoch, index)
    (:class:`SeededItems`), and worker seeds come from a generator seeded the same way. Batches are
    kept full, unless one batch is all there is; ``config.steps_per_epoch`` caps an epoch.
    """

    def __init__(self, dataset: Dataset, config: TrainConfig, rank: int = 0, world_size: int = 1,
                 pin_memory: bool = False) -> None:
        self.config, self.rank, self.pin_memory = config, rank, pin_memory
        self.items = SeededItems(dataset, config.seed)
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                          seed=config.seed)
        per_process = len(self.sampler)
        if per_process == 0:
            raise ValueError("the training set is empty")
        self.drop_last = per_process >= config.batch_size
        full = per_process // config.batch_size if self.drop_last else 1
        self.steps_per_epoch = min(full, config.steps_per_epoch or full)

    def epoch(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        """The batches of ``epoch`` (0-based) without its first ``skip_batches``."""
        self.sampler.set_epoch(epoch)
        self.items.epoch = epoch
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch * 1009 + self.rank)
        return DataLoader(
            self.items,
            batch_size=self.config.batch_size,
            sampler=SkipSampler(self.sampler, skip_batches * self.config.batch_size),
            num_workers=self.config.num_workers,
            pin_memory=self.pin_memory,
            drop_last=self.drop_last,
            worker_init_fn=seed_worker,
            generator=generator,
        )


__all__ = [
    "ARCHITECTURE_FIELDS", "CHECKPOINT_FORMAT", "CHECKPOINT_KEYS", "DATA_FIELDS", "TEMP_SUFFIX",
    "CheckpointError", "ResumableBatches", "SeededItems", "SkipSampler", "atomic_save", "check_resumable",
    "load_checkpoint", "remove_stale_temporaries", "rng_state", "seed_worker", "set_rng_state",
]
