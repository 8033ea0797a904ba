"""Small seeded experiments that show the design report's pitfalls working, for chapters 2 to 5.

Every experiment trains small networks on a fixed *bank* of pre-rendered crops (rendered once,
shared by every run), repeats each run over a few seeds, and measures the result on the validation
photos. The pieces:

- :class:`ExperimentSize` and :func:`experiment_size`: the sizes of these runs in each budget.
- :func:`pair_bank`, :class:`BankLoader`: the crops, and seeded random batches drawn from them.
- :func:`flip_batch`: horizontal flips of a batch, paired or (the report's bug) on the input only.
- :func:`reexpose`, :func:`hard_fakes`: the target re-exposed by a fraction of a stop.
- :func:`train_generator`, :func:`train_discriminator`: one seeded run.
- :func:`critic_size`: the size of chapter 4's critic runs (a lower learning rate, more steps).
- :func:`gradient_energy`, :func:`evaluate_generator`, :func:`p_real`, :func:`ranked_real`: the measurements.
- :func:`do_nothing`, :func:`misexposed`, :func:`beats`: the baseline every trained generator must beat
  (the input returned as it is), measured on the levels that need correcting.
- :func:`mean_sd`, :func:`format_mean_sd`: summaries over seeds.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from expolib.book.loops import endless, fit_reconstruction
from expolib.config import Budget, Runtime, get_budget, pick_device, seed_everything
from expolib.data.rendered import EmbeddedPairs
from expolib.evaluation.metrics import checkerboard, psnr
from expolib.imaging.exposure import render_exposure
from expolib.imaging.transforms import LUMA_WEIGHTS, denormalize, normalize
from expolib.networks.factory import build_discriminator, build_generator
from expolib.networks.patchgan import PatchConfig
from expolib.networks.unet import UNetConfig
from expolib.progress import progress_bar
from expolib.training.config import TrainConfig
from expolib.training.losses import LAMBDA_L1, AdversarialLoss, discriminator_loss
from expolib.training.pix2pix import Pix2Pix, build_pix2pix

Batch = dict[str, torch.Tensor]
BatchTransform = Callable[[Batch, torch.Generator], Batch]

GENERATOR_LOSSES = ("l1", "l2", "l1+adv")
FAKE_KINDS = ("input", "reexposed")


@dataclass(frozen=True)
class ExperimentSize:
    """Sizes of the chapters' pitfall experiments (one budget)."""

    side: int  # training crops are side x side
    photo_side: int  # long side of the photos the crops come from, and of the validation photos
    crops_per_photo: int  # crops per training photo and exposure level in the bank
    batch: int
    steps: int  # optimisation steps of one run
    ngf: int
    depth: int
    ndf: int
    lr: float  # Adam's learning rate, higher than pix2pix's 2e-4 so that short runs get somewhere
    seeds: tuple[int, ...] = (0, 1, 2)
    # the generators predict a change to their input (UNetConfig.residual): they start at the identity,
    # so a short run begins where doing nothing is and has only to improve on it
    residual: bool = True


SIZES: dict[str, ExperimentSize] = {
    "quick": ExperimentSize(side=32, photo_side=96, crops_per_photo=3, batch=8, steps=100, ngf=8, depth=5,
                            ndf=8, lr=2e-3),
    "standard": ExperimentSize(side=32, photo_side=96, crops_per_photo=6, batch=8, steps=300, ngf=8,
                               depth=5, ndf=16, lr=2e-3),
    "full": ExperimentSize(side=128, photo_side=384, crops_per_photo=24, batch=32, steps=2000, ngf=32,
                           depth=7, ndf=64, lr=1e-3),
}


def experiment_size(budget: Optional[Budget] = None, **overrides: object) -> ExperimentSize:
    """The experiment sizes of ``budget`` (default: :func:`expolib.config.get_budget`), with ``overrides``."""
    budget = budget if budget is not None else get_budget()
    return dataclasses.replace(SIZES[budget.name], **overrides)  # type: ignore[arg-type]


def images_trained(size: ExperimentSize, runs: int) -> int:
    """Images that ``runs`` runs push through a generator (and its discriminator): steps x batch x runs."""
    return size.steps * size.batch * runs


# ----------------------------------------------------------------------------------------------------
# Data: a bank of crops, and batches drawn from it


def pair_bank(split: str, size: ExperimentSize, evs: Sequence[float], seed: int = 0) -> Batch:
    """Every crop of ``split`` rendered once: ``{"input", "target": (N, 3, side, side), "ev": (N,)}`` in
    [-1, 1]. Crops sit at seeded positions, with no flip and no colour jitter, so the experiments
    decide alone which augmentation a run gets."""
    dataset = EmbeddedPairs(split, size=size.side, evs=evs, augment=False, max_side=size.photo_side,
                            crops_per_photo=size.crops_per_photo, seed=seed)
    items = [dataset[i] for i in range(len(dataset))]
    return {"input": torch.stack([it["input"] for it in items]),
            "target": torch.stack([it["target"] for it in items]),
            "ev": torch.tensor([it["ev"] for it in items])}


def misexposed(evs: Sequence[float]) -> tuple[float, ...]:
    """The levels of ``evs`` that need correcting (all but EV 0): where the input as it is is not
    already the answer, so that doing nothing has a finite PSNR to beat."""
    return tuple(float(ev) for ev in evs if ev != 0)


def do_nothing() -> nn.Module:
    """The corrector that returns its input unchanged, measured like a generator
    (:func:`evaluate_generator`): the baseline every trained generator has to beat."""
    return nn.Identity()


def validation_photos(size: ExperimentSize, evs: Sequence[float]) -> EmbeddedPairs:
    """The validation photos, whole (long side ``size.photo_side``), at every level of ``evs``."""
    return EmbeddedPairs("val", size=None, evs=evs, max_side=size.photo_side)


class BankLoader:
    """Seeded random batches from a bank, one pass through it per iteration (the last partial batch
    is dropped), with an optional ``transform(batch, generator)`` applied to each batch. It can be
    iterated again, like a DataLoader, so :func:`expolib.book.loops.endless` cycles through it."""

    def __init__(self, bank: Batch, batch_size: int, seed: int,
                 transform: Optional[BatchTransform] = None) -> None:
        if len(bank["input"]) < batch_size:
            raise ValueError(f"the bank holds {len(bank['input'])} pairs, fewer than one batch of "
                             f"{batch_size}")
        self.bank, self.batch_size, self.transform = bank, batch_size, transform
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.bank["input"])
        order = torch.randperm(n, generator=self.generator)
        for start in range(0, n - self.batch_size + 1, self.batch_size):
            index = order[start:start + self.batch_size]
            batch = {key: value[index] for key, value in self.bank.items()}
            yield self.transform(batch, self.generator) if self.transform else batch


def flip_batch(batch: Batch, generator: torch.Generator, p: float = 0.5, input_only: bool = False) -> Batch:
    """Mirror each pair of ``batch`` left-right with probability ``p``: input and target together
    (right), or, with ``input_only``, the input alone, as the design report does (wrong)."""
    chosen = (torch.rand(len(batch["input"]), generator=generator) < p).view(-1, 1, 1, 1)
    out = dict(batch)
    out["input"] = torch.where(chosen, batch["input"].flip(-1), batch["input"])
    if not input_only:
        out["target"] = torch.where(chosen, batch["target"].flip(-1), batch["target"])
    out["flipped"] = chosen.flatten()
    return out


def shift_targets(batch: Batch, generator: torch.Generator, max_shift: int = 2) -> Batch:
    """Move each target by a random whole number of pixels in [-``max_shift``, ``max_shift``], down and
    across (edges mirrored in): pairs whose alignment is uncertain, as from a hand-held camera."""
    target = batch["target"]
    m = max_shift
    padded = F.pad(target, (m, m, m, m), mode="reflect")
    h, w = target.shape[-2:]
    offsets = torch.randint(0, 2 * m + 1, (len(target), 2), generator=generator).tolist()
    out = dict(batch)
    out["target"] = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
    return out


def reexpose(images: torch.Tensor, ev: Union[float, Sequence[float]]) -> torch.Tensor:
    """Images in [-1, 1] ``(B, 3, H, W)`` rendered ``ev`` stops off (one value, or one per image)."""
    evs = [float(ev)] * len(images) if isinstance(ev, (int, float)) else [float(e) for e in ev]
    if len(evs) != len(images):
        raise ValueError(f"got {len(evs)} exposure values for {len(images)} images")
    return torch.stack([normalize(render_exposure(denormalize(im), e)) for im, e in zip(images, evs)])


def _brighter(n: int, generator: torch.Generator) -> torch.Tensor:
    """Which of ``n`` hard fakes are re-exposed up rather than down: one fair draw each, ``(n,)`` bool."""
    return torch.randint(0, 2, (n,), generator=generator) == 1


def hard_fakes(targets: torch.Tensor, generator: torch.Generator, shift: float = 0.5) -> torch.Tensor:
    """Fake candidates that are nearly right: each target re-exposed by +``shift`` or -``shift`` EV
    (the sign drawn at random), a generator whose only fault is a slightly wrong exposure."""
    signs = torch.where(_brighter(len(targets), generator), 1, -1)
    return reexpose(targets, (signs * shift).tolist())


# ----------------------------------------------------------------------------------------------------
# One seeded run


def _train_config(size: ExperimentSize, upsample: str, lambda_l1: float = LAMBDA_L1,
                  device: Optional[torch.device] = None) -> TrainConfig:
    """pix2pix's settings at the experiment's size on ``device`` (None: the best there is); float32
    (``amp=False``) like the reconstruction runs, so that compared runs differ only in what the
    experiment varies."""
    return TrainConfig(epochs=1, batch_size=size.batch, image_size=size.side, lr=size.lr,
                       generator=UNetConfig(ngf=size.ngf, depth=size.depth, upsample=upsample,
                                            residual=size.residual),
                       discriminator=PatchConfig(ndf=size.ndf), lambda_l1=lambda_l1, amp=False,
                       device=None if device is None else str(device), progress=False)


def experiment_runtime(device: Optional[torch.device] = None) -> Runtime:
    """How the experiments' runs compute on ``device`` (None: the best there is), for a chapter to
    print: float32 always, so that compared runs differ only in what an experiment varies."""
    return _train_config(SIZES["quick"], "transpose", device=device).runtime()


def _loader(bank: Batch, size: ExperimentSize, seed: int, flip: Optional[str], shift: int) -> BankLoader:
    if flip not in (None, "paired", "input_only"):
        raise ValueError(f"flip must be None, 'paired' or 'input_only', got {flip!r}")

    def transform(batch: Batch, gen: torch.Generator) -> Batch:
        if flip is not None:
            batch = flip_batch(batch, gen, input_only=flip == "input_only")
        return shift_targets(batch, gen, shift) if shift > 0 else batch

    return BankLoader(bank, size.batch, seed, transform)


def train_pix2pix(bank: Batch, size: ExperimentSize, seed: int, flip: Optional[str] = None,
                  upsample: str = "transpose", shift: int = 0, lambda_l1: float = LAMBDA_L1,
                  device: Optional[torch.device] = None, progress: bool = True) -> Pix2Pix:
    """Train generator and discriminator with pix2pix's step (:meth:`expolib.training.pix2pix.Pix2Pix.train_step`)
    for ``size.steps`` steps on ``bank``; the arguments are :func:`train_generator`'s."""
    config = _train_config(size, upsample, lambda_l1, device)
    loader = _loader(bank, size, seed, flip, shift)
    seed_everything(seed)
    model = build_pix2pix(config, config.runtime())
    stream = endless(loader)
    desc = f"l1+adv (lambda {lambda_l1:g}), seed {seed}"
    for _ in progress_bar(range(size.steps), desc=desc, disable=not progress):
        batch = next(stream)
        model.train_step(batch["input"], batch["target"])
    return model


def train_generator(bank: Batch, size: ExperimentSize, seed: int, loss: str = "l1",
                    flip: Optional[str] = None, upsample: str = "transpose", shift: int = 0,
                    device: Optional[torch.device] = None, progress: bool = True) -> nn.Module:
    """Train one generator for ``size.steps`` steps on ``bank`` and return it in eval mode.

    ``loss``: ``"l1"`` or ``"l2"`` (the generator alone, :func:`expolib.book.loops.fit_reconstruction`) or
    ``"l1+adv"`` (pix2pix's step with lambda 100, :func:`train_pix2pix`). ``flip``: None, ``"paired"``
    or ``"input_only"`` (:func:`flip_batch`); ``shift`` > 0 misaligns each target by up to that many
    pixels (:func:`shift_targets`). The seed fixes the initial weights and the batches: runs that
    differ only in ``loss``, ``flip`` or ``upsample`` start from the same weights (where the shapes
    agree) and see the same crops in the same order.
    """
    if loss not in GENERATOR_LOSSES:
        raise ValueError(f"loss must be one of {GENERATOR_LOSSES}, got {loss!r}")
    if loss == "l1+adv":
        return train_pix2pix(bank, size, seed, flip, upsample, shift, device=device,
                             progress=progress).generator.eval()
    config = _train_config(size, upsample, device=device)
    runtime = config.runtime()  # the device, and GEMM transposed convolutions where they are faster
    loader = _loader(bank, size, seed, flip, shift)
    seed_everything(seed)
    g_config = dataclasses.replace(config.generator, gemm_upsampling=runtime.gemm_convolutions)
    generator = build_generator(g_config).to(runtime.device)
    desc = f"{loss}, {flip or 'no'} flips, {upsample}{f', shift {shift}' if shift else ''}, seed {seed}"
    fit_reconstruction(generator, loader, steps=size.steps, lr=size.lr, loss=loss, desc=desc,
                       progress=progress)
    return generator.eval()


def train_discriminator(bank: Batch, size: ExperimentSize, seed: int, fakes: str = "reexposed",
                        shift: float = 0.5, device: Optional[torch.device] = None,
                        progress: bool = True) -> tuple[nn.Module, list[float]]:
    """Train a PatchGAN alone for ``size.steps`` steps: real pairs (input, target) against fake pairs
    (input, input) (``fakes="input"``, a generator that does nothing) or (input, target re-exposed by
    ±``shift`` EV) (``fakes="reexposed"``, :func:`hard_fakes`). pix2pix's halved BCE on logits.
    Returns the discriminator (train mode) and its loss at every step."""
    if fakes not in FAKE_KINDS:
        raise ValueError(f"fakes must be one of {FAKE_KINDS}, got {fakes!r}")
    device = device if device is not None else pick_device()
    if fakes == "reexposed":  # both re-exposures of every target rendered once; each step draws a sign
        targets = bank["target"]
        bank = {**bank, "brighter": reexpose(targets, shift), "darker": reexpose(targets, -shift)}
    seed_everything(seed)
    disc = build_discriminator(PatchConfig(ndf=size.ndf)).to(device).train()
    optimiser = torch.optim.Adam(disc.parameters(), lr=size.lr, betas=(0.5, 0.999))
    stream, draw = endless(BankLoader(bank, size.batch, seed)), torch.Generator().manual_seed(seed)
    losses, bce = [], AdversarialLoss()
    for _ in progress_bar(range(size.steps), desc=f"D, {fakes} fakes, seed {seed}", disable=not progress):
        batch = next(stream)
        if fakes == "input":
            fake = batch["input"]
        else:  # as hard_fakes(batch["target"], draw, shift) draws them, without rendering at every step
            brighter = _brighter(len(batch["target"]), draw).view(-1, 1, 1, 1)
            fake = torch.where(brighter, batch["brighter"], batch["darker"])
        x, y, fake = batch["input"].to(device), batch["target"].to(device), fake.to(device)
        loss = discriminator_loss(disc(x, y), disc(x, fake), bce).total
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return disc, losses


#: Adam's learning rate of the critics of chapter 4's "Harder fakes": lower than the generator runs'
#: (:attr:`ExperimentSize.lr`), at which a critic of hard fakes often stayed at chance for its whole run.
CRITIC_LR = 3e-4
#: Steps of one critic run per budget: at :data:`CRITIC_LR` a critic of hard fakes needs a few hundred
#: steps to leave chance, more than the quick budget's generator runs take.
CRITIC_STEPS = {"quick": 400, "standard": 1000, "full": 4000}


def critic_size(budget: Optional[Budget] = None) -> ExperimentSize:
    """The size of chapter 4's critic runs in ``budget``: :func:`experiment_size`'s crops and widths,
    :data:`CRITIC_STEPS` steps and :data:`CRITIC_LR`."""
    budget = budget if budget is not None else get_budget()
    return dataclasses.replace(experiment_size(budget), steps=CRITIC_STEPS[budget.name], lr=CRITIC_LR)


# ----------------------------------------------------------------------------------------------------
# Measurements


def gradient_energy(image: torch.Tensor) -> float:
    """Mean squared difference between neighbouring pixels (horizontal and vertical) of a
    ``(3, H, W)`` image in [0, 1]: the detail an image holds. Blurring lowers it."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return float((dx**2).mean() + (dy**2).mean())


def contrast(image: torch.Tensor) -> float:
    """Standard deviation of the luma of a ``(3, H, W)`` image in [0, 1]."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype, device=image.device)
    return float((image * weights.view(3, 1, 1)).sum(0).std())


@torch.no_grad()
def evaluate_generator(generator: nn.Module, photos: EmbeddedPairs) -> dict[str, float]:
    """Mean over ``photos`` of: ``l1`` (on the [-1, 1] scale of the loss), ``psnr`` (dB), ``energy``
    (gradient energy of the output over the target's), ``contrast`` (luma spread, output over target)
    and ``checkerboard`` (:func:`expolib.evaluation.metrics.checkerboard`: 1 = the target's own period-2 energy)."""
    was_training = generator.training
    generator.eval()
    first = next(generator.parameters(), None)  # doing nothing (nn.Identity) has no parameters
    device = first.device if first is not None else torch.device("cpu")
    rows = []
    for item in photos:
        out = generator(item["input"].unsqueeze(0).to(device))[0].float().cpu()
        out01, y01 = denormalize(out), denormalize(item["target"])
        rows.append({"l1": F.l1_loss(out, item["target"]).item(), "psnr": psnr(out01, y01),
                     "energy": gradient_energy(out01) / gradient_energy(y01),
                     "contrast": contrast(out01) / contrast(y01), "checkerboard": checkerboard(out01, y01)})
    generator.train(was_training)
    return {key: statistics.fmean(row[key] for row in rows) for key in rows[0]}


@torch.no_grad()
def p_real(disc: nn.Module, conditions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Mean P(real) per pair, ``(B,)``: the sigmoid of the patch logits averaged over the map. The batch
    is judged as training judges it (train mode, batch statistics); the running statistics are put back."""
    device = next(disc.parameters()).device
    saved = copy.deepcopy(disc.state_dict())
    was_training = disc.training
    disc.train()
    try:
        logits = disc(conditions.to(device), candidates.to(device))
    finally:
        disc.load_state_dict(saved)
        disc.train(was_training)
    return torch.sigmoid(logits.float()).mean(dim=(1, 2, 3)).cpu()


def ranked_real(disc: nn.Module, conditions: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> float:
    """The share of pairs whose real candidate gets a higher P(real) than its fake one (:func:`p_real`,
    each kind judged as a batch of its own): 0.5 is a critic that cannot tell them apart, 1 one that
    ranks every pair right, however it has calibrated its probabilities."""
    return float((p_real(disc, conditions, real) > p_real(disc, conditions, fake)).float().mean())


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value) of runs over seeds."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd of no values")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def format_mean_sd(values: Sequence[float], digits: int = 3, signed: bool = False) -> str:
    """``"mean ± sd"`` of ``values`` (:func:`mean_sd`) with ``digits`` decimals; ``signed``: the mean
    with its sign (``"+1.23 ± 0.45"``), for a change."""
    mean, sd = mean_sd(values)
    return f"{mean:{'+' if signed else ''}.{digits}f} ± {sd:.{digits}f}"


def beats(values: Sequence[float], baseline: float, higher_is_better: bool = True) -> bool:
    """Whether runs over seeds beat a fixed ``baseline`` (doing nothing) by more than their spread:
    the mean is better than the baseline by more than one standard deviation."""
    mean, sd = mean_sd(values)
    return mean - sd > baseline if higher_is_better else mean + sd < baseline


def separated(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two groups of runs differ by more than their spread: the means are further apart than
    the sum of the two standard deviations (a plain, conservative rule for three seeds)."""
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    return abs(ma - mb) > sa + sb


__all__ = [
    "BankLoader", "ExperimentSize", "FAKE_KINDS", "GENERATOR_LOSSES", "SIZES", "beats", "contrast",
    "do_nothing", "evaluate_generator", "experiment_runtime", "experiment_size", "flip_batch",
    "format_mean_sd", "gradient_energy", "hard_fakes", "images_trained", "mean_sd", "misexposed", "p_real",
    "pair_bank", "reexpose", "separated", "shift_targets",
    "train_discriminator", "train_generator", "train_pix2pix", "validation_photos",
    "CRITIC_LR", "CRITIC_STEPS", "critic_size", "ranked_real",
]
