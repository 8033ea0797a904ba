"""One pix2pix training step, and the pair of networks it trains.

- :class:`Pix2Pix` takes the two built networks, the run's settings and its
  :class:`~expolib.config.Runtime`, and owns their Adam optimisers and :meth:`Pix2Pix.train_step`:
  D on the detached fake, then G through the frozen D, with one G forward per step. The step returns
  its loss terms by name.
- :func:`build_pix2pix` builds the networks a :class:`TrainConfig` describes (through
  :mod:`expolib.networks.factory`); :func:`prepare_pix2pix` is what a run does first: decide the
  runtime, join ``torchrun``'s processes, seed, build.
- :class:`TrainingDiverged` stops a step whose loss is NaN or infinite.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from expolib.config import Runtime, seed_everything
from expolib.networks.factory import build_discriminator, build_generator
from expolib.networks.modelfile import working_side_for
from expolib.training.config import TrainConfig
from expolib.training.distributed import Process, init_distributed
from expolib.training.losses import AdversarialLoss, discriminator_loss, generator_loss


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the checkpoints on disk are left as they were.

    What happened in memory depends on how the step checked. :meth:`Pix2Pix.train_step` with
    ``check=True`` checks the discriminator's loss before either network steps, so then neither network
    changed; the generator's loss only exists after the discriminator's update (it is computed through
    the updated discriminator), so then the discriminator has already taken its step while the
    generator has not. The trainer's unchecked steps skip every poisoned update on the device and find
    the bad loss up to :data:`expolib.training.progress.LOG_EVERY` steps later: the weights then hold no
    update from it, but the networks' normalisation statistics may. Either way, resume from ``last.pt``
    rather than using the in-memory networks after this error.
    """


def _adam(params: Iterator[nn.Parameter], config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with pix2pix's settings; the fused kernel (one pass over all parameters) where PyTorch has one."""
    fused = device.type in ("cuda", "cpu")
    return torch.optim.Adam(params, lr=config.lr, betas=config.betas, fused=fused, foreach=None)


# ----------------------------------------------------------------------------------------------------
# The networks and one training step


class Pix2Pix:
    """The generator and the discriminator, their optimisers, and one training step.

    Takes the networks as built (see :func:`build_pix2pix`), moves them to the runtime's device and
    memory format and, when ``process`` is one of several, wraps them in DistributedDataParallel.
    ``config`` gives the optimisers' and the loss's settings (``lr``, ``betas``, ``gan_mode``,
    ``lambda_l1``). No data, no files: :class:`expolib.training.trainer.Trainer` adds those;
    ``python -m expolib bench`` times :meth:`train_step` alone.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, config: TrainConfig, runtime: Runtime,
                 process: Optional[Process] = None) -> None:
        self.config, self.runtime = config, runtime
        self.process = process if process is not None else Process()
        fmt = runtime.memory_format
        self.generator = generator.to(runtime.device, memory_format=fmt)
        self.discriminator = discriminator.to(runtime.device, memory_format=fmt)
        self.opt_g = _adam(self.generator.parameters(), config, runtime.device)
        self.opt_d = _adam(self.discriminator.parameters(), config, runtime.device)
        self.adversarial = AdversarialLoss(config.gan_mode)
        # fp16 needs loss scaling (its small gradients underflow); bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.grad_scaling)

        g: nn.Module = self.generator
        d: nn.Module = self.discriminator
        self.distributed = self.process.world_size > 1
        if self.distributed:
            ids = [runtime.device.index] if runtime.device.type == "cuda" else None
            g = DistributedDataParallel(g, device_ids=ids)
            d = DistributedDataParallel(d, device_ids=ids)
        # In G's update D only passes gradients through to the fake: its own weights are frozen, so
        # the plain module is used there and DDP has no gradients of D to synchronise.
        d_for_g: nn.Module = self.discriminator
        if runtime.compile:
            g, d, d_for_g = torch.compile(g), torch.compile(d), torch.compile(d_for_g)
        self._g, self._d, self._d_for_g = g, d, d_for_g
        self._buffers = [*self.generator.buffers(), *self.discriminator.buffers()]
        self._fused = bool(self.opt_g.defaults.get("fused"))
        self.last_totals: Optional[torch.Tensor] = None  # (D's, G's) total loss of the last step

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward passes when the runtime has it, else nothing."""
        return self.runtime.autocast_context()

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """A batch on the device, in the networks' memory format."""
        return self.runtime.prepare(images)

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor,
                   check: bool = True) -> dict[str, torch.Tensor]:
        """One pix2pix update of D, then of G, on a batch of pairs in [-1, 1]: (B, 3, H, W) each.
        Returns the loss terms by name (detached scalars on the device): G's ``g_adv`` and ``g_l1``,
        D's ``d_real`` and ``d_fake``.

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
        return {**g_loss.terms, **d_loss.terms}

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


def build_pix2pix(config: TrainConfig, runtime: Runtime, process: Optional[Process] = None) -> Pix2Pix:
    """The networks ``config`` describes, built by :mod:`expolib.networks.factory` (seed the RNGs first
    for a repeatable initialisation), in a :class:`Pix2Pix`. The generator computes its transposed
    convolutions as the runtime says and knows the side it will correct photos at."""
    g_config = dataclasses.replace(config.generator, gemm_upsampling=runtime.gemm_convolutions)
    generator = build_generator(g_config)
    generator.working_side = working_side_for(config.image_size, config.crop_scale)
    return Pix2Pix(generator, build_discriminator(config.discriminator), config, runtime, process)


def prepare_pix2pix(config: TrainConfig, runtime: Optional[Runtime] = None) -> Pix2Pix:
    """What a training run does first: decide the runtime (:meth:`TrainConfig.runtime`, unless
    given), join ``torchrun``'s process group when there is one, seed this process
    (``config.seed + rank``: each process its own random stream; DDP gives all of them rank 0's
    initial weights) and build the networks (:func:`build_pix2pix`)."""
    runtime = runtime if runtime is not None else config.runtime()
    process = init_distributed(runtime)
    seed_everything(config.seed + process.rank)
    return build_pix2pix(config, runtime, process)


__all__ = ["Pix2Pix", "TrainingDiverged", "build_pix2pix", "prepare_pix2pix"]
