"""Classical corrections to measure the network against: each one is a *corrector*.

A corrector maps a batch ``(B, 3, H, W)`` in [-1, 1] to the same shape and range, exactly like a
generator in eval mode, so :func:`expolib.evaluation.protocol.evaluate` and
:func:`expolib.evaluation.infer.correct` take either. The baselines are ``torch.nn.Module``s with no
parameters; most of them work photo by photo in NumPy with scikit-image (:class:`PhotoBaseline`).

- :class:`Identity`: does nothing. Any method worth its name must beat it.
- :class:`GlobalGamma`: one power curve for the whole photo, chosen so that its mean luminance becomes
  mid-grey (0.5).
- :class:`AutoLevels`: linear light scaled so that the 99.5th percentile of luminance becomes white.
- :class:`HistogramEqualisation`: spreads the brightness (HSV value) histogram flat; hue and saturation
  stay.
- :class:`CLAHE`: contrast-limited adaptive histogram equalisation (Zuiderveld 1994) of the Lab
  lightness.
- :class:`ReportAveragingKernel`: the design report's alternative, a 3x3 averaging kernel. It is a blur:
  it keeps the mean brightness, so it cannot correct exposure.

:data:`BASELINES` maps a short name to each class.

A *bound* is not a method: :class:`CurveFittedToTruth` fits a curve per channel to the ground truth of
each photo, so it sees the answer. It says how far a global correction could go at best; it is
reported beside the baselines, labelled as such, and never counted as one to beat (:data:`BOUNDS`).
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from skimage import color, exposure
from sklearn.isotonic import IsotonicRegression
from torch import nn

from expolib.imaging.exposure import linear_to_srgb, srgb_to_linear
from expolib.imaging.transforms import denormalize, luminance, normalize


class PhotoBaseline(nn.Module):
    """A corrector that works on each photo of the batch in NumPy; subclasses define :meth:`correct_photo`."""

    name: str = "baseline"

    def correct_photo(self, photo: np.ndarray) -> np.ndarray:
        """Correct one photo ``(H, W, 3)`` float64 in [0, 1]; return the same shape in [0, 1]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> ``(B, 3, H, W)`` in [-1, 1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a batch (B, 3, H, W), got {tuple(x.shape)}")
        outputs = []
        for image in x:
            photo = denormalize(image.detach().float().cpu()).permute(1, 2, 0).numpy().astype(np.float64)
            fixed = np.clip(self.correct_photo(photo), 0.0, 1.0)
            outputs.append(torch.from_numpy(fixed.astype(np.float32)).permute(2, 0, 1))
        return normalize(torch.stack(outputs)).to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return self.name


class Identity(nn.Module):
    """Return the input unchanged: the score of doing nothing."""

    name = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class GlobalGamma(PhotoBaseline):
    """Raise every channel to one power ``gamma``, chosen so that the mean luma becomes ``target``.

    ``gamma < 1`` brightens, ``gamma > 1`` darkens. Each pixel's luma falls as gamma grows, so the mean
    luma is monotonic in gamma and a bisection on ``log(gamma)`` finds it; the search runs on at most
    ``max_samples`` pixels (a strided subset), and gamma stays within ``[1/limit, limit]`` so a
    nearly black or fully clipped photo does not get an absurd curve.
    """

    name = "global gamma"

    def __init__(self, target: float = 0.5, limit: float = 5.0, max_samples: int = 65536) -> None:
        super().__init__()
        if not 0.0 < target < 1.0:
            raise ValueError(f"target mean luma must lie in (0, 1), got {target}")
        self.target, self.limit, self.max_samples = target, limit, max_samples

    def solve_gamma(self, photo: np.ndarray) -> float:
        """The gamma that brings the mean luma of ``photo`` to the target (within the limits)."""
        pixels = photo.reshape(-1, 3)
        step = max(1, len(pixels) // self.max_samples)
        logs = np.log(np.clip(pixels[::step], 1e-6, 1.0))  # x ** g = exp(g ln x): the logarithms once
        low, high = -np.log(self.limit), np.log(self.limit)  # bounds on log(gamma)
        for _ in range(40):  # 40 halvings of a width of 2 ln 5 leave an error below 1e-11
            mid = 0.5 * (low + high)
            mean_luma = float(luminance(np.exp(logs * np.exp(mid))).mean())
            if mean_luma > self.target:
                low = mid  # still too bright: a larger gamma darkens
            else:
                high = mid
        return float(np.exp(0.5 * (low + high)))

    def correct_photo(self, photo: np.ndarray) -> np.ndarray:
        return np.clip(photo, 0.0, 1.0) ** self.solve_gamma(photo)


class AutoLevels(PhotoBaseline):
    """Scale linear light so that the ``percentile``-th percentile of luminance becomes white.

    Decode sRGB, measure luminance (:data:`~expolib.imaging.transforms.LUMA_WEIGHTS` on linear light),
    divide by its percentile, clip to [0, 1] and encode again: an image editor's auto levels, done
    in light rather than in code values. A photo whose top is already white (most over-exposed ones)
    keeps its brightness; a black photo is returned as it is.
    """

    name = "auto levels"

    def __init__(self, percentile: float = 99.5) -> None:
        super().__init__()
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
        self.percentile = percentile

    def white_point(self, photo: np.ndarray) -> float:
        """The luminance, in linear light, that becomes white."""
        return float(np.percentile(luminance(srgb_to_linear(photo)), self.percentile))

    def correct_photo(self, photo: np.ndarray) -> np.ndarray:
        white = self.white_point(photo)
        if white <= 0.0:
            return photo
        return linear_to_srgb(np.clip(srgb_to_linear(photo) / white, 0.0, 1.0))


class HistogramEqualisation(PhotoBaseline):
    """Equalise the histogram of the HSV value (brightness) channel; keep hue and saturation."""

    name = "histogram equalisation"

    def __init__(self, nbins: int = 256) -> None:
        super().__init__()
        self.nbins = nbins

    def correct_photo(self, photo: np.ndarray) -> np.ndarray:
        hsv = color.rgb2hsv(photo)
        hsv[..., 2] = exposure.equalize_hist(hsv[..., 2], nbins=self.nbins)
        return color.hsv2rgb(hsv)


class CLAHE(PhotoBaseline):
    """Contrast-limited adaptive histogram equalisation of the Lab lightness (a, b unchanged)."""

    name = "CLAHE"

    def __init__(self, clip_limit: float = 0.01, kernel_fraction: float = 1 / 8) -> None:
        super().__init__()
        self.clip_limit, self.kernel_fraction = clip_limit, kernel_fraction

    def correct_photo(self, photo: np.ndarray) -> np.ndarray:
        lab = color.rgb2lab(photo)
        lightness = np.clip(lab[..., 0] / 100.0, 0.0, 1.0)
        kernel = max(8, int(round(max(photo.shape[:2]) * self.kernel_fraction)))
        equalised = exposure.equalize_adapthist(lightness, kernel_size=kernel, clip_limit=self.clip_limit)
        lab[..., 0] = 100.0 * equalised
        with warnings.catch_warnings():
            # New lightness with the old a, b can fall outside sRGB; skimage warns that it clips those
            # colours, which is what we want (PhotoBaseline clips to [0, 1] anyway).
            warnings.simplefilter("ignore", UserWarning)
            return color.lab2rgb(lab)


class ReportAveragingKernel(nn.Module):
    """The design report's 3x3 averaging kernel, exactly as described: each pixel becomes the mean of
    the 3x3 neighbourhood around it, channel by channel, with reflect padding at the border (replicate
    padding for an image only 1 pixel high or wide, which has nothing to reflect).

    The weights are all 1/9 and sum to 1, so the mean brightness stays where it was: this is a blur,
    not an exposure correction. Chapter 8 measures that.
    """

    name = "report 3x3 average"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", torch.full((3, 1, 3, 3), 1.0 / 9.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "reflect" if min(x.shape[-2:]) >= 2 else "replicate"
        padded = F.pad(x, (1, 1, 1, 1), mode=mode)
        # groups=3: each colour channel is averaged on its own, as a photo editor's box blur does.
        return F.conv2d(padded, self.kernel.to(dtype=x.dtype, device=x.device), groups=3)


BASELINES: dict[str, Callable[[], nn.Module]] = {
    "identity": Identity,
    "gamma": GlobalGamma,
    "autolevels": AutoLevels,
    "histeq": HistogramEqualisation,
    "clahe": CLAHE,
    "report3x3": ReportAveragingKernel,
}
"""Short name -> factory of each baseline corrector (the names the command line accepts)."""


def make_baseline(name: str) -> nn.Module:
    """Build the baseline called ``name`` (a key of :data:`BASELINES`), in eval mode."""
    try:
        factory = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}") from None
    return factory().eval()


class Bound:
    """Not a corrector: a correction fitted with the ground truth in hand, as a ceiling for a family
    of corrections. :func:`expolib.evaluation.protocol.evaluate` gives it the target too, and its
    table says that it saw the answer (``EvaluationTable.sees_target``)."""

    name = "bound"

    def fit_photo(self, photo: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """``photo`` corrected with ``truth`` in hand: ``(H, W, 3)`` float64 in [0, 1] -> the same."""
        raise NotImplementedError

    def __call__(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One normalised image ``(3, H, W)`` and its target -> the fitted image ``(3, H, W)`` in [-1, 1]."""
        def as_photo(x: torch.Tensor) -> np.ndarray:
            return denormalize(x.detach().float().cpu()).permute(1, 2, 0).numpy().astype(np.float64)

        fitted = np.clip(self.fit_photo(as_photo(image), as_photo(target)), 0.0, 1.0)
        return normalize(torch.from_numpy(fitted.astype(np.float32)).permute(2, 0, 1))


class CurveFittedToTruth(Bound):
    """The best global per-channel curve for each photo: a monotone lookup table of ``levels``
    entries per channel, from the input's code values to the target's, fitted by least squares.

    scikit-learn's isotonic regression fits it on the mean target of each code value, weighted by
    how many pixels have that code (the same least-squares fit as on every pixel, on 256 points);
    codes the photo lacks are interpolated. Where the target is a monotone map of the input channel
    by channel, as an exposure change without noise or clipping is, the table finds it exactly.
    """

    name = "bound: a curve per channel fitted to the truth"

    def __init__(self, levels: int = 256) -> None:
        if levels < 2:
            raise ValueError(f"a lookup table needs at least 2 levels, got {levels}")
        self.levels = levels

    def lookup_tables(self, photo: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the code of every pixel and channel ``(H, W, 3)``, the fitted tables ``(levels, 3)``)."""
        codes = np.rint(np.clip(photo, 0.0, 1.0) * (self.levels - 1)).astype(np.int64)
        grid = np.arange(self.levels, dtype=np.float64)
        tables = np.empty((self.levels, 3))
        for c in range(3):
            counts = np.bincount(codes[..., c].ravel(), minlength=self.levels)
            sums = np.bincount(codes[..., c].ravel(), weights=truth[..., c].ravel(), minlength=self.levels)
            seen = counts > 0
            curve = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
            curve.fit(grid[seen], sums[seen] / counts[seen], sample_weight=counts[seen])
            tables[:, c] = curve.predict(grid)
        return codes, tables

    def fit_photo(self, photo: np.ndarray, truth: np.ndarray) -> np.ndarray:
        codes, tables = self.lookup_tables(photo, truth)
        return np.stack([tables[codes[..., c], c] for c in range(3)], axis=-1)


BOUNDS: dict[str, Callable[[], Bound]] = {"curve": CurveFittedToTruth}
"""Short name -> factory of each bound: rows that see the answer, never baselines to beat."""
