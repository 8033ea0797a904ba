"""Training pix2pix: one config, one step, one loop that can stop and pick up where it stopped.

- :class:`TrainConfig` holds every setting (defaults: pix2pix and the design report's full recipe);
  :meth:`TrainConfig.from_budget` takes sizes and counts from a budget.
- :class:`Pix2Pix` owns the two networks, their Adam optimisers and :meth:`Pix2Pix.train_step`:
  D on the detached fake, then G through the frozen D, with one G forward per step.
- :class:`Trainer` feeds it batches on CUDA, MPS or the CPU, one process or many (``torchrun``),
  logs a :class:`History`, validates, saves image grids and checkpoints (``last.pt``, ``best.pt``),
  resumes where a run stopped, and stops with :class:`TrainingDiverged` on a NaN loss.
- :func:`endless` and :func:`fit_reconstruction`: a data stream counted in steps, and the bare loop
  that trains one network on a reconstruction loss (the chapters' short comparisons).
- ``add_cli`` adds ``python -m expolib train``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, TypeVar, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm.auto import tqdm

from expolib.config import Budget, get_budget, pick_device, seed_everything
from expolib.losses import GAN_MODES, LAMBDA_L1, AdversarialLoss, discriminator_loss, generator_loss
from expolib.metrics import psnr_batch
from expolib.models import NORMS, PatchConfig, PatchDiscriminator, UNetConfig, UNetGenerator, save_generator
from expolib.transforms import denormalize

PathLike = Union[str, os.PathLike]
T = TypeVar("T")
LR_POLICIES = ("linear", "constant")
CHECKPOINT_FORMAT = "expolib.train/1"
# settings that fix the networks' shapes: a checkpoint only resumes a run that agrees on them
ARCHITECTURE_FIELDS = ("ngf", "ndf", "depth", "n_layers", "norm")
# settings that fix which pairs a step sees: resuming with others would skip the wrong pairs
DATA_FIELDS = ("batch_size", "image_size", "steps_per_epoch")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the checkpoints on disk are left as they were.

    What happened in memory depends on which loss it was. The discriminator's loss is checked before
    either network steps, so then neither network changed. The generator's loss only exists after the
    discriminator's update (it is computed through the updated discriminator), so then the
    discriminator has already taken its step while the generator has not. Resume from ``last.pt``
    rather than using the in-memory networks after this error.
    """


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or does not fit this run; the message names the file."""


# ----------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class TrainConfig:
    """Every setting of a training run. The defaults are pix2pix's, with the design report's recipe
    (256x256 crops, batch 64, 150 epochs); :meth:`from_budget` scales them to a budget.

    ``lr_policy="linear"`` keeps the learning rate for ``epochs - decay_epochs`` epochs and then lowers
    it linearly towards 0 over the last ``decay_epochs`` (default: half of the epochs), as pix2pix does;
    ``"constant"`` never changes it. ``None`` for ``device``, ``amp``, ``channels_last`` or
    ``gemm_convolutions`` means "choose for the device": CUDA gets mixed precision (bf16 where
    supported, else fp16 with loss scaling) and channels-last tensors; the CPU gets plain fp32
    (``amp=True`` there means bf16 autocast) and :class:`GemmConvTranspose2d` for small maps.
    """

    epochs: int = 150
    batch_size: int = 64
    image_size: int = 256
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_l1: float = LAMBDA_L1
    gan_mode: str = "vanilla"  # "vanilla" (BCE on logits, pix2pix) or "lsgan" (least squares)
    ngf: int = 64
    ndf: int = 64
    depth: int = 8
    n_layers: int = 3
    norm: str = "batch"
    lr_policy: str = "linear"  # "linear" (constant, then linear decay to 0) or "constant"
    decay_epochs: Optional[int] = None  # epochs of linear decay at the end; None: half of them
    steps_per_epoch: Optional[int] = None  # cap on batches per epoch; None: the whole dataset
    val_batches: Optional[int] = None  # cap on validation batches per epoch; None: all of them
    checkpoint_every: int = 0  # also save last.pt every this many steps (0: at the end of epochs only)
    seed: int = 0
    out_dir: str = "runs/pix2pix"
    device: Optional[str] = None
    amp: Optional[bool] = None
    channels_last: Optional[bool] = None
    gemm_convolutions: Optional[bool] = None  # small transposed convs as matrix products (auto: on the CPU)
    compile: bool = False
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "image_size": self.image_size,
                    "ngf": self.ngf, "ndf": self.ndf, "n_layers": self.n_layers}
        bad = [f"{name}={value}" for name, value in positive.items() if value < 1]
        if bad:
            raise ValueError(f"TrainConfig: these must be at least 1: {', '.join(bad)}")
        if self.depth < 2:
            raise ValueError(f"TrainConfig.depth must be at least 2, got {self.depth}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr}")
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"TrainConfig.gan_mode {self.gan_mode!r} is not one of {GAN_MODES}")
        if self.lr_policy not in LR_POLICIES:
            raise ValueError(f"TrainConfig.lr_policy {self.lr_policy!r} is not one of {LR_POLICIES}")
        if self.norm not in NORMS:
            raise ValueError(f"TrainConfig.norm {self.norm!r} is not one of {NORMS}")
        if self.decay_epochs is not None and not 0 <= self.decay_epochs <= self.epochs:
            raise ValueError(
                f"TrainConfig.decay_epochs must be in [0, epochs={self.epochs}], got {self.decay_epochs}"
            )
        for name in ("steps_per_epoch", "val_batches"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1 (or None), got {value}")
        if self.checkpoint_every < 0 or self.num_workers < 0:
            raise ValueError("TrainConfig.checkpoint_every and num_workers must be >= 0")

    @classmethod
    def from_budget(cls, budget: Optional[Budget] = None, **overrides: Any) -> TrainConfig:
        """Sizes and counts from ``budget`` (default: :func:`expolib.config.get_budget`), then
        ``overrides`` (any field)."""
        budget = budget if budget is not None else get_budget()
        values: dict[str, Any] = {
            "epochs": budget.epochs, "batch_size": budget.batch_size, "image_size": budget.image_size,
            "ngf": budget.ngf, "ndf": budget.ndf, "depth": budget.depth,
            "steps_per_epoch": budget.steps_per_epoch, "num_workers": budget.num_workers,
        }
        values.update(overrides)
        return cls(**values)

    def generator_config(self) -> UNetConfig:
        return UNetConfig(ngf=self.ngf, depth=self.depth, norm=self.norm)

    def discriminator_config(self) -> PatchConfig:
        return PatchConfig(ndf=self.ndf, n_layers=self.n_layers, norm=self.norm)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (the betas as a list), for JSON and checkpoints."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """Multiplier of the base learning rate during ``epoch`` (0-based), pix2pix's "linear" policy:
    1 for the first ``epochs - decay`` epochs, then ``1 - k / (decay + 1)`` in the k-th decay epoch."""
    if config.lr_policy == "constant":
        return 1.0
    decay = config.decay_epochs if config.decay_epochs is not None else config.epochs // 2
    return 1.0 - max(0, epoch + 1 - (config.epochs - decay)) / float(decay + 1)


# ----------------------------------------------------------------------------------------------------
# The networks and one training step


class StepLosses(NamedTuple):
    """The four numbers a step logs (detached scalars): G's adversarial and L1 terms, D's real and fake."""

    g_adv: torch.Tensor
    g_l1: torch.Tensor
    d_real: torch.Tensor
    d_fake: torch.Tensor


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (a CPU without it emulates bf16, very slowly)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # the check is internal to PyTorch; be safe
            return False
    return False


def autocast_dtype(config: TrainConfig, device: torch.device) -> Optional[torch.dtype]:
    """The dtype that autocast runs the forward passes in, or None for plain float32.

    ``config.amp=None`` (auto) turns mixed precision on for CUDA only. CUDA uses bfloat16 where the GPU
    supports it (same range as float32: no loss scaling needed), else float16 (with a GradScaler).
    The CPU uses bfloat16, which pays off only on processors with native bf16 instructions.
    """
    wanted = config.amp if config.amp is not None else device.type == "cuda"
    if not wanted:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    if device.type == "cpu":
        if not native_bf16(device):
            warnings.warn("this CPU has no native bfloat16: amp=True will be slower than float32",
                          stacklevel=3)
        return torch.bfloat16
    raise ValueError(f"mixed precision (amp=True) is supported on CUDA and CPU, not on {device.type}")


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """A ``ConvTranspose2d`` that computes small inputs on the CPU as one matrix product and a col2im.

    The same operation, written differently: every input pixel scatters ``weight[c_in]`` (a
    ``c_out x k x k`` stamp) into the output, so the stamps of all pixels are one matrix product,
    ``(c_out k k, c_in) @ (c_in, h w)``, and ``F.fold`` adds the overlapping stamps into place. PyTorch's
    CPU kernel (oneDNN) is slow when the map is tiny and the weights are large, which is the U-Net's
    inner levels: 1x1 to 8x8 maps with 1024 x 512 x 4 x 4 weights. There the matrix product is limited
    only by reading the weights once. Autograd differentiates it. Larger maps, other devices and
    unusual settings (groups, dilation, output padding) use the parent class.
    """

    max_pixels: int = 64  # h * w of the input up to which the matrix product is used

    def forward(self, x: torch.Tensor, output_size: Optional[list[int]] = None) -> torch.Tensor:
        plain = (self.groups == 1 and self.dilation == (1, 1) and self.output_padding == (0, 0)
                 and self.padding_mode == "zeros")
        small = x.dim() == 4 and x.shape[-2] * x.shape[-1] <= self.max_pixels
        if not (plain and small and x.device.type == "cpu" and output_size is None):
            return super().forward(x, output_size)
        b, c_in, h, w = x.shape  # (B, c_in, h, w)
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        stamps = self.weight.reshape(c_in, -1).t()  # (c_out kh kw, c_in)
        cols = torch.matmul(stamps, x.reshape(b, c_in, h * w))  # (B, c_out kh kw, h w)
        size = ((h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        y = F.fold(cols, size, kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw))  # (B, c_out, H, W)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def use_gemm_transposed_convolutions(module: nn.Module) -> int:
    """Turn every plain ``ConvTranspose2d`` inside ``module`` into a :class:`GemmConvTranspose2d` (same
    parameters, same ``state_dict``, same results up to float rounding). Returns how many."""
    count = 0
    for m in module.modules():
        if type(m) is nn.ConvTranspose2d:
            m.__class__ = GemmConvTranspose2d  # a subclass with only a new forward: the module is kept
            count += 1
    return count


def _adam(params: Iterator[nn.Parameter], config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with pix2pix's settings; the fused kernel (one pass over all parameters) where PyTorch has one."""
    fused = device.type in ("cuda", "cpu")
    return torch.optim.Adam(params, lr=config.lr, betas=config.betas, fused=fused, foreach=None)


class Pix2Pix:
    """The generator and the discriminator, their optimisers, and one training step.

    Builds the networks from ``config`` (seed the RNGs first for a repeatable initialisation), moves
    them to ``device`` and, when ``distributed``, wraps them in DistributedDataParallel. No data, no
    files: :class:`Trainer` adds those; ``python -m expolib bench`` times :meth:`train_step` alone.
    """

    def __init__(self, config: TrainConfig, device: Union[str, torch.device, None] = None,
                 distributed: bool = False) -> None:
        self.config = config
        self.device = torch.device(device) if device is not None else pick_device(config.device)
        self.amp_dtype = autocast_dtype(config, self.device)
        cl = config.channels_last if config.channels_last is not None else self.device.type == "cuda"
        self.memory_format = torch.channels_last if cl else torch.contiguous_format

        fmt = self.memory_format
        self.generator = UNetGenerator(config.generator_config()).to(self.device, memory_format=fmt)
        self.discriminator = PatchDiscriminator(config.discriminator_config())
        self.discriminator.to(self.device, memory_format=fmt)
        gemm = config.gemm_convolutions if config.gemm_convolutions is not None else self.device.type == "cpu"
        if gemm:
            use_gemm_transposed_convolutions(self.generator)
        self.opt_g = _adam(self.generator.parameters(), config, self.device)
        self.opt_d = _adam(self.discriminator.parameters(), config, self.device)
        self.adversarial = AdversarialLoss(config.gan_mode)
        # fp16 needs loss scaling (its small gradients underflow); bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

        g: nn.Module = self.generator
        d: nn.Module = self.discriminator
        if distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            g = DistributedDataParallel(g, device_ids=ids)
            d = DistributedDataParallel(d, device_ids=ids)
        # In G's update D only passes gradients through to the fake: its own weights are frozen, so
        # the plain module is used there and DDP has no gradients of D to synchronise.
        d_for_g: nn.Module = self.discriminator
        if config.compile:
            g, d, d_for_g = torch.compile(g), torch.compile(d), torch.compile(d_for_g)
        self._g, self._d, self._d_for_g = g, d, d_for_g
        self._buffers = [*self.generator.buffers(), *self.discriminator.buffers()]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward passes when enabled, else nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """A batch on the device, in the networks' memory format."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=self.memory_format)

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepLosses:
        """One pix2pix update of D, then of G, on a batch of pairs in [-1, 1]: (B, 3, H, W) each.

        A NaN or infinite loss raises :class:`TrainingDiverged` before the update it would poison, and
        the normalisation statistics that this step's forward passes changed are put back. A non-finite
        generator loss is found after the discriminator's update, which stays (see
        :class:`TrainingDiverged`).
        """
        saved = [b.detach().clone() for b in self._buffers]  # BatchNorm running statistics: tiny
        try:
            return self._step(self.prepare(inputs), self.prepare(targets))
        except TrainingDiverged:
            with torch.no_grad():
                for buffer, value in zip(self._buffers, saved):
                    buffer.copy_(value)
            raise

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepLosses:
        with self.autocast():
            fake = self._g(x)  # (B, 3, H, W): the only generator forward of the step

        # 1. Discriminator: real pairs should score "real", generated ones "fake". The fake is
        #    detached, so this backward pass stops at D and never reaches G.
        self.discriminator.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            real_logits = self._d(x, y)  # (B, 1, h, w) one logit per patch
            fake_logits = self._d(x, fake.detach())
        d_loss = discriminator_loss(real_logits.float(), fake_logits.float(), self.adversarial)
        _check_finite(d_loss.total, "discriminator")
        self.scaler.scale(d_loss.total).backward()
        self.scaler.step(self.opt_d)

        # 2. Generator: the updated D judges the same fake again, now with D's weights frozen
        #    (requires_grad False: no gradients are computed or stored for them).
        self.discriminator.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            fake_logits = self._d_for_g(x, fake)
        g_loss = generator_loss(fake_logits.float(), fake.float(), y, self.adversarial, self.config.lambda_l1)
        _check_finite(g_loss.total, "generator")
        self.scaler.scale(g_loss.total).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        return StepLosses(g_loss.adversarial, g_loss.l1, d_loss.real, d_loss.fake)

    def train(self) -> None:
        self.generator.train()
        self.discriminator.train()

    @torch.no_grad()
    def correct(self, inputs: torch.Tensor) -> torch.Tensor:
        """The generator's output for ``inputs`` (in eval mode, no gradients), in float32."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            with self.autocast():
                out = self.generator(self.prepare(inputs))
        finally:
            self.generator.train(was_training)
        return out.float()


def _check_finite(loss: torch.Tensor, who: str) -> None:
    if not torch.isfinite(loss).item():
        raise TrainingDiverged(f"the {who}'s loss is {loss.item()}")


# ----------------------------------------------------------------------------------------------------
# History


BATCH_KEYS = ("g_adv", "g_l1", "d_real", "d_fake")


@dataclass
class History:
    """What a run logged: one dict per batch and one per epoch (plain floats and ints).

    Per batch: ``epoch``, ``step`` (global), ``lr``, ``g_adv``, ``g_l1``, ``d_real``, ``d_fake``.
    Per epoch: ``epoch``, ``steps``, ``lr``, the means of the batch values, ``seconds``,
    ``images_per_second``, and ``val_l1`` / ``val_psnr`` when there is a validation set (else NaN).
    """

    batches: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)

    def column(self, key: str, per: str = "batch") -> list[float]:
        """One value per batch (``per="batch"``) or per epoch (``per="epoch"``)."""
        rows = {"batch": self.batches, "epoch": self.epochs}.get(per)
        if rows is None:
            raise ValueError(f"per must be 'batch' or 'epoch', got {per!r}")
        # None is how JSON writes NaN: read it back as NaN, whatever produced the rows
        return [math.nan if row[key] is None else float(row[key]) for row in rows]

    def to_dict(self) -> dict[str, list[dict[str, float]]]:
        return {"batches": [dict(r) for r in self.batches], "epochs": [dict(r) for r in self.epochs]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        return cls(list(values.get("batches", [])), list(values.get("epochs", [])))

    @classmethod
    def load(cls, path: PathLike) -> History:
        """Read the ``history.jsonl`` a :class:`Trainer` writes (one ``{"kind": ...}`` object a line)."""
        history = cls()
        path = Path(path)
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = {k: (math.nan if v is None else v) for k, v in json.loads(line).items()}
                    kind = row.pop("kind")
                    {"batch": history.batches, "epoch": history.epochs}[kind].append(row)
                except (ValueError, KeyError) as error:
                    raise ValueError(f"{path}, line {number}: not a history record ({error})") from error
        return history


def _json_line(kind: str, row: dict[str, float]) -> str:
    # NaN is not JSON: write it as null so that other tools can read the file
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    return json.dumps({"kind": kind, **clean}) + "\n"


# ----------------------------------------------------------------------------------------------------
# Checkpoints and random states


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename it over ``path``: a crash
    mid-write leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


CHECKPOINT_KEYS = ("format", "config", "epoch", "step_in_epoch", "global_step", "generator", "discriminator",
                   "opt_g", "opt_d", "sched_g", "sched_d", "scaler", "rng", "history", "best")


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Read a training checkpoint with ``torch.load(weights_only=True)`` (tensors and plain containers
    only: loading runs no code from the file). A missing file is ``FileNotFoundError``; a truncated,
    corrupt or foreign file is :class:`CheckpointError`; both name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # zip, pickle and EOF errors all mean the same thing here
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): {type(error).__name__}: {error}"
        ) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an expolib training checkpoint (format {CHECKPOINT_FORMAT!r})")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete checkpoint: missing {', '.join(missing)}")
    return state


def _rng_state(device: torch.device) -> dict[str, Any]:
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


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    python_state = tuple(int(v) for v in state["python"].tolist())
    random.setstate((state["python_version"], python_state, state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_cached"]))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class _SeededItems(Dataset):
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


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: seed NumPy and Python from the worker's torch seed (which the loader's
    seeded generator fixes), so that augmentations repeat from run to run."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class _SkipSampler(Sampler[int]):
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


# ----------------------------------------------------------------------------------------------------
# Processes


@dataclass(frozen=True)
class _Process:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_hint: Optional[str]) -> _Process:
    """Join the process group that ``torchrun`` describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_*);
    one process when WORLD_SIZE is unset or 1. NCCL between GPUs, Gloo between CPU processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Process()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device_hint is None or device_hint.startswith("cuda"))
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return _Process(dist.get_rank(), dist.get_world_size(), local_rank)


# ----------------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Train a :class:`Pix2Pix` on ``train_set`` (items ``{"input", "target", ...}`` in [-1, 1]).

    Writes to ``config.out_dir``: ``last.pt`` and ``best.pt`` (lowest validation L1, or training L1
    without a validation set), ``history.jsonl``, ``val_epoch_NNN.jpg`` (inputs, outputs and targets of
    the first validation batch, one row each; JPEG quality 90, to keep run folders small). Under
    ``torchrun`` every process trains on its share of each epoch and only rank 0 writes files and shows
    progress.

    Resuming is exact on the CPU: the data order depends only on (seed, epoch), each pair's
    augmentation only on (seed, epoch, index), with or without DataLoader workers, and the checkpoint
    holds every random state the step uses. That needs the same batch size, crop size and steps per
    epoch (a checkpoint with others is refused), the same training set and the same number of
    processes. On GPUs, whose kernels are not all bitwise reproducible, a resumed run matches an
    uninterrupted one statistically.
    """

    def __init__(self, config: TrainConfig, train_set: Dataset, val_set: Optional[Dataset] = None) -> None:
        self.config = config
        self.train_set, self.val_set = train_set, val_set
        self.process = _init_distributed(config.device)
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
        self._items = _SeededItems(train_set, config.seed)
        self.sampler = DistributedSampler(  # one process: a seeded shuffle; several: each its share
            train_set, num_replicas=self.process.world_size, rank=self.process.rank, shuffle=True,
            seed=config.seed,
        )
        per_process = len(self.sampler)
        if per_process == 0:
            raise ValueError("the training set is empty")
        # keep batches full, unless one batch is all there is
        self._drop_last = per_process >= config.batch_size
        full = per_process // config.batch_size if self._drop_last else 1
        self.steps_per_epoch = min(full, config.steps_per_epoch or full)
        self._written = (0, 0)  # history rows already in history.jsonl
        self._stop = False  # set by Ctrl-C: stop at the next step boundary
        self._consistent = True
        self._rng_snapshot = _rng_state(self.device)

    # -- paths and small helpers ------------------------------------------------------------------

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
            tqdm.write(message, file=sys.stderr)

    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        """This epoch's batches: a fixed order for (seed, epoch) and each item's augmentation fixed by
        (seed, epoch, index), so that a resumed run sees what an uninterrupted one would have; worker
        seeds come from a generator seeded the same way."""
        self.sampler.set_epoch(epoch)
        self._items.epoch = epoch
        seed = self.config.seed * 1_000_003 + epoch * 1009 + self.process.rank
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            self._items,
            batch_size=self.config.batch_size,
            sampler=_SkipSampler(self.sampler, skip_batches * self.config.batch_size),
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=self._drop_last,
            worker_init_fn=_seed_worker,
            generator=generator,
        )

    # -- checkpoints ------------------------------------------------------------------------------

    def _gather_rng(self) -> list[dict[str, Any]]:
        """Every process's random state at the last step boundary (all processes must call this)."""
        if self.process.world_size == 1:
            return [self._rng_snapshot]
        states: list[Any] = [None] * self.process.world_size
        dist.all_gather_object(states, self._rng_snapshot)
        return states

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: tensors, numbers, strings and lists/dicts of them."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "world_size": self.process.world_size,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.model.opt_g.state_dict(),
            "opt_d": self.model.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "scaler": self.model.scaler.state_dict(),
            "rng": self._gather_rng(),
            "history": self.history.to_dict(),
            "best": self.best,
        }

    def save_checkpoint(self, best: bool = False) -> Optional[Path]:
        """Write ``last.pt`` (and ``best.pt`` when ``best``) atomically; every process must call it,
        only rank 0 writes. Returns the path written (None on other ranks)."""
        state = self.state_dict()
        if not self.process.main:
            return None
        _atomic_save(state, self.last_path)
        if best:
            _atomic_save(state, self.best_path)
        self._write_history()
        return self.last_path

    def load_state_dict(self, state: dict[str, Any], source: PathLike = "checkpoint") -> None:
        """Restore a :meth:`state_dict` (networks, optimisers, schedulers, scaler, position, RNG, history)."""
        saved = TrainConfig.from_dict(state["config"])
        clashes = [f"{name}: checkpoint {getattr(saved, name)!r}, this run {getattr(self.config, name)!r}"
                   for name in ARCHITECTURE_FIELDS if getattr(saved, name) != getattr(self.config, name)]
        if clashes:
            raise CheckpointError(f"{source} was trained with other networks; " + "; ".join(clashes))
        clashes = [f"{name}: checkpoint {getattr(saved, name)!r}, this run {getattr(self.config, name)!r}"
                   for name in DATA_FIELDS if getattr(saved, name) != getattr(self.config, name)]
        if clashes:
            raise CheckpointError(
                f"{source} was trained with other data settings; resuming would skip the wrong pairs "
                "(resume with the checkpoint's settings, or start a new run in another folder): "
                + "; ".join(clashes)
            )
        try:
            self.generator.load_state_dict(state["generator"])
            self.discriminator.load_state_dict(state["discriminator"])
            self.model.opt_g.load_state_dict(state["opt_g"])
            self.model.opt_d.load_state_dict(state["opt_d"])
            self.sched_g.load_state_dict(state["sched_g"])
            self.sched_d.load_state_dict(state["sched_d"])
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
        _set_rng_state(rng[self.process.rank % len(rng)], self.device)
        self._rng_snapshot = _rng_state(self.device)
        self._written = (0, 0)  # rewrite history.jsonl from the checkpoint's history

    def _write_history(self) -> None:
        """Bring ``history.jsonl`` up to date with :attr:`history` (append; rewrite after a resume)."""
        n_batches, n_epochs = self._written
        mode = "a" if self._written != (0, 0) else "w"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "history.jsonl", mode, encoding="utf-8") as handle:
            for row in self.history.batches[n_batches:]:
                handle.write(_json_line("batch", row))
            for row in self.history.epochs[n_epochs:]:
                handle.write(_json_line("epoch", row))
        self._written = (len(self.history.batches), len(self.history.epochs))

    def export_generator(self, path: PathLike, half: bool = False) -> Path:
        """Save the generator for shipping (safetensors with its configuration), see
        :func:`expolib.models.save_generator`; ``half=True`` stores its floats as float16 (half the
        size). Load it back with :func:`expolib.models.load_generator`."""
        return save_generator(self.generator, path, half=half)

    # -- validation -------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self, save_grid: Optional[PathLike] = None) -> dict[str, float]:
        """Mean L1 (in [-1, 1] units, like the training L1) and PSNR (dB, images in [0, 1]) of the
        generator in eval mode on the validation set; optionally save a grid of the first batch."""
        if self.val_set is None:
            return {"val_l1": math.nan, "val_psnr": math.nan}
        loader = DataLoader(self.val_set, batch_size=self.config.batch_size, shuffle=False,
                            num_workers=self.config.num_workers)
        l1_sum, psnr_sum, count = 0.0, 0.0, 0
        for index, batch in enumerate(loader):
            if self.config.val_batches is not None and index >= self.config.val_batches:
                break
            out = self.model.correct(batch["input"])  # (B, 3, H, W) in [-1, 1]
            target = batch["target"].to(out.device)
            l1_sum += (out - target).abs().mean(dim=(1, 2, 3)).sum().item()
            # per image, in [0, 1] units; capped at 100 dB so that a perfect image keeps the mean finite
            psnr_sum += psnr_batch(denormalize(out), denormalize(target)).clamp(max=100.0).sum().item()
            count += out.shape[0]
            if index == 0 and save_grid is not None:
                self._save_grid(batch["input"], out, batch["target"], Path(save_grid))
        return {"val_l1": l1_sum / max(count, 1), "val_psnr": psnr_sum / max(count, 1)}

    @staticmethod
    def _save_grid(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, path: Path) -> None:
        """Inputs, outputs and targets (one row each, up to 8 columns) as a JPEG of quality 90."""
        from PIL import Image
        from torchvision.utils import make_grid

        n = min(8, inputs.shape[0])
        rows = [denormalize(t[:n].detach().float().cpu()) for t in (inputs, outputs, targets)]
        grid = make_grid(torch.cat(rows), nrow=n, padding=2)  # (3, H, W) in [0, 1]
        pixels = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, format="JPEG", quality=90)

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
        if resume:
            path = self.last_path if resume is True else Path(resume)
            if path.is_file() or resume is not True:
                self.load_state_dict(load_checkpoint(path), source=path)
                self._print(f"resumed from {path} at epoch {self.epoch + 1}, step {self.step_in_epoch}")
            else:
                self._print(f"no checkpoint at {path}: starting a new run")
        if self.process.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._stop = False
        previous = self._install_sigint()
        total = self.config.epochs * self.steps_per_epoch
        bar = tqdm(total=total, initial=min(total, self.epoch * self.steps_per_epoch + self.step_in_epoch),
                   desc="training", unit="step", disable=not (self.config.progress and self.process.main),
                   dynamic_ncols=True)
        self._consistent = True  # False while networks, optimisers and counters disagree (mid-update)
        try:
            self._loop(bar, max_steps)
        except KeyboardInterrupt:
            if self._consistent:
                path = self.save_checkpoint()
                self._print(f"interrupted at epoch {self.epoch + 1}, step {self.step_in_epoch}: "
                            f"saved {path}; continue with fit(resume=True) or "
                            "`python -m expolib train --resume`")
            else:
                self._print("interrupted in the middle of an update: the last checkpoint was kept as it was")
            raise
        except TrainingDiverged:
            raise  # the last good checkpoint must stay as it is
        except Exception as error:
            self._save_after_error(error)
            raise
        finally:
            bar.close()
            self._restore_sigint(previous)
        return self.history

    def _save_after_error(self, error: Exception) -> None:
        """Save ``last.pt`` after an unexpected error when networks, optimisers and counters agree."""
        what = f"{type(error).__name__} at epoch {self.epoch + 1}, step {self.step_in_epoch}"
        if self.process.world_size > 1:  # a checkpoint is a collective: the other processes are not here
            self._print(f"{what}: the last checkpoint was kept as it was")
        elif not self._consistent:
            self._print(f"{what}, in the middle of an update: the last checkpoint was kept as it was")
        else:
            try:
                path = self.save_checkpoint()
            except Exception as save_error:  # e.g. the disk is full: report it, raise the first error
                self._print(f"{what}; saving a checkpoint failed too: "
                            f"{type(save_error).__name__}: {save_error}")
                return
            self._print(f"{what}: saved {path}; fix the cause, then continue with fit(resume=True) or "
                        "`python -m expolib train --resume`")

    def _install_sigint(self) -> Any:
        """First Ctrl-C: finish the step, save, stop. A second one interrupts at once."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True
            self._print("stopping after this step (Ctrl-C again to stop at once)")

        try:
            return signal.signal(signal.SIGINT, handler)
        except ValueError:  # not allowed here (e.g. some embedded interpreters)
            return None

    @staticmethod
    def _restore_sigint(previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    def _stop_requested(self) -> bool:
        if self.process.world_size == 1:
            return self._stop
        where = self.device if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([float(self._stop)], device=where)
        dist.all_reduce(flag)  # everyone stops at the same step, so the checkpoint is a collective
        return bool(flag.item() > 0)

    def _loop(self, bar: tqdm, max_steps: Optional[int]) -> None:
        config, done = self.config, 0
        self.model.train()
        while self.epoch < config.epochs:
            epoch = self.epoch
            lr = self.model.opt_g.param_groups[0]["lr"]
            batches = iter(self._loader(epoch, self.step_in_epoch))
            epoch_start, epoch_steps = time.perf_counter(), 0
            sums = dict.fromkeys(BATCH_KEYS, 0.0)
            while self.step_in_epoch < self.steps_per_epoch:
                if self._stop_requested():
                    raise KeyboardInterrupt
                if max_steps is not None and done >= max_steps:
                    self.save_checkpoint()
                    self._print(f"stopped after {done} steps (max_steps) at epoch {epoch + 1}, "
                                f"step {self.step_in_epoch}; saved {self.last_path}")
                    return
                batch = next(batches)
                self._consistent = False
                try:
                    losses = self.model.train_step(batch["input"], batch["target"])
                except TrainingDiverged as error:
                    raise TrainingDiverged(
                        f"training diverged at epoch {epoch + 1}, step {self.step_in_epoch + 1} "
                        f"(global step {self.global_step + 1}): {error}; the checkpoints in {self.out_dir} "
                        "were left as they were (try a lower learning rate or amp=False)"
                    ) from error
                values = dict(zip(BATCH_KEYS, torch.stack(list(losses)).tolist()))
                self.step_in_epoch += 1
                self.global_step += 1
                self.history.batches.append({"epoch": epoch, "step": self.global_step, "lr": lr, **values})
                self._rng_snapshot = _rng_state(self.device)
                self._consistent = True
                done += 1
                epoch_steps += 1
                for key in BATCH_KEYS:
                    sums[key] += values[key]
                bar.update(1)
                running = {k: f"{total / epoch_steps:.3g}" for k, total in sums.items()}
                bar.set_postfix({"epoch": epoch + 1, **running}, refresh=False)
                if config.checkpoint_every and self.global_step % config.checkpoint_every == 0:
                    self.save_checkpoint()
            self._end_epoch(epoch, lr, time.perf_counter() - epoch_start, epoch_steps)

    def _end_epoch(self, epoch: int, lr: float, seconds: float, steps: int) -> None:
        rows = [r for r in self.history.batches if r["epoch"] == epoch]  # includes steps before a resume
        means = {k: float(np.mean([r[k] for r in rows])) if rows else math.nan for k in BATCH_KEYS}
        metrics = {"val_l1": math.nan, "val_psnr": math.nan}
        if self.process.main:  # changes no state: an error here can still save the epoch's steps
            metrics = self.validate(save_grid=self.out_dir / f"val_epoch_{epoch + 1:03d}.jpg")
        self._consistent = False
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
        if improved:
            self.best = score
        self._rng_snapshot = _rng_state(self.device)
        self._consistent = True
        self.save_checkpoint(best=improved)
        extra = ""
        if self.val_set is not None:
            extra = f", val L1 {metrics['val_l1']:.4f}, val PSNR {metrics['val_psnr']:.2f} dB"
        self._print(f"epoch {epoch + 1}/{self.config.epochs}: G L1 {means['g_l1']:.4f}, "
                    f"G adv {means['g_adv']:.3f}, D real {means['d_real']:.3f}, "
                    f"D fake {means['d_fake']:.3f}{extra}")


# ----------------------------------------------------------------------------------------------------
# Short loops for experiments


def endless(loader: Iterable[T]) -> Iterator[T]:
    """Go through ``loader`` (a DataLoader, or anything that can be iterated again) over and over,
    for loops that count steps rather than epochs. A shuffling DataLoader gives a new order on each
    pass. A loader that yields nothing raises ``ValueError`` instead of looping for ever."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("endless: the loader yields no batches (an empty dataset, or drop_last with "
                             "fewer items than one batch?)")


RECONSTRUCTION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss,  # mean absolute error, pix2pix's reconstruction term
    "l2": F.mse_loss,  # mean squared error
}


def fit_reconstruction(model: nn.Module, loader: Iterable[dict[str, Any]], steps: int, lr: float,
                       loss: str = "l1", betas: tuple[float, float] = (0.5, 0.999),
                       desc: Optional[str] = None, progress: bool = True) -> list[float]:
    """Train ``model`` alone for ``steps`` Adam steps to map ``batch["input"]`` to ``batch["target"]``
    under a reconstruction loss (``"l1"`` or ``"l2"``), cycling through ``loader``; return the loss of
    every step.

    No discriminator, no schedule, no checkpoints: the bare loop for short comparisons of networks or
    losses. Batches go to the device of the model's parameters; the model is left in train mode.
    """
    if loss not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"loss must be one of {tuple(RECONSTRUCTION_LOSSES)}, got {loss!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    loss_fn = RECONSTRUCTION_LOSSES[loss]
    device = next(model.parameters()).device
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    batches = endless(loader)
    losses = []
    for _ in tqdm(range(steps), desc=desc or f"{loss.upper()} training", disable=not progress):
        batch = next(batches)
        x, y = batch["input"].to(device), batch["target"].to(device)
        value = loss_fn(model(x), y)
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        optimiser.step()
        losses.append(value.item())
    return losses


# ----------------------------------------------------------------------------------------------------
# Command line


def _datasets(args: argparse.Namespace, config: TrainConfig) -> tuple[Dataset, Optional[Dataset]]:
    """The training (and validation) pairs the command line asks for; the embedded photos by default."""
    from expolib import data

    size = config.image_size
    if args.msec is not None:
        return (data.MSECPairs(args.msec, split="train", size=size, augment=True),
                data.MSECPairs(args.msec, split="val", size=size, augment=False))
    if args.photos is not None:
        return data.PhotoFolderPairs(args.photos, size=size, augment=True, seed=config.seed), None
    if args.pairs is not None:
        return data.PairFolder(args.pairs[0], args.pairs[1], size=size, augment=True, seed=config.seed), None
    return (data.EmbeddedPairs("train", size=size, augment=True, seed=config.seed),
            data.EmbeddedPairs("val", size=size, augment=False, crops_per_photo=2, seed=config.seed))


class _Auto:
    """What "auto" / "all" parse to on the command line: the TrainConfig value None (choose for me),
    as opposed to an option left out (take the budget's value)."""

    def __repr__(self) -> str:
        return "auto"


AUTO = _Auto()


def parse_switch(text: str) -> Union[bool, _Auto]:
    """Command-line on/off/auto (also true/false, yes/no, 1/0)."""
    value = text.strip().lower()
    if value in ("auto", "none"):
        return AUTO
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected on, off or auto, got {text!r}")


def _optional_int(text: str) -> Union[int, _Auto]:
    return AUTO if text.strip().lower() in ("none", "all", "auto") else int(text)


_HELP = {
    "epochs": "passes over the training set", "batch_size": "pairs per step (per process)",
    "image_size": "side of the square training crops", "lr": "Adam learning rate (pix2pix: 2e-4)",
    "lambda_l1": "weight of the L1 term in G's loss (pix2pix: 100)",
    "gan_mode": "adversarial loss: vanilla (BCE on logits) or lsgan (least squares)",
    "ngf": "generator base width", "ndf": "discriminator base width", "depth": "U-Net levels",
    "n_layers": "PatchGAN strided layers (3: 70x70 patches)", "norm": "normalisation layers",
    "lr_policy": "linear: constant, then linear decay to 0; constant: never changes",
    "decay_epochs": "epochs of linear decay at the end (default: half)",
    "steps_per_epoch": "cap on steps per epoch ('all' for the whole set)",
    "val_batches": "cap on validation batches per epoch ('all' for every one)",
    "checkpoint_every": "also save last.pt every N steps (0: end of epochs only)",
    "seed": "random seed (initialisation, data order, augmentation, dropout)",
    "device": "cuda, cuda:N, mps or cpu (default: the best available)",
    "amp": "mixed precision: on, off or auto (auto: on for CUDA)",
    "channels_last": "channels-last memory format: on, off or auto (auto: on for CUDA)",
    "gemm_convolutions": "compute small transposed convolutions as matrix products: on, off or auto "
                         "(auto: on for the CPU, where it is faster)",
    "compile": "compile the networks with torch.compile", "num_workers": "DataLoader worker processes",
    "progress": "show a progress bar",
}


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``python -m expolib train``."""
    parser = subparsers.add_parser(
        "train",
        help="train the pix2pix GAN (embedded photos, MSEC or your own photos)",
        description=(
            "Train the U-Net generator and PatchGAN discriminator. Sizes and counts come from the budget "
            "(--budget or $EXPOLIB_BUDGET); every setting below overrides it. Writes last.pt, best.pt, "
            "history.jsonl and a validation grid per epoch to --out. Run the same command under "
            "`torchrun --nproc_per_node N -m expolib train ...` for several GPUs or processes."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--msec", metavar="DIR",
                        help="train on the MSEC dataset in DIR (its validation split validates)")
    source.add_argument("--photos", metavar="DIR",
                        help="train on pairs rendered from your well-exposed photos in DIR")
    source.add_argument("--pairs", nargs=2, metavar=("INPUT_DIR", "TARGET_DIR"),
                        help="train on ready-made pairs matched by file name")
    parser.add_argument("--budget", choices=["quick", "standard", "full"], default=None,
                        help="sizes and counts to start from (default: $EXPOLIB_BUDGET or standard)")
    parser.add_argument("--out", metavar="DIR", default=None, help="output folder (default: runs/pix2pix)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue from DIR/last.pt (or from CHECKPOINT) if it exists")
    parser.add_argument("--export", metavar="PATH", default=None,
                        help="after training, save the generator to PATH (safetensors) for `expolib correct`")
    parser.add_argument("--export-half", action="store_true",
                        help="store the exported generator's weights as float16 (half the file size)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop (with a checkpoint) after N steps")
    settings = parser.add_argument_group("training settings (default: from the budget, else pix2pix's)")
    skip = {"out_dir"}
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": None, "help": _HELP.get(f.name, f.name)}
        if f.name == "betas":
            settings.add_argument(flag, type=float, nargs=2, metavar=("BETA1", "BETA2"),
                                  help="Adam betas (pix2pix: 0.5 0.999)", default=None)
            continue
        if f.name in ("amp", "channels_last", "gemm_convolutions"):
            kwargs.update(type=parse_switch, metavar="on|off|auto")
        elif f.name in ("compile", "progress"):
            kwargs.update(type=parse_switch, metavar="on|off")
        elif f.name in ("steps_per_epoch", "val_batches", "decay_epochs"):
            kwargs.update(type=_optional_int, metavar="N")
        elif f.name == "gan_mode":
            kwargs.update(choices=GAN_MODES)
        elif f.name == "lr_policy":
            kwargs.update(choices=LR_POLICIES)
        elif f.name == "norm":
            kwargs.update(choices=NORMS)
        elif f.type in ("int", int):
            kwargs.update(type=int)
        elif f.type in ("float", float):
            kwargs.update(type=float)
        settings.add_argument(flag, **kwargs)
    parser.set_defaults(func=_run_cli)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the command line describes: the budget's, then every option given."""
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if f.name != "out_dir" and getattr(args, f.name, None) is not None}
    overrides = {name: (None if value is AUTO else value) for name, value in overrides.items()}
    if args.out is not None:
        overrides["out_dir"] = args.out
    return TrainConfig.from_budget(get_budget(args.budget), **overrides)


def _error_line(error: BaseException) -> str:
    """``error: <message>`` on one line, for the command line's stderr."""
    message = " ".join(str(error).split()) or type(error).__name__
    return f"error: {message}"


def _run_cli(args: argparse.Namespace) -> int:
    if args.export_half and not args.export:
        print("error: --export-half needs --export PATH", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
        train_set, val_set = _datasets(args, config)
        trainer = Trainer(config, train_set, val_set)
    except (ValueError, OSError) as error:  # bad settings, a missing folder, a dataset laid out wrongly
        print(_error_line(error), file=sys.stderr)
        return 2
    main = trainer.process.main
    if main:
        print(f"training on {trainer.device} ({trainer.process.world_size} process(es)): "
              f"{len(train_set)} training pairs, {trainer.steps_per_epoch} steps per epoch, "
              f"output in {config.out_dir}", file=sys.stderr)
    status = 0
    try:
        trainer.fit(resume=args.resume, max_steps=args.max_steps)
        if args.export and main:
            path = trainer.export_generator(args.export, half=args.export_half)
            print(f"generator saved to {path}" + (" (float16)" if args.export_half else ""), file=sys.stderr)
    except KeyboardInterrupt:
        status = 130
    except TrainingDiverged as error:
        print(_error_line(error), file=sys.stderr)
        status = 1
    except (ValueError, OSError, CheckpointError) as error:
        # a photo that cannot be read (ImageLoadError), a dataset laid out wrongly (DatasetLayoutError),
        # a missing or unwritable file, a checkpoint that does not fit: the reader's to fix, no traceback
        print(_error_line(error), file=sys.stderr)
        status = 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return status


__all__ = [
    "ARCHITECTURE_FIELDS",
    "DATA_FIELDS",
    "RECONSTRUCTION_LOSSES",
    "CheckpointError",
    "GemmConvTranspose2d",
    "History",
    "Pix2Pix",
    "StepLosses",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "add_cli",
    "autocast_dtype",
    "config_from_args",
    "endless",
    "fit_reconstruction",
    "load_checkpoint",
    "lr_factor",
    "native_bf16",
    "use_gemm_transposed_convolutions",
]
