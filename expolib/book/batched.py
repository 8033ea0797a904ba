"""Several small networks trained as one: the seeds of an experiment in a single batched model.

A network of the chapters' experiment size leaves most of a CPU idle: its convolutions are too small
to keep the cores busy. The functions here train one copy of a network per seed, all at once:
:func:`torch.func.stack_module_state` stacks the copies' weights along a new first dimension, and
:func:`torch.vmap` runs the stacked copies on their own batches in one call, which turns each
convolution into a single grouped convolution over all the copies. Each copy still sees only its own
batches, its own BatchNorm statistics and its own Adam moments (Adam works element by element, so one
optimiser over the stacked weights is one optimiser per copy), so the result is that of training the
copies one after another; only dropout draws its masks differently.

- :func:`fit_reconstruction_seeds`: generators on L1 or L2 alone (:func:`expolib.book.loops.fit_reconstruction`).
- :func:`fit_pix2pix_seeds`: pix2pix's step (:meth:`expolib.training.pix2pix.Pix2Pix.train_step`).
- :func:`fit_discriminator_seeds`: PatchGANs alone, real pairs against given fakes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from expolib.book.loops import RECONSTRUCTION_LOSSES, endless
from expolib.progress import progress_bar
from expolib.training.losses import AdversarialLoss, discriminator_loss, generator_loss
from expolib.training.pix2pix import Pix2Pix

Batch = dict[str, Any]


class Stack:
    """Copies of one architecture as stacked weights (``params``, ``buffers``: leading dimension = copy)
    and a function that runs one copy on its own arguments, for :func:`torch.vmap`."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        self.models = list(models)
        for model in self.models:
            model.train()
        self.params, self.buffers = stack_module_state(self.models)
        self._skeleton = copy.deepcopy(self.models[0]).to("meta")  # the architecture, no storage

    def __call__(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 *args: torch.Tensor) -> torch.Tensor:
        """One copy's forward pass (inside vmap: ``params`` and ``buffers`` are that copy's)."""
        return functional_call(self._skeleton, (params, buffers), args)

    def adam(self, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """One Adam over the stacked weights: element-wise, so one optimiser per copy."""
        return torch.optim.Adam(list(self.params.values()), lr=lr, betas=betas)

    def frozen(self) -> dict[str, torch.Tensor]:
        """The stacked weights, detached: a forward pass through them computes no gradient for them."""
        return {key: value.detach() for key, value in self.params.items()}

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy each copy's trained weights and BatchNorm statistics into its module (train mode)."""
        for i, model in enumerate(self.models):
            model.load_state_dict({**{k: v[i] for k, v in self.params.items()},
                                   **{k: v[i] for k, v in self.buffers.items()}})


def _check(models: Sequence[object], loaders: Sequence[object], steps: int) -> None:
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not models or len(models) != len(loaders):
        raise ValueError(f"need one loader per model, got {len(models)} models and {len(loaders)} loaders")


def _batches(loaders: Sequence[Iterable[Batch]], device: torch.device,
             keys: tuple[str, ...] = ("input", "target")) -> Iterator[tuple[torch.Tensor, ...]]:
    """Each step: the loaders' next batches, ``keys`` stacked, each ``(copies, B, ...)``."""
    streams = [endless(loader) for loader in loaders]
    while True:
        batches = [next(stream) for stream in streams]
        yield tuple(torch.stack([b[k] for b in batches]).to(device) for k in keys)


def fit_reconstruction_seeds(models: Sequence[nn.Module], loaders: Sequence[Iterable[Batch]],
                             steps: int, lr: float, loss: str = "l1",
                             betas: tuple[float, float] = (0.5, 0.999), desc: Optional[str] = None,
                             progress: bool = True) -> list[list[float]]:
    """Train ``models[i]`` on ``loaders[i]`` for ``steps`` Adam steps under a reconstruction loss, all
    models at once, as :func:`expolib.book.loops.fit_reconstruction` trains one; the trained weights
    and BatchNorm statistics are written back into ``models`` (left in train mode). The models share
    one architecture. Returns each model's loss at every step."""
    if loss not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"loss must be one of {tuple(RECONSTRUCTION_LOSSES)}, got {loss!r}")
    _check(models, loaders, steps)
    loss_fn = RECONSTRUCTION_LOSSES[loss]
    stack = Stack(models)

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor,
            y: torch.Tensor) -> torch.Tensor:
        return loss_fn(stack(p, b, x), y)

    # randomness="different": each copy draws its own dropout masks, as separate runs would
    batched = torch.vmap(one, randomness="different")
    optimiser = stack.adam(lr, betas)
    data = _batches(loaders, next(models[0].parameters()).device)
    losses: list[list[float]] = [[] for _ in models]
    for _ in progress_bar(range(steps), desc=desc or f"{loss.upper()} training, {len(models)} at once",
                  disable=not progress):
        x, y = next(data)
        values = batched(stack.params, stack.buffers, x, y)  # (copies,): each copy's mean loss
        optimiser.zero_grad(set_to_none=True)
        values.sum().backward()  # copy i's weights get copy i's gradient only
        optimiser.step()
        for run, value in zip(losses, values.tolist()):
            run.append(value)
    stack.write_back()
    return losses


def fit_pix2pix_seeds(models: Sequence[Pix2Pix], loaders: Sequence[Iterable[Batch]], steps: int,
                      desc: Optional[str] = None, progress: bool = True) -> None:
    """Train each :class:`~expolib.training.pix2pix.Pix2Pix` on its loader for ``steps`` steps, all at
    once: the step of :meth:`Pix2Pix.train_step` (D on the detached fake, then G through the updated D
    with D's weights frozen), in float32, with each model's learning rate, betas, lambda and GAN loss
    (all models' settings must agree). The trained networks are written back into ``models``."""
    _check(models, loaders, steps)
    config = models[0].config
    if any(m.config.lr != config.lr or m.config.betas != config.betas or m.config.lambda_l1 != config.lambda_l1
           or m.config.gan_mode != config.gan_mode for m in models):
        raise ValueError("fit_pix2pix_seeds trains models with one setting: their configs differ")
    adversarial = AdversarialLoss(config.gan_mode)
    g, d = Stack([m.generator for m in models]), Stack([m.discriminator for m in models])
    opt_g, opt_d = g.adam(config.lr, config.betas), d.adam(config.lr, config.betas)
    forward_g = torch.vmap(g, randomness="different")

    def d_one(pd: dict[str, torch.Tensor], bd: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              fake: torch.Tensor) -> torch.Tensor:
        return discriminator_loss(d(pd, bd, x, y), d(pd, bd, x, fake), adversarial).total

    def g_one(pd: dict[str, torch.Tensor], bd: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              fake: torch.Tensor) -> torch.Tensor:
        return generator_loss(d(pd, bd, x, fake), fake, y, adversarial, config.lambda_l1).total

    d_loss: Callable[..., torch.Tensor] = torch.vmap(d_one, randomness="different")
    g_loss: Callable[..., torch.Tensor] = torch.vmap(g_one, randomness="different")
    data = _batches(loaders, next(models[0].generator.parameters()).device)
    for _ in progress_bar(range(steps), desc=desc or f"pix2pix, {len(models)} at once", disable=not progress):
        x, y = next(data)
        fake = forward_g(g.params, g.buffers, x)  # (copies, B, 3, H, W)
        opt_d.zero_grad(set_to_none=True)
        d_loss(d.params, d.buffers, x, y, fake.detach()).sum().backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        g_loss(d.frozen(), d.buffers, x, y, fake).sum().backward()
        opt_g.step()
    g.write_back()
    d.write_back()


def fit_discriminator_seeds(discriminators: Sequence[nn.Module], loaders: Sequence[Iterable[Batch]],
                            steps: int, lr: float, betas: tuple[float, float] = (0.5, 0.999),
                            desc: Optional[str] = None, progress: bool = True) -> list[list[float]]:
    """Train PatchGANs alone, all at once: each batch of ``loaders[i]`` holds ``input``, ``target`` and
    ``fake`` (B, 3, H, W); real pairs (input, target) against fake pairs (input, fake), pix2pix's
    halved BCE on logits. Weights are written back; returns each one's loss at every step."""
    _check(discriminators, loaders, steps)
    adversarial = AdversarialLoss()
    d = Stack(discriminators)

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
            fake: torch.Tensor) -> torch.Tensor:
        return discriminator_loss(d(p, b, x, y), d(p, b, x, fake), adversarial).total

    batched = torch.vmap(one, randomness="different")
    optimiser = d.adam(lr, betas)
    data = _batches(loaders, next(discriminators[0].parameters()).device, ("input", "target", "fake"))
    losses: list[list[float]] = [[] for _ in discriminators]
    for _ in progress_bar(range(steps), desc=desc or f"D, {len(discriminators)} at once",
                          disable=not progress):
        x, y, fake = next(data)
        values = batched(d.params, d.buffers, x, y, fake)
        optimiser.zero_grad(set_to_none=True)
        values.sum().backward()
        optimiser.step()
        for run, value in zip(losses, values.tolist()):
            run.append(value)
    d.write_back()
    return losses


__all__ = ["Stack", "fit_discriminator_seeds", "fit_pix2pix_seeds", "fit_reconstruction_seeds"]
