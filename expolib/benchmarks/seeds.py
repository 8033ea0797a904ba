"""``python -m expolib bench --seeds``: the seeds of a chapter experiment one after another, or as one
batched model (:mod:`expolib.book.batched`), timed at a budget's experiment size."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence

import torch

from expolib.benchmarks.timing import Out, say
from expolib.book.batched import fit_discriminator_seeds, fit_pix2pix_seeds, fit_reconstruction_seeds
from expolib.book.experiments import BankLoader, ExperimentSize, _train_config
from expolib.book.loops import endless, fit_reconstruction
from expolib.networks.factory import build_discriminator, build_generator
from expolib.training.losses import AdversarialLoss, discriminator_loss
from expolib.training.pix2pix import build_pix2pix

KINDS = ("l1", "pix2pix", "discriminator")


def _bank(size: ExperimentSize, n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shape = (n, 3, size.side, size.side)
    return {key: torch.rand(shape, generator=g) * 2 - 1 for key in ("input", "target", "fake")}


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _runs(kind: str, size: ExperimentSize, seeds: Sequence[int], steps: int,
          bank: dict[str, torch.Tensor]) -> tuple[Callable[[], object], Callable[[], object]]:
    """(one after another, batched): two calls that train ``len(seeds)`` fresh copies for ``steps``."""
    config = _train_config(size, "transpose", device=torch.device("cpu"))
    runtime = config.runtime()
    loaders = lambda: [BankLoader(bank, size.batch, s) for s in seeds]  # noqa: E731
    if kind == "l1":
        g_config = dataclasses.replace(config.generator, gemm_upsampling=runtime.gemm_convolutions)
        models = [build_generator(g_config) for _ in seeds]

        def alone() -> None:
            for model, loader in zip(copy.deepcopy(models), loaders()):
                fit_reconstruction(model, loader, steps=steps, lr=size.lr, progress=False)

        return alone, lambda: fit_reconstruction_seeds(copy.deepcopy(models), loaders(), steps, size.lr,
                                                       progress=False)
    if kind == "pix2pix":
        pairs = [build_pix2pix(config, runtime) for _ in seeds]

        def alone_p2p() -> None:
            for model, loader in zip(copy.deepcopy(pairs), loaders()):
                for batch, _ in zip(endless(loader), range(steps)):
                    model.train_step(batch["input"], batch["target"])

        return alone_p2p, lambda: fit_pix2pix_seeds(copy.deepcopy(pairs), loaders(), steps, progress=False)
    discs = [build_discriminator(config.discriminator) for _ in seeds]

    def alone_d() -> None:
        for disc, loader in zip(copy.deepcopy(discs), loaders()):
            disc.train()
            opt = torch.optim.Adam(disc.parameters(), lr=size.lr, betas=(0.5, 0.999))
            for batch, _ in zip(endless(loader), range(steps)):
                loss = discriminator_loss(disc(batch["input"], batch["target"]),
                                          disc(batch["input"], batch["fake"]), AdversarialLoss()).total
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    return alone_d, lambda: fit_discriminator_seeds(copy.deepcopy(discs), loaders(), steps, size.lr,
                                                    progress=False)


def bench_seeds(size: ExperimentSize, steps: int = 20, kinds: Sequence[str] = KINDS,
                out: Out = print) -> dict[str, tuple[float, float]]:
    """Time ``steps`` steps of every seed of ``size`` for each kind of run, one after another and
    batched, on the CPU (best of two tries after a warm-up); returns ms per step of all seeds,
    ``{kind: (one after another, batched)}``."""
    bank = _bank(size, max(4 * size.batch, 32))
    say(out, f"{len(size.seeds)} seeds at the experiment size (crops {size.side}px, batch {size.batch}, "
             f"ngf {size.ngf}, depth {size.depth}, ndf {size.ndf}), {steps} steps, "
             f"{torch.get_num_threads()} threads")
    results = {}
    for kind in kinds:
        alone, batched = _runs(kind, size, size.seeds, steps, bank)
        warm_alone, warm_batched = _runs(kind, size, size.seeds, 2, bank)
        warm_alone(), warm_batched()
        t_alone = min(_seconds(alone) for _ in range(2)) / steps * 1000
        t_batched = min(_seconds(batched) for _ in range(2)) / steps * 1000
        results[kind] = (t_alone, t_batched)
        say(out, f"  {kind:<14} one after another {t_alone:7.1f} ms/step   batched {t_batched:7.1f} ms/step"
                 f"   gain {t_alone / t_batched:4.2f}x")
    return results


__all__ = ["KINDS", "bench_seeds"]
