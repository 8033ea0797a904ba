"""Fit the global stage's exposure estimator (:class:`~expolib.networks.ev_estimator.EVEstimator`)
on renders of well-exposed photos.

Each example is a random crop of a training photo, shrunk to a random small size, rendered by a
random camera of a :class:`~expolib.imaging.camera.CameraFamily` (response, white balance, noise,
JPEG) at a random EV in [-2, 2], EV 0 for a good share of them; its target is that EV. The renders
run in batches through the lookup tables of :func:`~expolib.imaging.render.render_crops`, and only
their features (:func:`~expolib.networks.ev_estimator.exposure_features`) are kept: the MLP then
trains on a small table of numbers with a Huber loss, in seconds. Everything draws from one seeded
generator, so a seed gives the same estimator::

    python -c "from expolib.training.ev_fit import fit_ev_estimator; fit_ev_estimator()"
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from expolib.data.photos import embedded_codes, embedded_photos
from expolib.imaging.camera import CameraFamily
from expolib.imaging.render import P, draw_item, render_crops
from expolib.networks.ev_estimator import DEFAULT_CONFIG, EVEstimator, EVEstimatorConfig, exposure_features

#: The cameras and exposure errors the estimator learns from: the training family's responses,
#: colour drift, noise and JPEG, EVs over [-2, 2] continuously, 35% of the examples well exposed.
EV_FAMILY = CameraFamily(ev_range=(-2.0, 2.0), min_abs_ev=0.0, p_ev0=0.35, target_ev=0.0)


@dataclass(frozen=True)
class EVFitConfig:
    """How :func:`fit_ev_estimator` makes its examples and trains.

    ``examples`` renders in batches of ``render_batch`` crops of one size, whose long side is drawn
    from ``crop_side`` (the noise cue then reads noise at the scale it was rendered at); each crop
    covers a share ``crop_cover`` of the photo (of the largest region of its aspect ratio), from a
    copy of the photo at most ``photo_side`` pixels long. Then ``epochs`` of AdamW over mini-batches
    of ``batch_size`` with a Huber loss of width ``huber_delta`` stops, the learning rate falling
    on a cosine to zero.
    """

    examples: int = 4096
    render_batch: int = 32
    crop_side: tuple[int, int] = (64, 192)
    crop_cover: tuple[float, float] = (0.4, 1.0)
    photo_side: int = 512
    epochs: int = 100
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    huber_delta: float = 0.25
    feature_noise: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.examples, self.render_batch, self.epochs, self.batch_size) < 1:
            raise ValueError(f"EVFitConfig: counts must be >= 1, got {self}")
        if not 16 <= self.crop_side[0] <= self.crop_side[1] <= self.photo_side:
            raise ValueError("EVFitConfig: need 16 <= crop_side[0] <= crop_side[1] <= photo_side, "
                             f"got {self}")
        if not 0.0 < self.crop_cover[0] <= self.crop_cover[1] <= 1.0:
            raise ValueError(f"EVFitConfig: crop_cover must lie in (0, 1], got {self.crop_cover}")


DEFAULT_FIT = EVFitConfig()
"""The fit that the shipped numbers come from."""


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _crop(photo: torch.Tensor, height: int, width: int, cover: float,
          generator: torch.Generator) -> torch.Tensor:
    """A random region of ``photo`` (uint8 (3, H, W)) of aspect ``height:width`` covering ``cover`` of
    the largest such region, resized (antialiased) to ``height`` x ``width``."""
    h, w = photo.shape[-2:]
    region_h = max(1.0, cover * min(h, w * height / width))
    region_w = min(float(w), region_h * width / height)
    rh, rw = max(1, round(region_h)), max(1, round(region_w))
    top = int(torch.randint(0, h - rh + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - rw + 1, (1,), generator=generator))
    return TF.resized_crop(photo, top, left, rh, rw, [height, width], antialias=True)


def render_examples(photos: Sequence[str], config: EVFitConfig = DEFAULT_FIT,
                    family: CameraFamily = EV_FAMILY,
                    estimator_config: EVEstimatorConfig = DEFAULT_CONFIG,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``config.examples`` renders of the named embedded ``photos``: (features (N, F), true EV (N,))."""
    if not photos:
        raise ValueError("render_examples needs at least one photo")
    generator = torch.Generator().manual_seed(config.seed)
    features, evs = [], []
    for start in range(0, config.examples, config.render_batch):
        count = min(config.render_batch, config.examples - start)
        low, high = config.crop_side
        long_side = int(torch.randint(low, high + 1, (1,), generator=generator))
        short_side = max(16, round(long_side * _uniform(0.6, 1.0, generator)))
        height, width = (long_side, short_side) if bool(torch.rand((), generator=generator) < 0.5) \
            else (short_side, long_side)
        crops, params, seeds = [], [], []
        for _ in range(count):
            name = photos[int(torch.randint(0, len(photos), (1,), generator=generator))]
            cover = _uniform(*config.crop_cover, generator)
            crops.append(_crop(embedded_codes(name, config.photo_side), height, width, cover, generator))
            values, seed, _ev = draw_item(family, 0.0, False, None, 0.0, generator)
            params.append(values)
            seeds.append(seed)
        table = torch.stack(params).to(torch.float32)
        rendered, _target = render_crops(torch.stack(crops), table, torch.tensor(seeds))
        features.append(exposure_features(rendered, estimator_config))
        evs.append(table[:, P["ev"]])
    return torch.cat(features), torch.cat(evs)


def fit_features(features: torch.Tensor, evs: torch.Tensor, config: EVFitConfig = DEFAULT_FIT,
                 estimator_config: EVEstimatorConfig = DEFAULT_CONFIG) -> EVEstimator:
    """Train an :class:`EVEstimator` on precomputed features (N, F) and their true EVs (N,)."""
    if features.ndim != 2 or len(features) != len(evs) or len(evs) < 2:
        raise ValueError(f"expected features (N, F) and EVs (N,), N >= 2; got {tuple(features.shape)}, "
                         f"{tuple(evs.shape)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        estimator = EVEstimator(estimator_config)
    estimator.set_feature_scale(features)
    estimator.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # an MLP this small steps several times faster on one thread than on many
    try:
        for member in range(estimator_config.members):
            _fit_member(estimator, member, features, evs, config)
    finally:
        torch.set_num_threads(threads)
    return estimator.eval()


def _fit_member(estimator: EVEstimator, member: int, features: torch.Tensor, evs: torch.Tensor,
                config: EVFitConfig) -> None:
    """Train one member MLP of ``estimator``: its own batches, from its own seed."""
    generator = torch.Generator().manual_seed(config.seed * 1000 + member + 1)
    parameters = list(estimator.members[member].parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * math.ceil(len(evs) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    for _ in range(config.epochs):
        order = torch.randperm(len(evs), generator=generator)
        for rows in order.split(config.batch_size):
            batch = features[rows]
            if config.feature_noise > 0:  # jitter in units of each feature's spread: a smoother fit
                batch = batch + torch.randn(batch.shape, generator=generator) * config.feature_noise \
                    * estimator.feature_std
            prediction = estimator.predict_features(batch, member)
            loss = F.huber_loss(prediction, evs[rows], delta=config.huber_delta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()


def fit_ev_estimator(config: EVFitConfig = DEFAULT_FIT, splits: Sequence[str] = ("train",),
                     photos: Sequence[str] | None = None,
                     estimator_config: EVEstimatorConfig = DEFAULT_CONFIG,
                     log: Callable[[str], None] | None = print) -> EVEstimator:
    """Render examples of the embedded photos of ``splits`` (or the named ``photos``) and fit an
    :class:`EVEstimator` on them; the same estimator for the same ``config.seed``. ``log`` (None:
    silent) hears what it did and how long it took."""
    names = list(photos) if photos is not None else [p for split in splits for _, p in embedded_photos(split)]
    began = time.perf_counter()
    features, evs = render_examples(names, config, EV_FAMILY, estimator_config)
    rendered = time.perf_counter()
    estimator = fit_features(features, evs, config, estimator_config)
    if log is not None:
        with torch.no_grad():
            error = (estimator.predict_features(features) - evs).abs().mean()
        log(f"EV estimator: {len(evs)} renders of {len(names)} photos in {rendered - began:.1f} s, "
            f"fitted in {time.perf_counter() - rendered:.1f} s; training error {error:.3f} EV")
    return estimator


__all__ = ["DEFAULT_FIT", "EV_FAMILY", "EVFitConfig", "fit_ev_estimator", "fit_features", "render_examples"]
