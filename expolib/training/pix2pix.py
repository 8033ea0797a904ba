"""One pix2pix training step and the precision policy it runs under.

- :class:`Pix2Pix` owns the two networks, their Adam optimisers and :meth:`Pix2Pix.train_step`:
  D on the detached fake, then G through the frozen D, with one G forward per step.
- :func:`device_defaults` is the one rule for the device-dependent "auto" settings (mixed precision,
  channels-last tensors, GEMM transposed convolutions), used by the trainer and by ``bench`` alike;
  :func:`autocast_dtype` and :func:`native_bf16` are its precision half.
- :class:`TrainingDiverged` stops a step whose loss is NaN or infinite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import NamedTuple, Optional, Union

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from expolib.config import pick_device
from expolib.networks.models import PatchDiscriminator, UNetGenerator
from expolib.training.config import TrainConfig
from expolib.training.losses import AdversarialLoss, discriminator_loss, generator_loss


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the checkpoints on disk are left as they were.

    What happened in memory depends on how the step checked. :meth:`Pix2Pix.train_step` with
    ``check=True`` checks the discriminator's loss before either network steps, so then neither network
    changed; the generator's loss only exists after the discriminator's update (it is computed through
    the updated discriminator), so then the discriminator has already taken its step while the
    generator has not. The trainer's unchecked steps skip every poisoned update on the device and find
    the bad loss up to :data:`expolib.training.trainer.LOG_EVERY` steps later: the weights then hold no update
    from it, but the networks' normalisation statistics may. Either way, resume from ``last.pt``
    rather than using the in-memory networks after this error.
    """


class StepLosses(NamedTuple):
    """The four numbers a step logs (detached scalars): G's adversarial and L1 terms, D's real and fake."""

    g_adv: torch.Tensor
    g_l1: torch.Tensor
    d_real: torch.Tensor
    d_fake: torch.Tensor


# ----------------------------------------------------------------------------------------------------
# What "auto" means on each device


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

    ``config.amp=None`` (auto) turns mixed precision on for CUDA, and for CPUs that compute bfloat16
    natively (AVX512-BF16, AMX): standard-budget runs in bf16 ended within 0.2 dB of validation PSNR
    of the same runs in float32 (measured with emulated bf16, which computes the same numbers
    slowly). CUDA uses bfloat16 where the GPU supports it (same range as float32: no loss
    scaling needed), else float16 (with a GradScaler). A CPU without native bf16 would emulate it,
    several times slower than float32, so auto keeps float32 there; ``amp=True`` forces bf16 anyway.
    """
    auto = device.type == "cuda" or (device.type == "cpu" and native_bf16(device))
    wanted = config.amp if config.amp is not None else auto
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


class DeviceSettings(NamedTuple):
    """How a step runs on one device, with every "auto" of the config decided."""

    amp_dtype: Optional[torch.dtype]  # None: plain float32
    channels_last: bool
    gemm_upsampling: bool


def device_defaults(config: TrainConfig, device: torch.device) -> DeviceSettings:
    """Decide the config's "auto" (None) settings for ``device``: mixed precision as
    :func:`autocast_dtype` says, channels-last tensors on CUDA, and GEMM transposed convolutions
    (:class:`expolib.networks.layers.GemmConvTranspose2d`) on the CPU, where they are faster. Settings the
    config gives are kept."""
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"
    gemm = config.gemm_convolutions if config.gemm_convolutions is not None else device.type == "cpu"
    return DeviceSettings(autocast_dtype(config, device), channels_last, gemm)


def _adam(params: Iterator[nn.Parameter], config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with pix2pix's settings; the fused kernel (one pass over all parameters) where PyTorch has one."""
    fused = device.type in ("cuda", "cpu")
    return torch.optim.Adam(params, lr=config.lr, betas=config.betas, fused=fused, foreach=None)


# ----------------------------------------------------------------------------------------------------
# The networks and one training step


class Pix2Pix:
    """The generator and the discriminator, their optimisers, and one training step.

    Builds the networks from ``config`` (seed the RNGs first for a repeatable initialisation), moves
    them to ``device`` and, when ``distributed``, wraps them in DistributedDataParallel. No data, no
    files: :class:`expolib.training.trainer.Trainer` adds those; ``python -m expolib bench`` times
    :meth:`train_step` alone.
    """

    def __init__(self, config: TrainConfig, device: Union[str, torch.device, None] = None,
                 distributed: bool = False) -> None:
        self.config = config
        self.device = torch.device(device) if device is not None else pick_device(config.device)
        self.settings = device_defaults(config, self.device)
        self.amp_dtype = self.settings.amp_dtype
        fmt = torch.channels_last if self.settings.channels_last else torch.contiguous_format
        self.memory_format = fmt

        g_config = dataclasses.replace(config.generator_config(),
                                       gemm_upsampling=self.settings.gemm_upsampling)
        self.generator = UNetGenerator(g_config).to(self.device, memory_format=fmt)
        self.discriminator = PatchDiscriminator(config.discriminator_config())
        self.discriminator.to(self.device, memory_format=fmt)
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
        self._fused = bool(self.opt_g.defaults.get("fused"))
        self.distributed = distributed
        self.last_totals: Optional[torch.Tensor] = None  # (D's, G's) total loss of the last step

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward passes when enabled, else nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """A batch on the device, in the networks' memory format."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=self.memory_format)

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor, check: bool = True) -> StepLosses:
        """One pix2pix update of D, then of G, on a batch of pairs in [-1, 1]: (B, 3, H, W) each.

        ``check=True``: a NaN or infinite loss raises :class:`TrainingDiverged` before the update it
        would poison, and the normalisation statistics that this step's forward passes changed are put
        back. A non-finite generator loss is found after the discriminator's update, which stays (see
        :class:`TrainingDiverged`). That check reads the losses on the host: on a GPU it waits for the
        step to finish, twice.

        ``check=False`` (what :class:`expolib.training.trainer.Trainer` uses): no waiting. The optimisers are
        told on the device to skip their update when either loss is not finite (Adam's fused kernel
        takes a ``found_inf`` flag, the mechanism PyTorch's loss scaling uses), so a poisoned step
        changes no weight and no Adam state; :attr:`last_totals` holds both total losses for the
        caller to check later, when it reads the losses anyway. The normalisation statistics of a
        poisoned forward pass are not put back: a caller that finds one resumes from a checkpoint.
        Optimisers without the fused kernel (MPS) always check.
        """
        check = check or not self._fused
        x, y = self.prepare(inputs), self.prepare(targets)
        guard = self._statistics_kept_if_diverged() if check else contextlib.nullcontext()
        with guard:
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
            d_bad = None if check else self._any_process((~torch.isfinite(d_loss.total.detach())).float())
            self._step(d_loss.total, self.opt_d, "discriminator", skip=d_bad)

            # 2. Generator: the updated D judges the same fake again, now with D's weights frozen
            #    (requires_grad False: no gradients are computed or stored for them).
            self.discriminator.requires_grad_(False)
            self.opt_g.zero_grad(set_to_none=True)
            with self.autocast():
                fake_logits = self._d_for_g(x, fake)
            g_loss = generator_loss(fake_logits.float(), fake.float(), y, self.adversarial,
                                    self.config.lambda_l1)
            g_bad = None
            if d_bad is not None:  # a step is skipped whole: G neither, when D's loss was bad
                g_finite = torch.isfinite(g_loss.total.detach())
                g_bad = torch.maximum(d_bad, self._any_process((~g_finite).float()))
            self._step(g_loss.total, self.opt_g, "generator", skip=g_bad)
            self.scaler.update()
        self.last_totals = torch.stack([d_loss.total.detach(), g_loss.total.detach()])
        return StepLosses(g_loss.adversarial, g_loss.l1, d_loss.real, d_loss.fake)

    def _any_process(self, flag: torch.Tensor) -> torch.Tensor:
        """``flag`` (1 for "skip") raised in any process: DDP averages the gradients of all processes,
        so one process's bad loss spoils every process's update (a collective on the device, no wait)."""
        if self.distributed:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return flag

    def _step(self, loss: torch.Tensor, optimiser: torch.optim.Optimizer, who: str,
              skip: Optional[torch.Tensor] = None) -> None:
        """Backward pass and optimiser step for one network's loss (scaled for fp16). Without ``skip``
        a NaN or infinite loss raises :class:`TrainingDiverged` first; with it (a 0-d float tensor on
        the device, 1 for "skip") the fused optimiser leaves the weights alone when it is set."""
        if skip is None and not torch.isfinite(loss).item():
            raise TrainingDiverged(f"the {who}'s loss is {loss.item()}")
        self.scaler.scale(loss).backward()
        if skip is not None and not self.scaler.is_enabled():
            optimiser.found_inf = skip  # type: ignore[attr-defined]  # read by fused Adam's step
            try:
                optimiser.step()
            finally:
                del optimiser.found_inf  # type: ignore[attr-defined]
        else:
            self.scaler.step(optimiser)  # fp16: the scaler skips steps with inf/NaN gradients itself

    @contextlib.contextmanager
    def _statistics_kept_if_diverged(self) -> Iterator[None]:
        """Put the BatchNorm running statistics back when the step inside raises TrainingDiverged."""
        saved = [b.detach().clone() for b in self._buffers]  # tiny
        try:
            yield
        except TrainingDiverged:
            with torch.no_grad():
                for buffer, value in zip(self._buffers, saved):
                    buffer.copy_(value)
            raise

    def train(self) -> None:
        """Both networks in train mode."""
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


__all__ = ["DeviceSettings", "Pix2Pix", "StepLosses", "TrainingDiverged", "autocast_dtype",
           "device_defaults", "native_bf16"]
