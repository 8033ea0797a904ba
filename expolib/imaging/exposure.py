"""Exposure in stops: sRGB and linear light, and rendering a photo as if it had been exposed wrongly.

A change of one *stop* (one EV) doubles or halves the light that reaches the sensor. Photos are stored
in sRGB, a curve that spends more code values on the shadows, so exposure has to be changed in
*linear* light: decode sRGB, scale by ``2**ev``, encode again.

A camera does not simply clip at white: its tone curve rolls the highlights off smoothly. We model it
with :func:`tone_curve`, which is the identity up to a knee (linear 0.5) and then bends over to reach
white at :data:`WHITE` (two times the knee's headroom: scene light 2.0 maps to 1.0). The well-exposed
photo is taken to be the camera's output at EV 0, so :func:`render_exposure` first *undoes* the tone
curve (recovering scene light up to 2.0), scales it, and applies the curve again. Consequences:

* EV 0 is the identity up to rounding: within 1e-5 for float images and 1 code value for uint8.
* Positive EV pushes scene light past :data:`WHITE`, where the curve clips: saturated highlights.
* Negative EV darkens; highlights that were clipped in the photo come back as flat grey, as in a
  real under-exposure of an already clipped scene. Optional shot noise (``noise``) is added to
  under-exposed renderings in linear light, deterministic for a given ``seed``.

Everything works on NumPy images (H, W, C; uint8 or float in [0, 1]) and on torch tensors
((C, H, W) or (B, C, H, W), float in [0, 1]); the output has the input's type, dtype and range.
"""

from __future__ import annotations

from typing import Optional, TypeVar, Union

import numpy as np
import torch

# The five exposure levels of the MSEC dataset (Afifi et al., 2021), in stops.
EV_UNDER_1_5 = -1.5
EV_UNDER_1 = -1.0
EV_NORMAL = 0.0
EV_OVER_1 = 1.0
EV_OVER_1_5 = 1.5
EVS: tuple[float, ...] = (EV_UNDER_1_5, EV_UNDER_1, EV_NORMAL, EV_OVER_1, EV_OVER_1_5)

KNEE = 0.5  # linear light where the highlight roll-off starts; below it the tone curve is the identity
WHITE = 2.0  # scene linear light that the tone curve maps to 1.0; anything brighter clips

EV0_TOLERANCE_FLOAT = 1e-5  # max |render_exposure(x, 0) - x| for float images
EV0_TOLERANCE_UINT8 = 1  # max difference in code values for uint8 images

Array = Union[np.ndarray, torch.Tensor]
A = TypeVar("A", np.ndarray, torch.Tensor)


def _where(cond: A, a: A, b: A) -> A:
    return torch.where(cond, a, b) if isinstance(cond, torch.Tensor) else np.where(cond, a, b)


def _clip(x: A, lo: float, hi: float) -> A:
    return x.clamp(lo, hi) if isinstance(x, torch.Tensor) else np.clip(x, lo, hi)


def power(x: A, p: Union[float, torch.Tensor]) -> A:
    """``x ** p`` for ``x >= 0``. On tensors as ``exp(p log x)``, which PyTorch's CPU kernels compute
    about twice as fast as a non-integer power (0 stays 0 and 1 stays 1 exactly)."""
    if isinstance(x, torch.Tensor):
        return torch.exp(torch.log(x) * p)
    return x**p


def srgb_to_linear(x: A) -> A:
    """Decode sRGB values in [0, 1] to linear light (IEC 61966-2-1 curve)."""
    x = _clip(x, 0.0, 1.0)
    return _where(x <= 0.04045, x / 12.92, power((x + 0.055) / 1.055, 2.4))


def linear_to_srgb(y: A) -> A:
    """Encode linear light in [0, 1] as sRGB values in [0, 1] (inverse of :func:`srgb_to_linear`)."""
    y = _clip(y, 0.0, 1.0)
    return _where(y <= 0.0031308, y * 12.92, 1.055 * power(y, 1 / 2.4) - 0.055)


def tone_curve(y: A, knee: Union[float, torch.Tensor] = KNEE, white: Union[float, torch.Tensor] = WHITE) -> A:
    """Camera-like tone curve: scene linear light (>= 0) to display linear light in [0, 1].

    Identity up to ``knee``; above it a shoulder ``1 - (1 - knee) * (1 - t)**p`` with
    ``t = (y - knee) / (white - knee)`` and ``p = (white - knee) / (1 - knee)``, which meets the identity
    with slope 1, reaches 1 at ``white`` with slope 0, and clips beyond. The defaults are the book's
    camera (:data:`KNEE`, :data:`WHITE`); :mod:`expolib.imaging.camera` draws other knees and whites. On
    tensors ``knee`` and ``white`` may be tensors that broadcast (one value per image of a batch).
    """
    _check_shoulder(knee, white)
    exponent = (white - knee) / (1.0 - knee)
    y = y.clamp(min=0.0) if isinstance(y, torch.Tensor) else np.maximum(y, 0.0)
    t = _clip((y - knee) / (white - knee), 0.0, 1.0)
    shoulder = 1.0 - (1.0 - knee) * power(1.0 - t, exponent)
    return _where(y <= knee, y, shoulder)


def inverse_tone_curve(d: A, knee: Union[float, torch.Tensor] = KNEE,
                       white: Union[float, torch.Tensor] = WHITE) -> A:
    """Undo :func:`tone_curve`: display linear light in [0, 1] back to scene light in [0, ``white``]."""
    _check_shoulder(knee, white)
    exponent = (white - knee) / (1.0 - knee)
    d = _clip(d, 0.0, 1.0)
    s = _clip((1.0 - d) / (1.0 - knee), 0.0, 1.0)
    scene = knee + (white - knee) * (1.0 - power(s, 1.0 / exponent))
    return _where(d <= knee, d, scene)


def _check_shoulder(knee: Union[float, torch.Tensor], white: Union[float, torch.Tensor]) -> None:
    if isinstance(knee, torch.Tensor) or isinstance(white, torch.Tensor):
        return  # per-image parameters of a batch (expolib.imaging.render): checked where they were drawn
    if not (0.0 < knee < 1.0 < white):
        raise ValueError(f"the tone curve needs 0 < knee < 1 < white, got knee={knee}, white={white}")


def _shot_noise(y: A, noise: float, seed: Optional[int]) -> A:
    """Signal-dependent Gaussian noise with standard deviation ``noise * sqrt(y)`` (photon shot noise)."""
    if isinstance(y, torch.Tensor):
        gen = torch.Generator(device="cpu")
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        z = torch.randn(y.shape, generator=gen, dtype=torch.float32).to(device=y.device, dtype=y.dtype)
        return y + noise * y.clamp(min=0.0).sqrt() * z
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(y.shape).astype(y.dtype, copy=False)
    return y + noise * np.sqrt(np.maximum(y, 0.0)) * z


def _check_range(x: Array, what: str) -> None:
    size = x.numel() if isinstance(x, torch.Tensor) else x.size
    if size == 0:
        raise ValueError(f"{what} is empty")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"{what} has values in [{lo:.3f}, {hi:.3f}], expected [0, 1]; "
            "normalised [-1, 1] data must be denormalised first (expolib.imaging.transforms.denormalize)"
        )


def render_exposure(image: A, ev: float, *, noise: float = 0.0, seed: Optional[int] = None) -> A:
    """Render ``image`` (taken as well exposed) as a capture whose exposure is off by ``ev`` stops.

    ``image``: NumPy (H, W[, C]) uint8 or float in [0, 1], or a float tensor (C, H, W) / (B, C, H, W)
    in [0, 1]. Returns the same type, shape, dtype and range. ``noise`` > 0 adds shot noise to
    under-exposed renderings (``ev < 0``); ``seed`` makes that noise repeatable.
    """
    ev = float(ev)
    if not np.isfinite(ev):
        raise ValueError(f"ev must be a finite number of stops, got {ev}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")

    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or not image.is_floating_point():
            raise ValueError(
                "expected a float tensor (C, H, W) or (B, C, H, W) in [0, 1], "
                f"got {image.dtype} {tuple(image.shape)}"
            )
        _check_range(image, "image tensor")
        out = _render_linear(image, ev, noise, seed)
        return out.to(image.dtype)

    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a NumPy array or torch tensor, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or (H, W, C), got shape {image.shape}")
    if image.dtype == np.uint8:
        out = _render_linear(image.astype(np.float32) / 255.0, ev, noise, seed)
        return np.round(out * 255.0).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        _check_range(image, "image array")
        return _render_linear(image, ev, noise, seed).astype(image.dtype, copy=False)
    raise ValueError(f"expected a uint8 or float image, got dtype {image.dtype}")


def _render_linear(x: A, ev: float, noise: float, seed: Optional[int]) -> A:
    """sRGB [0, 1] -> scene light -> scaled by 2**ev (+ noise) -> tone curve -> sRGB [0, 1]."""
    scene = inverse_tone_curve(srgb_to_linear(x)) * (2.0**ev)
    if noise > 0 and ev < 0:
        scene = _shot_noise(scene, noise, seed)
    return linear_to_srgb(tone_curve(scene))
