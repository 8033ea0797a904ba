"""Exposure in stops, and the one chain that renders a photo as if it had been exposed wrongly.

A change of one *stop* (one EV) doubles or halves the light that reaches the sensor. Photos are stored
in sRGB, a curve that spends more code values on the shadows, so exposure has to be changed in
*linear* light: decode sRGB, scale by ``2**ev``, encode again.

A camera does not simply clip at white: its tone curve rolls the highlights off smoothly. The book's
camera uses :func:`tone_curve`, which is the identity up to a knee (linear 0.5) and then bends over to
reach white at :data:`WHITE` (two times the knee's headroom: scene light 2.0 maps to 1.0);
:func:`reinhard_curve` and :func:`film_curve` are responses of other shapes. A well-exposed photo is
taken to be the camera's output at EV 0, so rendering it at another exposure runs this chain::

    scene = response⁻¹(sRGB⁻¹(x)) * 2**ev * wb     # capture: scene light, mis-exposed, colour drift
    out   = sRGB(response(scene + noise(scene)))    # develop: sensor noise, the camera again

:func:`capture` and :func:`develop` are its two halves, written once for a batch of images with one
camera each (:class:`CameraParams`), on any device; every rendering runs them: :func:`render_exposure`
(the book's camera, below), :meth:`expolib.imaging.camera.Camera.render` (any camera, plus JPEG) and
the training pairs of :mod:`expolib.imaging.render` (a batch, through lookup tables). Consequences:

* EV 0 is the identity up to rounding: within 1e-5 for float images and 1 code value for uint8.
* Positive EV pushes scene light past :data:`WHITE`, where the curve clips: saturated highlights.
* Negative EV darkens; highlights that were clipped in the photo come back as flat grey, as in a
  real under-exposure of an already clipped scene. Noise is added to under-exposed captures only.

The curves work on NumPy arrays and torch tensors alike; the chain works on tensors, and
:func:`render_exposure` takes both and gives back what it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
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
        return  # one value per image of a batch (CameraParams): checked where they were made
    if not (0.0 < knee < 1.0 < white):
        raise ValueError(f"the tone curve needs 0 < knee < 1 < white, got knee={knee}, white={white}")


def reinhard_curve(y: A, white: Union[float, torch.Tensor]) -> A:
    """The extended Reinhard curve ``y (1 + y / white²) / (1 + y)``: scene linear light (>= 0) to display
    linear light in [0, 1], reaching 1 at ``white``. Unlike :func:`tone_curve` it compresses the
    mid-tones as well as the highlights (Reinhard et al., photographic tone reproduction, 2002)."""
    y = _clip(y, 0.0, np.inf)
    w2 = white**2
    return _clip(y * (1.0 + y / w2) / (1.0 + y), 0.0, 1.0)


def inverse_reinhard_curve(d: A, white: Union[float, torch.Tensor]) -> A:
    """Undo :func:`reinhard_curve`: display linear light in [0, 1] back to scene light in [0, ``white``]."""
    d = _clip(d, 0.0, 1.0)
    w2 = white**2
    # d (1 + y) = y + y² / w²  is a quadratic in y with one non-negative root
    root = (1.0 - d) ** 2 + 4.0 * d / w2
    return 0.5 * w2 * (-(1.0 - d) + (root.sqrt() if isinstance(root, torch.Tensor) else np.sqrt(root)))


def film_curve(y: A, white: Union[float, torch.Tensor], contrast: Union[float, torch.Tensor]) -> A:
    """A film-like S-curve: a logistic in log exposure, ``g(y) = y**c / (1 + y**c)`` (slope ``c =
    contrast`` in log-log terms, half height at scene light 1), scaled to reach 1 at ``white`` and
    clipped beyond. For ``contrast > 1`` it has a toe as well as a shoulder: it compresses the shadows
    (slope 0 at black) and the highlights, which neither :func:`tone_curve` after a power nor
    :func:`reinhard_curve` does. Where the curve is centred does not matter: moving it scales scene
    light, which an exposure change in stops does not see."""
    y = _clip(y, 0.0, np.inf)
    u, top = power(y, contrast), power(_as_like(white, y), contrast)
    return _clip((u / (1.0 + u)) * ((1.0 + top) / top), 0.0, 1.0)


def inverse_film_curve(d: A, white: Union[float, torch.Tensor], contrast: Union[float, torch.Tensor]) -> A:
    """Undo :func:`film_curve`: display linear light in [0, 1] back to scene light in [0, ``white``]."""
    d = _clip(d, 0.0, 1.0)
    top = power(_as_like(white, d), contrast)
    g = d * (top / (1.0 + top))  # the logistic's value, below 1 since the curve stops at white
    return power(g / (1.0 - g), 1.0 / contrast)


def _as_like(value: Union[float, torch.Tensor], x: A) -> A:
    """A parameter as an array or tensor like ``x`` (so that :func:`power` takes it)."""
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return np.asarray(value, dtype=np.float64)


RESPONSES = ("shoulder", "reinhard", "film")
"""The response curves the chain renders, by name; :attr:`CameraParams.response` holds an index here."""


# ----------------------------------------------------------------------------------------------
# The chain, for a batch of images with one camera each
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraParams:
    """One camera per image of a batch, as tensors: ``(B,)`` each, ``wb`` ``(B, C)`` (a gain per channel).

    ``response`` (an index into :data:`RESPONSES`) picks the response: :func:`tone_curve` of
    ``knee`` and ``white`` after a power ``gamma`` (``"shoulder"``), :func:`reinhard_curve` of
    ``white`` (``"reinhard"``) or :func:`film_curve` of ``white`` and contrast ``gamma``
    (``"film"``); ``shot_noise`` and ``read_noise`` are standard
    deviations in linear light. Made by :meth:`uniform` (one camera for every image), by
    :meth:`expolib.imaging.camera.Camera.params`, or from training pairs' drawn numbers
    (:mod:`expolib.imaging.render`).
    """

    response: torch.Tensor
    knee: torch.Tensor
    white: torch.Tensor
    gamma: torch.Tensor
    wb: torch.Tensor
    shot_noise: torch.Tensor
    read_noise: torch.Tensor

    @classmethod
    def uniform(cls, batch: int, *, response: str = "shoulder", knee: float = KNEE, white: float = WHITE,
                gamma: float = 1.0, wb: Optional[tuple[float, ...]] = None, shot_noise: float = 0.0,
                read_noise: float = 0.0, channels: int = 3, dtype: torch.dtype = torch.float32,
                device: Union[str, torch.device, None] = None) -> CameraParams:
        """The same camera for each of ``batch`` images of ``channels`` channels (``wb``: one gain per
        channel; None: no colour drift)."""
        def column(value: float) -> torch.Tensor:
            return torch.full((batch,), float(value), dtype=dtype, device=device)

        gains = torch.tensor(wb if wb is not None else (1.0,) * channels, dtype=dtype, device=device)
        if gains.shape != (channels,):
            raise ValueError(f"white balance needs one gain per channel ({channels}), got {wb}")
        if response not in RESPONSES:
            raise ValueError(f"unknown response {response!r}; choose from {', '.join(RESPONSES)}")
        code = torch.full((batch,), RESPONSES.index(response), dtype=torch.long, device=device)
        return cls(response=code, knee=column(knee),
                   white=column(white), gamma=column(gamma), wb=gains.expand(batch, channels),
                   shot_noise=column(shot_noise), read_noise=column(read_noise))

    def __getitem__(self, rows: torch.Tensor) -> CameraParams:
        """The cameras of some images of the batch."""
        return CameraParams(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def clean(self) -> CameraParams:
        """The same responses without colour drift or noise."""
        zero = torch.zeros_like(self.shot_noise)
        return replace(self, wb=torch.ones_like(self.wb), shot_noise=zero, read_noise=zero)

    def noisy(self, ev: torch.Tensor) -> torch.Tensor:
        """Which captures at ``ev`` (B,) get noise: under-exposed ones, by cameras that have noise."""
        return (ev < 0) & ((self.shot_noise > 0) | (self.read_noise > 0))


def _per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) values shaped to broadcast over the pixels of ``x`` (B, ...)."""
    return values.view(-1, *([1] * (x.ndim - 1)))


def _power(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``x ** p``, and exactly ``x`` where ``p`` is 1 (a gamma of 1 changes nothing and costs nothing)."""
    ones = p == 1
    if bool(ones.all()):
        return x
    return torch.where(ones, x, power(x, p))


def _uses(camera: CameraParams, response: str) -> torch.Tensor:
    """Which images of the batch (B,) have the response called ``response``."""
    return camera.response == RESPONSES.index(response)


def to_scene(display: torch.Tensor, camera: CameraParams) -> torch.Tensor:
    """Each image's response undone: display linear light in [0, 1] (B, ...) -> scene linear light."""
    knee, white, gamma = (_per_image(v, display) for v in (camera.knee, camera.white, camera.gamma))
    scene = _power(inverse_tone_curve(display, knee, white), 1.0 / gamma)
    reinhard, film = _uses(camera, "reinhard"), _uses(camera, "film")
    if bool(reinhard.any()):
        scene = torch.where(_per_image(reinhard, display), inverse_reinhard_curve(display, white), scene)
    if bool(film.any()):
        scene = torch.where(_per_image(film, display), inverse_film_curve(display, white, gamma), scene)
    return scene


def to_display(scene: torch.Tensor, camera: CameraParams) -> torch.Tensor:
    """Each image's response: scene linear light (B, ...) -> display linear light in [0, 1]."""
    knee, white, gamma = (_per_image(v, scene) for v in (camera.knee, camera.white, camera.gamma))
    scene = scene.clamp(min=0.0)
    display = tone_curve(_power(scene, gamma), knee, white)
    reinhard, film = _uses(camera, "reinhard"), _uses(camera, "film")
    if bool(reinhard.any()):
        display = torch.where(_per_image(reinhard, scene), reinhard_curve(scene, white), display)
    if bool(film.any()):
        display = torch.where(_per_image(film, scene), film_curve(scene, white, gamma), display)
    return display


def capture(srgb: torch.Tensor, ev: torch.Tensor, camera: CameraParams) -> torch.Tensor:
    """The scene light each camera records ``ev`` (B,) stops off: sRGB values in [0, 1] (B, C, ...),
    the camera's output at EV 0, with its response undone, scaled by ``2**ev`` and its white balance."""
    scene = to_scene(srgb_to_linear(srgb), camera) * torch.pow(2.0, _per_image(ev, srgb))
    return scene * camera.wb.view(*camera.wb.shape, *([1] * (srgb.ndim - 2)))


def develop(scene: torch.Tensor, camera: CameraParams, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """What each camera writes for ``scene`` light (B, C, ...): sRGB values in [0, 1]. ``noise``:
    standard normal draws shaped like ``scene``, scaled to each camera's shot and read noise (None:
    none; :meth:`CameraParams.noisy` says which images get it)."""
    if noise is not None:
        shot, read = _per_image(camera.shot_noise, scene), _per_image(camera.read_noise, scene)
        scene = scene + torch.sqrt(shot**2 * scene.clamp(min=0.0) + read**2) * noise
    return linear_to_srgb(to_display(scene, camera))


def misexpose(srgb: torch.Tensor, ev: torch.Tensor, camera: CameraParams,
              noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """sRGB values (B, C, ...) -> the sRGB values each camera writes when off by ``ev`` (B,) stops."""
    return develop(capture(srgb, ev, camera), camera, noise)


# ----------------------------------------------------------------------------------------------
# The book's camera, on NumPy images and tensors
# ----------------------------------------------------------------------------------------------


def render_exposure(image: A, ev: float, *, noise: float = 0.0, seed: Optional[int] = None) -> A:
    """Render ``image`` (taken as well exposed) as a capture whose exposure is off by ``ev`` stops.

    ``image``: NumPy (H, W[, C]) uint8 or float in [0, 1], or a float tensor (C, H, W) / (B, C, H, W)
    in [0, 1]. Returns the same type, shape, dtype and range. The book's camera (:func:`tone_curve`,
    no colour drift). ``noise`` > 0 adds shot noise ``noise * sqrt(light)`` to under-exposed
    renderings (``ev < 0``), drawn by PyTorch's generator: repeatable for a ``seed``, and the same
    for an array (H, W, C) as for the tensor (C, H, W) of that image.
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
        batch = image if image.ndim == 4 else image[None]
        return _book_camera(batch, ev, noise, seed).view(image.shape).to(image.dtype)

    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a NumPy array or torch tensor, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or (H, W, C), got shape {image.shape}")
    if image.dtype == np.uint8:
        pixels = torch.from_numpy(image.astype(np.float32) / 255.0)
    elif np.issubdtype(image.dtype, np.floating):
        _check_range(image, "image array")
        pixels = torch.from_numpy(np.ascontiguousarray(image))
    else:
        raise ValueError(f"expected a uint8 or float image, got dtype {image.dtype}")
    channels_first = pixels[None, None] if image.ndim == 2 else pixels.permute(2, 0, 1)[None]
    out = _book_camera(channels_first, ev, noise, seed)
    out_array = (out[0, 0] if image.ndim == 2 else out[0].permute(1, 2, 0)).numpy()
    if image.dtype == np.uint8:
        return np.round(out_array * 255.0).astype(np.uint8)
    return out_array.astype(image.dtype, copy=False)


def _book_camera(images: torch.Tensor, ev: float, noise: float, seed: Optional[int]) -> torch.Tensor:
    """The chain with the book's camera and shot noise ``noise`` on images (B, C, H, W), computed in
    float32 (float64 stays float64); the noise of the whole batch from one generator seeded ``seed``."""
    x = images if images.dtype == torch.float64 else images.to(torch.float32)
    camera = CameraParams.uniform(len(x), shot_noise=noise, channels=x.shape[1], dtype=x.dtype,
                                  device=x.device)
    evs = torch.full((len(x),), ev, dtype=x.dtype, device=x.device)
    z = None
    if bool(camera.noisy(evs).any()):
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        z = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x)
    return misexpose(x, evs, camera, z)


def _check_range(x: Union[np.ndarray, torch.Tensor], what: str) -> None:
    size = x.numel() if isinstance(x, torch.Tensor) else x.size
    if size == 0:
        raise ValueError(f"{what} is empty")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"{what} has values in [{lo:.3f}, {hi:.3f}], expected [0, 1]; "
            "normalised [-1, 1] data must be denormalised first (expolib.imaging.transforms.denormalize)"
        )
