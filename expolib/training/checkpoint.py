"""Checkpoints, and everything an exact resume needs.

- The file: :data:`CHECKPOINT_FORMAT`, the keys it holds, :func:`atomic_save` (a crash mid-write leaves
  the previous file whole) and :func:`load_checkpoint` (tensors and plain containers only; clear
  errors naming the file); :func:`check_resumable` refuses a checkpoint whose networks or data
  settings differ from the run's.
- Random state: :func:`rng_state` / :func:`set_rng_state` (Python, NumPy, torch, CUDA).
- The data order: :class:`SeededItems` (each item augmented from its own seed), :class:`RunBatches`
  (every batch from a given epoch and step to the end of the run) and :class:`ResumableBatches`, which
  puts them into one DataLoader, so that a resumed run sees the pairs an uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from expolib import files
from expolib.files import atomic_write
from expolib.networks.modelfile import GENERATOR_FORMAT  # best.pt: a generator checkpoint
from expolib.training.config import TrainConfig

PathLike = Union[str, os.PathLike]
CHECKPOINT_FORMAT = "expolib.train/1"
# the networks' configurations: a checkpoint only resumes a run that agrees on every field of them
ARCHITECTURE_FIELDS = ("generator", "discriminator")
# settings that fix which pairs a step sees: resuming with others would skip the wrong pairs
DATA_FIELDS = ("batch_size", "image_size", "steps_per_epoch")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or does not fit this run; the message names the file."""


# ----------------------------------------------------------------------------------------------------
# The file


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save through :func:`expolib.files.atomic_write`: a crash or a full disk mid-write leaves
    the previous file whole and no partial file; a failed write is a :class:`expolib.files.WriteError`
    naming ``path``."""
    with atomic_write(path, "checkpoint") as tmp:
        torch.save(obj, tmp)


TEMP_SUFFIX = files.TEMP_SUFFIX


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_save` leaves when a run is killed mid-write; returns
    what was removed."""
    return [tmp for name in ("last.pt", "best.pt") for tmp in files.remove_temporaries(folder / name)]


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
    if isinstance(state, dict) and state.get("format") == GENERATOR_FORMAT:
        raise CheckpointError(f"{path} holds only a generator (best.pt), not a run to resume: resume from "
                              "the run's last.pt; export it with "
                              "expolib.networks.modelfile.export_checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an expolib training checkpoint (format {CHECKPOINT_FORMAT!r})")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete checkpoint: missing {', '.join(missing)}")
    return state


def resume_path(resume: Union[bool, PathLike], last: Path) -> Optional[Path]:
    """The checkpoint that ``fit(resume=...)`` continues from: ``True`` means the run's ``last`` when it
    exists (None: a fresh start); a path means that file, or that run folder's ``last.pt``."""
    path = last if resume is True else Path(resume)
    path = path / last.name if path.is_dir() else path
    return path if path.is_file() or resume is not True else None


def check_resumable(state: dict[str, Any], config: TrainConfig, source: PathLike = "checkpoint") -> None:
    """Raise :class:`CheckpointError` when the checkpoint ``state`` was trained with other networks
    (any field of :data:`ARCHITECTURE_FIELDS`' configurations but how they compute) or other data
    settings (:data:`DATA_FIELDS`) than ``config``."""
    saved = TrainConfig.from_dict(state["config"])
    values = {name: (getattr(saved, name), getattr(config, name)) for name in DATA_FIELDS}
    for part in ARCHITECTURE_FIELDS:
        mine, theirs = getattr(config, part), getattr(saved, part)
        values.update({f"{part}.{f.name}": (getattr(theirs, f.name), getattr(mine, f.name))
                       for f in dataclasses.fields(mine) if f.name != "gemm_upsampling"})

    def clashes(names: Iterable[str]) -> str:
        return "; ".join(f"{name}: checkpoint {values[name][0]!r}, this run {values[name][1]!r}"
                         for name in names if values[name][0] != values[name][1])

    networks = [name for name in values if name not in DATA_FIELDS]
    if clashes(networks):
        raise CheckpointError(f"{source} was trained with other networks; " + clashes(networks))
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


ItemKey = tuple[int, int, int]  # (epoch, pass, index): which item, and the draw of its augmentation


class SeededItems(Dataset):
    """The training set, each item drawn with random generators seeded from (seed, epoch, pass, index).

    Augmentation draws from the global random generators (torch's, NumPy's, Python's). Left alone,
    what an item gets would depend on where those streams stand when it is loaded: on the items
    loaded before it, and with DataLoader workers on which worker loads it. Both change when a run
    resumes inside an epoch. Seeding every item from its own numbers makes its augmentation the same
    whichever process loads it and whenever; the global states are put back afterwards, so dropout and
    everything else in the process keep their own streams. Items are read by an :data:`ItemKey`
    (``pass`` counts the shuffles inside one epoch, when an epoch has more steps than the set has
    batches); a plain index means pass 0 of :attr:`epoch`. With ``draw``, items come from the
    dataset's ``draw`` (see :mod:`expolib.imaging.render`) instead of being rendered in the loader.
    """

    def __init__(self, dataset: Dataset, seed: int, draw: bool = False) -> None:
        self.dataset, self.seed, self.epoch, self.draw = dataset, seed, 0, draw

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Union[int, ItemKey]) -> Any:
        epoch, pass_, index = key if isinstance(key, tuple) else (self.epoch, 0, int(key))
        entropy = [self.seed, epoch, index] + ([pass_] if pass_ else [])
        words = np.random.SeedSequence(entropy).generate_state(2, np.uint64)
        saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
        torch.default_generator.manual_seed(int(words[0] >> 1))  # the CPU generator only, not CUDA's
        np.random.seed(int(words[1] % 2**32))
        random.seed(int(words[1]))
        try:
            # draw: the item's random choices and uint8 crops only; the trainer renders the batch
            return self.dataset.draw(index) if self.draw else self.dataset[index]  # type: ignore[attr-defined]
        finally:
            torch.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])


def seed_worker(worker_id: int) -> None:
    """DataLoader workers: seed NumPy and Python from the worker's torch seed (which the loader's
    seeded generator fixes), so that anything outside :class:`SeededItems` repeats too."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class RunBatches(Sampler[list[ItemKey]]):
    """The keys of every batch from (``epoch``, ``skip`` batches into it) to the end of the run.

    One sampler, and so one DataLoader and one set of workers, serves the whole run: no restart at
    each epoch. Each epoch is ``steps`` batches; its order is a seeded :class:`DistributedSampler`
    shuffle (one process: a permutation; several: each its share), reshuffled when an epoch asks for
    more batches than one pass over the set gives (a small set with a fixed number of steps per epoch).
    """

    def __init__(self, base: DistributedSampler, batch_size: int, drop_last: bool, steps: int,
                 epochs: int, epoch: int = 0, skip: int = 0) -> None:
        self.base, self.batch_size, self.drop_last = base, batch_size, drop_last
        self.steps, self.epochs, self.epoch, self.skip = steps, epochs, epoch, skip

    def epoch_batches(self, epoch: int) -> Iterator[list[ItemKey]]:
        """The ``steps`` batches of one epoch."""
        done, pass_ = 0, 0
        while True:
            # pass 0 is the epoch's own shuffle; later passes get shuffles no other epoch uses
            self.base.set_epoch(epoch + pass_ * 1_000_003)
            indices = list(self.base)
            usable = len(indices) - len(indices) % self.batch_size if self.drop_last else len(indices)
            for start in range(0, usable, self.batch_size):
                yield [(epoch, pass_, index) for index in indices[start:start + self.batch_size]]
                done += 1
                if done == self.steps:
                    return
            pass_ += 1

    def __iter__(self) -> Iterator[list[ItemKey]]:
        for epoch in range(self.epoch, self.epochs):
            batches = self.epoch_batches(epoch)
            if epoch == self.epoch:
                for _ in range(self.skip):
                    next(batches)
            yield from batches

    def __len__(self) -> int:
        return max(0, (self.epochs - self.epoch) * self.steps - self.skip)


class ResumableBatches:
    """The training set's batches, from any (epoch, step) to the end of the run, in an order a resumed
    run repeats exactly.

    The order depends only on (seed, epoch) (:class:`RunBatches`), each item's augmentation only on
    its key (:class:`SeededItems`), and worker seeds come from a generator seeded the same way.
    Batches are kept full, unless one batch is all there is. An epoch is one pass over the set, or
    ``config.steps_per_epoch`` batches when that is given (fewer, or more: a small set is then
    reshuffled within the epoch). ``draw``: see :class:`SeededItems`.
    """

    def __init__(self, dataset: Dataset, config: TrainConfig, rank: int = 0, world_size: int = 1,
                 pin_memory: bool = False, draw: bool = False) -> None:
        self.config, self.rank, self.pin_memory = config, rank, pin_memory
        self.items = SeededItems(dataset, config.seed, draw)
        # drawn items may need their own batching (file bytes of different lengths)
        self.collate = getattr(dataset, "collate", None) if draw else None
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                          seed=config.seed)
        per_process = len(self.sampler)
        if per_process == 0:
            raise ValueError("the training set is empty")
        self.drop_last = per_process >= config.batch_size
        full = per_process // config.batch_size if self.drop_last else 1
        self.steps_per_epoch = config.steps_per_epoch or full

    def run(self, epoch: int = 0, skip_batches: int = 0) -> DataLoader:
        """One loader for the rest of the run: the batches from ``epoch`` (0-based), without its first
        ``skip_batches``, to the end of the last epoch."""
        sampler = RunBatches(self.sampler, self.config.batch_size, self.drop_last, self.steps_per_epoch,
                             self.config.epochs, epoch, skip_batches)
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch * 1009 + self.rank)
        return DataLoader(self.items, batch_sampler=sampler, num_workers=self.config.num_workers,
                          collate_fn=self.collate,
                          pin_memory=self.pin_memory, worker_init_fn=seed_worker, generator=generator,
                          prefetch_factor=4 if self.config.num_workers else None)


__all__ = [
    "ARCHITECTURE_FIELDS", "CHECKPOINT_FORMAT", "GENERATOR_FORMAT", "CHECKPOINT_KEYS", "DATA_FIELDS",
    "TEMP_SUFFIX",
    "CheckpointError", "ItemKey", "ResumableBatches", "RunBatches", "SeededItems", "atomic_save",
    "check_resumable", "resume_path",
    "load_checkpoint", "remove_stale_temporaries", "rng_state", "seed_worker", "set_rng_state",
]
