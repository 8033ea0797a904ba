"""Many cameras, not one: randomized renderings of exposure errors, so that a model generalizes.

:func:`expolib.imaging.exposure.render_exposure` is one camera: one tone curve, no colour drift, no
noise to speak of, no compression. A model trained only on it learns that camera's way of being wrong.
A real under-exposed photo comes from another response curve, another white balance, sensor noise and
a JPEG encoder. :class:`Camera` describes one such camera; :class:`CameraFamily` draws cameras (and
exposure errors from a continuous range) at random, deterministically for a given generator.

Every camera renders through the one chain of :mod:`expolib.imaging.exposure` (:meth:`Camera.params`
gives its numbers to :func:`~expolib.imaging.exposure.capture` and
:func:`~expolib.imaging.exposure.develop`), then :func:`jpeg_roundtrip` compresses the result::

    scene = response⁻¹(sRGB⁻¹(x))           # undo the camera: scene linear light
    scene = scene * 2**ev * white_balance     # the wrong exposure, a slight colour drift
    scene = scene + noise(scene)              # shot and read noise (under-exposure only)
    out   = JPEG(sRGB(response(scene)))       # the camera again, then compression

Responses: ``"shoulder"`` is :func:`~expolib.imaging.exposure.tone_curve` (identity to a knee, then a
smooth roll-off to white) after a power ``gamma`` on linear light; the training family varies knee,
white and gamma. ``"reinhard"`` is :func:`~expolib.imaging.exposure.reinhard_curve`, which compresses
mid-tones as well as highlights: a response of another shape, *held out* from training, so that an
evaluation can say how a model does on a camera it never saw (:data:`HELD_OUT_CAMERA`). ``"film"`` is
:func:`~expolib.imaging.exposure.film_curve`, a logistic in log exposure of contrast ``gamma`` that
reaches white at ``white``: an S-curve that compresses the shadows too, a third shape that neither the
training family nor the held-out camera contains (:data:`FILM_CAMERA`).

At EV 0 every camera returns the photo unchanged: a well-exposed photo needs no correction, and the
model should learn to leave it alone.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image

from expolib.imaging.exposure import KNEE, RESPONSES, WHITE, CameraParams, misexpose, to_display, to_scene


@dataclass(frozen=True)
class Camera:
    """One camera: response curve, white-balance drift, noise and JPEG quality.

    The default is the book's camera (:func:`~expolib.imaging.exposure.render_exposure` without noise).
    ``response``: one of :data:`RESPONSES`; ``knee`` shapes the shoulder, ``white`` is the scene light
    every response maps to white, ``gamma`` the power on linear light before the shoulder (the
    contrast of the film curve; the Reinhard curve has none). ``wb``: gains on the red, green and
    blue linear light of the mis-exposed capture. ``shot_noise`` and ``read_noise``: standard
    deviations, in linear light, of the signal-dependent and constant noise added to under-exposed
    captures. ``jpeg_quality``: re-encode the result (None: no JPEG).
    """

    response: str = "shoulder"
    knee: float = KNEE
    white: float = WHITE
    gamma: float = 1.0
    wb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    shot_noise: float = 0.0
    read_noise: float = 0.0
    jpeg_quality: Optional[int] = None

    def __post_init__(self) -> None:
        if self.response not in RESPONSES:
            raise ValueError(f"unknown response {self.response!r}; choose from {', '.join(RESPONSES)}")
        if self.white <= 1.0 or self.gamma <= 0 or min(self.wb) <= 0:
            raise ValueError("Camera needs white > 1, gamma > 0 and positive white-balance gains")
        if self.response == "shoulder" and not 0.0 < self.knee < 1.0:
            raise ValueError(f"Camera.knee must be in (0, 1), got {self.knee}")
        if min(self.shot_noise, self.read_noise) < 0:
            raise ValueError("Camera noise levels must be >= 0")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"Camera.jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    def params(self, batch: int = 1, dtype: torch.dtype = torch.float32,
               device: Union[str, torch.device, None] = None) -> CameraParams:
        """This camera for each of ``batch`` images, as the chain (``expolib.imaging.exposure``) reads it."""
        return CameraParams.uniform(
            batch, response=self.response, knee=self.knee, white=self.white, gamma=self.gamma,
            wb=self.wb, shot_noise=self.shot_noise, read_noise=self.read_noise, dtype=dtype, device=device)

    def clean(self) -> Camera:
        """The same response without colour drift, noise or JPEG."""
        return replace(self, wb=(1.0, 1.0, 1.0), shot_noise=0.0, read_noise=0.0, jpeg_quality=None)

    def to_scene(self, display: torch.Tensor) -> torch.Tensor:
        """Display linear light in [0, 1] -> scene linear light (the inverse of :meth:`to_display`)."""
        return to_scene(display[None], self.params(1, display.dtype, display.device))[0]

    def to_display(self, scene: torch.Tensor) -> torch.Tensor:
        """Scene linear light (>= 0) -> display linear light in [0, 1]."""
        return to_display(scene[None], self.params(1, scene.dtype, scene.device))[0]

    def render(self, image: torch.Tensor, ev: float,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Render a well-exposed float image ``(3, H, W)`` in [0, 1] as this camera's capture at ``ev``.

        ``generator`` draws the noise (PyTorch's global generator when None). EV 0 returns ``image``.
        """
        if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
            shape = tuple(image.shape)
            raise ValueError(f"expected a float image (3, H, W) in [0, 1], got {image.dtype} {shape}")
        if not np.isfinite(ev):
            raise ValueError(f"ev must be a finite number of stops, got {ev}")
        if ev == 0:
            return image
        camera = self.params(1, image.dtype, image.device)
        evs = torch.full((1,), float(ev), dtype=image.dtype, device=image.device)
        noise = None
        if bool(camera.noisy(evs)):
            noise = torch.randn(image.shape, generator=generator, dtype=torch.float32).to(image)[None]
        out = misexpose(image[None], evs, camera, noise)[0]
        return jpeg_roundtrip(out, self.jpeg_quality) if self.jpeg_quality is not None else out


PLAIN_CAMERA = Camera()
"""The book's camera: :func:`~expolib.imaging.exposure.render_exposure` without noise."""

HELD_OUT_CAMERA = Camera(response="reinhard", white=2.5)
"""A response outside the training family, for evaluation only: how a model does on a new camera."""

FILM_CAMERA = Camera(response="film", white=4.0, gamma=1.6)
"""A film-like S-curve (a toe and a shoulder), for evaluation only: a response of a shape that neither
the training family nor :data:`HELD_OUT_CAMERA` contains."""


def jpeg_roundtrip(images: torch.Tensor, quality: Union[int, Sequence[int]]) -> torch.Tensor:
    """Encode float images ``(3, H, W)`` or ``(N, 3, H, W)`` in [0, 1] as JPEGs at ``quality`` (one
    for all, or one per image) and decode them again.

    Pillow's encoder on the CPU, as most cameras and phones write baseline JPEG with 4:2:0 chroma
    subsampling; nvJPEG (torchvision.io) on CUDA (which encodes 4:4:4: slightly milder colour
    artefacts), falling back to Pillow where this build of torchvision has no CUDA codec.
    """
    if images.ndim == 3:
        return jpeg_roundtrip(images[None], [int(quality)] if isinstance(quality, int) else quality)[0]
    qualities = [int(quality)] * len(images) if isinstance(quality, int) else [int(q) for q in quality]
    as_uint8 = (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    if images.device.type in DEVICE_CODEC:
        out = _torchvision_roundtrip(as_uint8, qualities)
        if out is not None:
            return out.to(images.dtype) / 255.0
    decoded = []
    for array, q in zip(as_uint8.permute(0, 2, 3, 1).cpu().numpy(), qualities):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=q)
        decoded.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(images.device, images.dtype) / 255.0


DEVICE_CODEC = ("cuda",)
"""Devices whose images :func:`jpeg_roundtrip` encodes and decodes where they are (nvJPEG)."""


def _torchvision_roundtrip(as_uint8: torch.Tensor, qualities: list[int]) -> Optional[torch.Tensor]:
    """uint8 ``(N, 3, H, W)`` through torchvision's JPEG codec on their device, or None where this
    build has none for it (torchvision without nvJPEG raises a RuntimeError)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    out = torch.empty_like(as_uint8)
    try:
        with warnings.catch_warnings():  # torchvision 0.29+ points to TorchCodec; this still works
            warnings.simplefilter("ignore", DeprecationWarning)
            for i, q in enumerate(qualities):
                data = encode_jpeg(as_uint8[i], quality=q)  # nvJPEG leaves the file's bytes on the GPU,
                out[i] = decode_jpeg(data.cpu(), device=as_uint8.device)  # decoding reads them on the host
    except (RuntimeError, TypeError):
        return None
    return out


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


@dataclass(frozen=True)
class CameraFamily:
    """Ranges from which training cameras and exposure errors are drawn (uniformly unless stated).

    ``knee``, ``white`` and ``gamma`` shape the shoulder response; ``wb_sigma`` is the standard
    deviation of the log2 white-balance gain per channel; noise levels are drawn up to their maxima;
    ``jpeg_p`` is the probability of JPEG re-compression at a quality in ``jpeg_quality``. EVs are
    drawn from ``ev_range`` (wider than MSEC's ±1.5) away from 0 by at least ``min_abs_ev``, except
    that a fraction ``p_ev0`` of the items is left at EV 0, so the model sees well-exposed photos that
    it must return unchanged. ``target_ev`` re-exposes the ground truth itself by up to that many
    stops (same camera, no noise): well-exposed photos come in a range of brightness, and a model
    that learns one "right" brightness darkens or brightens every good photo towards it.
    """

    knee: tuple[float, float] = (0.3, 0.7)
    white: tuple[float, float] = (1.5, 3.0)
    gamma: tuple[float, float] = (0.8, 1.25)
    wb_sigma: float = 0.04
    max_shot_noise: float = 0.03
    max_read_noise: float = 0.004
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (70, 95)
    ev_range: tuple[float, float] = (-2.0, 2.0)
    min_abs_ev: float = 0.0
    p_ev0: float = 0.2
    target_ev: float = 0.0

    def __post_init__(self) -> None:
        low, high = self.ev_range
        if not (low < -self.min_abs_ev and self.min_abs_ev < high and 0.0 <= self.min_abs_ev):
            raise ValueError(f"CameraFamily: ev_range {self.ev_range} leaves no EV beyond ±{self.min_abs_ev}")
        if not 0.0 <= self.p_ev0 <= 1.0 or self.target_ev < 0:
            raise ValueError("CameraFamily: p_ev0 must be in [0, 1] and target_ev >= 0")

    def sample(self, generator: torch.Generator) -> Camera:
        """One camera of the family."""
        wb = tuple(float(2.0 ** (self.wb_sigma * torch.randn((), generator=generator))) for _ in range(3))
        jpeg = None
        if float(torch.rand((), generator=generator)) < self.jpeg_p:
            jpeg = int(round(_uniform(generator, *self.jpeg_quality)))
        return Camera(
            response="shoulder",
            knee=_uniform(generator, *self.knee),
            white=_uniform(generator, *self.white),
            gamma=_uniform(generator, *self.gamma),
            wb=(wb[0], wb[1], wb[2]),
            shot_noise=_uniform(generator, 0.0, self.max_shot_noise),
            read_noise=_uniform(generator, 0.0, self.max_read_noise),
            jpeg_quality=jpeg,
        )

    def sample_ev(self, generator: torch.Generator) -> float:
        """One exposure error in stops: 0 with probability ``p_ev0``, else uniform over the part of
        ``ev_range`` at least ``min_abs_ev`` away from 0."""
        if float(torch.rand((), generator=generator)) < self.p_ev0:
            return 0.0
        low, high = self.ev_range
        below, above = -self.min_abs_ev - low, high - self.min_abs_ev  # lengths of the two intervals
        u = _uniform(generator, 0.0, below + above)
        return low + u if u < below else self.min_abs_ev + (u - below)

    def render(self, image: torch.Tensor,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float, Camera]:
        """Draw a camera and an EV, render ``image`` with them: (input, target, ev, camera). The target
        is ``image``, re-exposed by up to ``target_ev`` stops when that is set."""
        camera = self.sample(generator)
        ev = self.sample_ev(generator)
        target = image
        if self.target_ev > 0:
            target = camera.clean().render(image, _uniform(generator, -self.target_ev, self.target_ev))
        return camera.render(target, ev, generator=generator), target, ev, camera

    def with_changes(self, **changes: object) -> CameraFamily:
        """A copy with some ranges changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_FAMILY = CameraFamily(min_abs_ev=0.5, p_ev0=0.4, target_ev=0.4)
"""The family ``python -m expolib train --camera random`` trains with (chosen on the validation split)."""


__all__ = [
    "DEFAULT_FAMILY",
    "FILM_CAMERA",
    "HELD_OUT_CAMERA",
    "PLAIN_CAMERA",
    "RESPONSES",
    "Camera",
    "CameraFamily",
    "jpeg_roundtrip",
]
