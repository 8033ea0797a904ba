"""The global stage of a corrector: estimate how many stops a photo is off, and undo it.

An exposure error is mostly global: the whole photo got ``2**ev`` times too much (or too little)
light. :class:`EVEstimator` reads cues that do not depend on what the photo shows
(:func:`exposure_features`), and a small MLP maps them to the error in stops. All but the noise cue
read a small copy of the photo (long side ``EVEstimatorConfig.side``, 128 px by default); the noise cue
reads the photo at a long side of at most ``EVEstimatorConfig.noise_side`` (1024 px by default, never
enlarged), so that shrinking does not average the noise away:

- the luminance histogram, in sRGB and in stops of linear light (log shares), and its percentiles:
  an over-exposed photo has an empty bottom and a pile at white, an under-exposed one the opposite;
- the share of clipped highlights and crushed shadows;
- a noise cue: high-frequency energy of the luma per brightness band (sensor noise lifted into the
  dark tones of an under-exposed capture, flat clipped areas in an over-exposed one);
- the mean of each channel, in sRGB and in linear light.

:func:`undo_exposure` re-exposes a photo by the opposite of its estimate through the book's camera
(:func:`~expolib.imaging.exposure.render_exposure`) and returns the photos whose estimate is under a
threshold *unchanged, bit for bit*: a well-exposed photo must come back as it went in.
:class:`GlobalExposureCorrector` wraps both as a corrector on [-1, 1] batches, like a generator.
:func:`expolib.training.ev_fit.fit_ev_estimator` fits the estimator on rendered photos.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from expolib.imaging.exposure import render_exposure, srgb_to_linear
from expolib.imaging.transforms import LUMA_WEIGHTS, MIN_SIDE, denormalize, normalize, resize_long_side

#: The leave-alone threshold in stops: photos estimated closer than this to a good exposure are
#: returned unchanged. Chosen on the validation split with an estimator fitted on the training split
#: alone (``tools/train_shipped_model.py --choose-threshold``): the largest of 0.5, 0.75 and 1 EV whose
#: mean PSNR over the mis-exposed validation renders (averaged over the three cameras of
#: `evaluate`) stays within 0.1 dB of the best, because
#: leaving a good photo alone comes first. 0.5 and 0.75 tied there (24.60 and 24.55 dB with the book's
#: camera); 1 EV lost 2.5 dB, leaving too many mis-exposed photos alone.
LEAVE_ALONE_EV = 0.75

_PERCENTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
_EPS = 1e-4  # floor of the shares and energies whose logs are features
_RANGE_TOLERANCE = 1e-3  # float rounding may leave values a hair outside [0, 1]


@dataclass(frozen=True)
class EVEstimatorConfig:
    """The features and the MLP of an :class:`EVEstimator`.

    ``side``: long side of the small version the histograms read; ``bins``: sRGB luma histogram bins;
    ``log_bins`` over the last ``log_stops`` stops of linear luminance; ``noise_side``: long side at
    which the noise cue is measured (photos are never enlarged); ``noise_bands``: luma bands of the
    noise cue; ``hidden``: widths of the hidden layers of each MLP; ``members``: how many MLPs, fitted
    from different seeds, whose estimates are averaged (an ensemble: a steadier estimate of a photo
    unlike the training photos, the well-exposed ones especially).
    """

    side: int = 128
    bins: int = 32
    log_bins: int = 16
    log_stops: float = 12.0
    noise_side: int = 1024
    noise_bands: int = 8
    hidden: tuple[int, ...] = (64, 32)
    members: int = 4

    def __post_init__(self) -> None:
        if min(self.side, self.noise_side) < MIN_SIDE or min(self.bins, self.log_bins, self.noise_bands) < 2:
            raise ValueError(f"EVEstimatorConfig: sides must be >= {MIN_SIDE} and bin counts >= 2, "
                             f"got {self}")
        if self.log_stops <= 0 or not self.hidden or min(self.hidden) < 1 or self.members < 1:
            raise ValueError(f"EVEstimatorConfig: log_stops must be > 0, hidden widths and members >= 1, "
                             f"got {self}")

    @property
    def n_features(self) -> int:
        """How many numbers :func:`exposure_features` computes per photo."""
        return self.bins + self.log_bins + 2 * len(_PERCENTILES) + 4 + 7 + self.noise_bands

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-friendly values (:meth:`from_dict` reads it back)."""
        values = asdict(self)
        values["hidden"] = list(self.hidden)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EVEstimatorConfig:
        """A config from :meth:`to_dict`'s values."""
        values = dict(values)
        if "hidden" in values:
            values["hidden"] = tuple(int(w) for w in values["hidden"])
        return cls(**values)


DEFAULT_CONFIG = EVEstimatorConfig()
"""The estimator's default features and network."""


def check_photos(photos: torch.Tensor) -> None:
    """Refuse anything but a float batch ``(B, 3, H, W)`` in [0, 1] with sides of at least ``MIN_SIDE``."""
    if not isinstance(photos, torch.Tensor) or photos.ndim != 4 or photos.shape[1] != 3:
        shape = tuple(photos.shape) if isinstance(photos, torch.Tensor) else type(photos).__name__
        raise ValueError(f"expected a photo batch (B, 3, H, W) in [0, 1], got {shape}")
    if not photos.is_floating_point():
        raise ValueError(f"expected float photos in [0, 1], got dtype {photos.dtype}")
    if photos.shape[0] == 0 or min(photos.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"expected a non-empty batch of photos at least {MIN_SIDE} pixels on each side, "
                         f"got {tuple(photos.shape)}")
    low, high = float(photos.min()), float(photos.max())
    if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise ValueError(f"photo values must lie in [0, 1] (got min {low:.3f}, max {high:.3f}); "
                         "map [-1, 1] batches with expolib.imaging.transforms.denormalize first")


def _luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, H*W): Rec. 709 weights on whatever the channels hold."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device)
    return torch.einsum("bchw,c->bhw", images, weights).flatten(1)


def _log_shares(index: torch.Tensor, bins: int) -> torch.Tensor:
    """log share of the pixels (B, N) in each of ``bins`` bins: (B, bins). Integer counts, so the
    result is the same on every device and thread count."""
    b, n = index.shape
    offsets = torch.arange(b, device=index.device).view(-1, 1) * bins
    counts = torch.bincount((index.clamp(0, bins - 1) + offsets).flatten(), minlength=b * bins)
    return torch.log(counts.view(b, bins).to(torch.float32) / n + _EPS)


def _noise_cue(photos: torch.Tensor, config: EVEstimatorConfig) -> torch.Tensor:
    """log mean |high-pass of the luma| in each of ``noise_bands`` equal luma bands: (B, noise_bands)."""
    small = resize_long_side(photos, config.noise_side)
    luma = _luma(small).view(len(small), 1, *small.shape[-2:])
    smooth = F.avg_pool2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    energy, luma = (luma - smooth).abs().flatten(1), luma.flatten(1)
    b, bands = len(luma), config.noise_bands
    band = (luma * bands).long().clamp(0, bands - 1) + torch.arange(b, device=luma.device).view(-1, 1) * bands
    # float64 sums: the same to float32 precision whatever order a device adds them in
    total = torch.bincount(band.flatten(), energy.flatten().to(torch.float64), minlength=b * bands)
    count = torch.bincount(band.flatten(), minlength=b * bands)
    return torch.log((total / (count + 1.0)).view(b, bands).to(torch.float32) + _EPS)


@torch.no_grad()
def exposure_features(photos: torch.Tensor, config: EVEstimatorConfig = DEFAULT_CONFIG) -> torch.Tensor:
    """The scene-independent exposure cues of each photo of a batch ``(B, 3, H, W)`` in [0, 1]:
    ``(B, config.n_features)`` float32 (see the module's docstring for what they are)."""
    check_photos(photos)
    photos = photos.detach().to(torch.float32).clamp(0.0, 1.0)
    small = resize_long_side(photos, config.side).clamp(0.0, 1.0)
    luma = _luma(small)
    linear = srgb_to_linear(small)
    stops = torch.log2(_luma(linear) + 2.0 ** -config.log_stops)  # in [-log_stops, 0]
    brightest = small.amax(1).flatten(1)
    darkest = small.amin(1).flatten(1)
    q = torch.tensor(_PERCENTILES, dtype=torch.float32, device=photos.device)
    log_index = ((stops / config.log_stops + 1.0) * config.log_bins).floor().long()
    share = luma.shape[1]
    features = [
        _log_shares((luma * config.bins).long(), config.bins),
        _log_shares(log_index, config.log_bins),
        torch.quantile(luma, q, dim=1).T,
        torch.quantile(stops, q, dim=1).T / config.log_stops,
        torch.log((brightest >= 254.5 / 255).sum(1, keepdim=True) / share + _EPS),
        torch.log((brightest >= 0.95).sum(1, keepdim=True) / share + _EPS),
        torch.log((darkest <= 2.5 / 255).sum(1, keepdim=True) / share + _EPS),
        torch.log((luma <= 0.05).sum(1, keepdim=True) / share + _EPS),
        small.mean((2, 3)),
        torch.log2(linear.mean((2, 3)) + _EPS),
        torch.log2(_luma(linear).mean(1, keepdim=True) + _EPS),
        _noise_cue(photos, config),
    ]
    return torch.cat(features, 1)


class EVEstimator(nn.Module):
    """Predict the exposure error, in stops, of each photo of a batch ``(B, 3, H, W)`` in **[0, 1]**.

    Positive: over-exposed (``undo_exposure`` darkens it), negative: under-exposed. The features
    (:func:`exposure_features`) are standardised with the mean and spread of the training set (buffers
    set by :meth:`set_feature_scale`, saved in the ``state_dict``), then ``config.members`` MLPs of
    ``config.hidden`` widths give one number each, and the estimate is their mean. Batches in [-1, 1]
    must go through ``denormalize`` first (or use :class:`GlobalExposureCorrector`).
    """

    def __init__(self, config: EVEstimatorConfig = DEFAULT_CONFIG) -> None:
        super().__init__()
        self.config = config
        widths = (config.n_features, *config.hidden)

        def mlp() -> nn.Sequential:
            layers: list[nn.Module] = []
            for width_in, width_out in zip(widths, widths[1:]):
                layers += [nn.Linear(width_in, width_out), nn.SiLU()]
            return nn.Sequential(*layers, nn.Linear(widths[-1], 1))

        self.members = nn.ModuleList(mlp() for _ in range(config.members))
        self.register_buffer("feature_mean", torch.zeros(config.n_features))
        self.register_buffer("feature_std", torch.ones(config.n_features))

    def set_feature_scale(self, features: torch.Tensor) -> None:
        """Standardise inputs with the mean and spread of ``features`` (N, n_features), a training set."""
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp(min=1e-3))

    def predict_features(self, features: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """EV (B,) from precomputed :func:`exposure_features` (B, n_features): the members' mean, or
        one ``member``'s estimate."""
        if features.ndim != 2 or features.shape[1] != self.config.n_features:
            raise ValueError(f"expected features (B, {self.config.n_features}), got {tuple(features.shape)}")
        x = (features - self.feature_mean) / self.feature_std
        if member is not None:
            return self.members[member](x).squeeze(1)
        return torch.stack([mlp(x).squeeze(1) for mlp in self.members]).mean(0)

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> the estimated exposure error of each photo in stops, ``(B,)``."""
        device = self.feature_mean.device
        return self.predict_features(exposure_features(photos, self.config).to(device))

    @torch.no_grad()
    def estimate(self, photos: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without gradients: the estimated EV of each photo ``(B, 3, H, W)`` in [0, 1]."""
        return self(photos)


def undo_exposure(photos: torch.Tensor, ev: torch.Tensor | float,
                  threshold: float = LEAVE_ALONE_EV) -> torch.Tensor:
    """Re-expose each photo ``(B, 3, H, W)`` (or one ``(3, H, W)``) in [0, 1] by ``-ev`` stops through
    the book's camera; photos with ``|ev| < threshold`` come back unchanged, bit for bit.

    ``ev``: one number per photo (B,), or one for all. Returns a new tensor of the same shape and dtype.
    """
    if photos.ndim == 3:
        return undo_exposure(photos[None], ev, threshold)[0]
    check_photos(photos)
    evs = torch.as_tensor(ev, dtype=torch.float64).flatten().cpu()
    if evs.numel() == 1:
        evs = evs.expand(len(photos))
    if evs.numel() != len(photos) or not bool(torch.isfinite(evs).all()):
        raise ValueError(f"expected one finite EV per photo ({len(photos)}), got {tuple(evs.shape)}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0 stops, got {threshold}")
    out = photos.clone()
    for i, value in enumerate(evs.tolist()):
        if abs(value) >= threshold:
            out[i] = render_exposure(photos[i], -value)
    return out


class GlobalExposureCorrector(nn.Module):
    """The global stage as a corrector: ``(B, 3, H, W)`` in [-1, 1] -> the same shape and range.

    Estimates each photo's EV (:class:`EVEstimator`), undoes it (:func:`undo_exposure`); photos under
    ``threshold`` are returned as the very values that came in.
    """

    name = "global stage"

    def __init__(self, estimator: EVEstimator, threshold: float = LEAVE_ALONE_EV) -> None:
        super().__init__()
        self.estimator = estimator
        self.threshold = float(threshold)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        photos = denormalize(x.detach().float())
        ev = self.estimator.estimate(photos).cpu()
        out = x.clone()
        rows = (ev.abs() >= self.threshold).nonzero().view(-1).tolist()
        if rows:
            fixed = undo_exposure(photos[rows], ev[rows], threshold=0.0)
            out[rows] = normalize(fixed).to(dtype=x.dtype)
        return out


__all__ = [
    "LEAVE_ALONE_EV",
    "EVEstimator",
    "EVEstimatorConfig",
    "DEFAULT_CONFIG",
    "GlobalExposureCorrector",
    "check_photos",
    "exposure_features",
    "undo_exposure",
]
