"""Correct photos of any size: run the network small, carry its correction to full resolution.

A phone photo has 12 megapixels; the generator was trained on 128x128 crops. Two ways to correct it:

- ``mode="direct"``: the whole photo through the fully convolutional network. Exact, but time and
  memory grow with the pixel count, and at full resolution the network's receptive field covers a
  small part of the scene (less global context than it had in training).
- ``mode="guided"`` (default): run the network on a copy whose long side is ``working_side`` (512),
  describe what it did there as a *local affine colour transform* (for each low-resolution pixel, a 3x3
  matrix and an offset that map input colours to output colours, fitted with the guided filter of He et
  al. 2013 over a small window), upsample those coefficients bilinearly and apply them to the full
  resolution input. Edges come from the full-resolution photo itself; the network only decides the
  colours. This is the idea of bilateral guided upsampling (Chen et al. 2016) and HDRNet (Gharbi et al.
  2017) in its simplest form.

The full-resolution pass works in bands of rows (``tile_rows``) so memory stays bounded. There are no
seams: every band samples the same global low-resolution coefficient map at the same coordinates, so a
band computes exactly what the whole image would.

The command line ``python -m expolib correct`` (:mod:`expolib.cli.correct`) corrects files and folders;
:func:`expolib.benchmarks.fullres.benchmark_fullres` measures time and peak memory of both modes on a
12-megapixel photo.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from expolib.evaluation.corrector import Corrector, run_corrector
from expolib.imaging.imageio import to_uint8_image
from expolib.imaging.transforms import denormalize, normalize, to_tensor01

MODES = ("guided", "direct")
DEFAULT_WORKING_SIDE = 512  # for a generator that does not say which side it works best at


def _check_photo(photo: np.ndarray) -> None:
    if not isinstance(photo, np.ndarray) or photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        desc = f"{photo.dtype} {photo.shape}" if isinstance(photo, np.ndarray) else type(photo).__name__
        raise ValueError(f"expected a photo as a uint8 array (H, W, 3), got {desc}")


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W), about [0, 1] (an affine colour model may step outside) -> uint8 (H, W, 3)."""
    return to_uint8_image(image.clamp(0.0, 1.0), normalized=False)


def run_network(model: Corrector, image: torch.Tensor) -> torch.Tensor:
    """Apply a corrector to ``(1, 3, H, W)`` in [0, 1]; [0, 1] out, on the CPU.

    The network works in [-1, 1]: this maps the photo there and back around
    :func:`expolib.evaluation.corrector.run_corrector` (no gradients, eval mode restored after).
    """
    return denormalize(run_corrector(model, normalize(image[0]))).unsqueeze(0)


def working_size(height: int, width: int, working_side: int) -> tuple[int, int]:
    """The (height, width) with long side at most ``working_side`` and the photo's aspect ratio."""
    scale = min(1.0, working_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def downsample(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shrink a uint8 photo to ``size`` = (height, width) with area averaging.

    Pillow's box filter works on the 8-bit data directly, so a 12-megapixel photo never becomes a
    float copy just to be shrunk (torch would need 4 bytes per value).
    """
    if photo.shape[:2] == size:
        return photo
    return np.array(Image.fromarray(photo).resize((size[1], size[0]), Image.Resampling.BOX))


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window around each pixel; windows are cut at the border (as in He et al.)."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def fit_local_affine(
    guide: torch.Tensor, output: torch.Tensor, radius: int = 2, eps: float = 1e-4
) -> torch.Tensor:
    """Fit ``output ≈ A · guide + b`` in every window; return the window-averaged coefficients.

    ``guide`` and ``output``: ``(1, 3, h, w)`` in [0, 1]. The result ``(1, 12, h, w)`` holds, per pixel,
    the 3x3 matrix ``A`` (channels 0-8, row-major ``A[i, j]`` = weight of input channel ``i`` in output
    channel ``j``) and the offset ``b`` (channels 9-11). This is the colour guided filter of He et al.
    (2013), stopped before the last step so the coefficients can be upsampled: ``A = (Σ + eps I)^-1 C``
    with ``Σ`` the guide's 3x3 covariance and ``C`` the guide/output cross-covariance in the window.
    Written with torch box filters (``avg_pool2d``) and batched 3x3 solves: no library offers the
    colour guided filter on tensors, and this is a few dozen vectorised operations.
    """
    _, _, h, w = guide.shape
    mean_i = _box(guide, radius)  # (1, 3, h, w)
    mean_p = _box(output, radius)
    # Products of every pair of channels, box-filtered in one call: (1, 9, h, w) each.
    gi = guide[:, :, None] * guide[:, None, :]  # (1, 3, 3, h, w)
    gp = guide[:, :, None] * output[:, None, :]
    sigma = _box(gi.reshape(1, 9, h, w), radius).reshape(3, 3, h, w) - mean_i[0, :, None] * mean_i[0, None, :]
    cross = _box(gp.reshape(1, 9, h, w), radius).reshape(3, 3, h, w) - mean_i[0, :, None] * mean_p[0, None, :]
    eye = torch.eye(3, dtype=guide.dtype, device=guide.device)
    sigma = sigma.permute(2, 3, 0, 1) + eps * eye  # (h, w, 3, 3)
    a = torch.linalg.solve(sigma, cross.permute(2, 3, 0, 1))  # (h, w, 3, 3): a[i, j] input i -> output j
    b = mean_p[0].permute(1, 2, 0) - torch.einsum("hwij,hwi->hwj", a, mean_i[0].permute(1, 2, 0))  # (h, w, 3)
    coeffs = torch.cat([a.reshape(h, w, 9), b], dim=-1).permute(2, 0, 1).unsqueeze(0)  # (1, 12, h, w)
    return _box(coeffs, radius)


def apply_affine(coeffs: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply per-pixel coefficients ``(1, 12, H, W)`` to ``image`` ``(1, 3, H, W)``: ``A · image + b``."""
    _, _, h, w = image.shape
    a = coeffs[:, :9].reshape(1, 3, 3, h, w)
    return torch.einsum("nijhw,nihw->njhw", a, image) + coeffs[:, 9:]


def _row_grid(y0: int, y1: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Sampling grid for rows [y0, y1) of a (height, width) image over the whole low-resolution map.

    Pixel centres in normalised coordinates (align_corners=False), computed from global indices: a band
    samples exactly where the whole image would, which is why bands meet without seams.
    """
    ys = (torch.arange(y0, y1, device=device, dtype=torch.float64) + 0.5) / height * 2.0 - 1.0
    xs = (torch.arange(width, device=device, dtype=torch.float64) + 0.5) / width * 2.0 - 1.0
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).unsqueeze(0).float()  # (1, rows, width, 2), x first


def guided_upsample(
    coeffs: torch.Tensor,
    photo: np.ndarray,
    *,
    tile_rows: Optional[int] = 256,
    device: Optional[torch.device] = None,
) -> np.ndarray:
    """Upsample low-resolution affine coefficients bilinearly and apply them to the uint8 ``photo``.

    Works in bands of ``tile_rows`` rows (``None``: all at once); returns uint8 (H, W, 3).
    """
    height, width = photo.shape[:2]
    device = device or coeffs.device
    coeffs = coeffs.to(device)
    rows = tile_rows or height
    result = np.empty_like(photo)
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        grid = _row_grid(y0, y1, height, width, device)
        band_coeffs = F.grid_sample(coeffs, grid, mode="bilinear", padding_mode="border", align_corners=False)
        band = to_tensor01(photo[y0:y1]).unsqueeze(0).to(device)
        result[y0:y1] = _to_uint8(apply_affine(band_coeffs, band))
    return result


def correct(
    model: Corrector,
    photo: np.ndarray,
    *,
    mode: str = "guided",
    working_side: Optional[int] = None,
    radius: int = 2,
    eps: float = 1e-4,
    tile_rows: Optional[int] = 256,
) -> np.ndarray:
    """Correct a photo of any size with ``model`` (a generator or any corrector); uint8 (H, W, 3) in and out.

    ``mode="guided"``: the network sees the photo with its long side at ``working_side`` pixels (default:
    the side stored with the model, see ``expolib.networks.modelfile.save_generator``, else 512) and its
    change is carried to full resolution by a local affine colour model (``radius`` and ``eps`` of the
    guided filter, in low-resolution pixels and squared [0, 1] units), applied in bands of ``tile_rows``
    rows; a photo already within ``working_side`` still goes through the fitted colour model.
    ``mode="direct"``: the whole photo through the network at full resolution.

    A model with a ``global_stage`` (:class:`expolib.networks.two_stage.TwoStageGenerator`) first
    estimates the photo's exposure error on the whole photo: a photo estimated to be well exposed is
    returned unchanged, bit for bit; any other has its error undone at full resolution, and the U-Net
    then corrects it in the mode asked for.
    """
    _check_photo(photo)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    global_stage = getattr(model, "global_stage", None)
    if global_stage is not None:  # a two-stage corrector: the exposure undone on the whole photo first
        photo, _, moved = global_stage(photo)
        if not moved or getattr(model, "unet", None) is None:
            return photo.copy()  # estimated well exposed: returned as it came, bit for bit
        working_side = working_side or getattr(model, "working_side", None)
        model = model.unet  # then the U-Net, for what is local
    if mode == "direct":
        return _to_uint8(run_network(model, to_tensor01(photo).unsqueeze(0)))
    if working_side is None:  # the side the model was trained to see whole scenes at, else 512
        working_side = getattr(model, "working_side", None) or DEFAULT_WORKING_SIDE
    if working_side < 8:
        raise ValueError(f"working_side must be at least 8 pixels, got {working_side}")
    small = to_tensor01(downsample(photo, working_size(*photo.shape[:2], working_side))).unsqueeze(0)
    output = run_network(model, small)
    coeffs = fit_local_affine(small, output, radius=radius, eps=eps)
    return guided_upsample(coeffs, photo, tile_rows=tile_rows)


class PhotoCorrector:
    """A generator run the way :func:`correct` runs it, as a :data:`~expolib.evaluation.corrector.Corrector`.

    Evaluation calls correctors on normalised tensors; this one turns the tensor into an 8-bit photo,
    corrects it with ``mode`` and ``working_side`` exactly as ``python -m expolib correct`` would
    (rounding to 8 bits included) and hands the result back normalised, so the scores measure what a
    user gets.
    """

    def __init__(self, model: Corrector, mode: str = "guided", working_side: Optional[int] = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        self.model, self.mode, self.working_side = model, mode, working_side
        side = working_side or getattr(model, "working_side", None) or DEFAULT_WORKING_SIDE
        self.name = f"model ({mode}, {side} px)" if mode == "guided" else "model (direct)"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> the corrected batch, same shape and range, on the CPU."""
        outputs = []
        for image in images:
            photo = to_uint8_image(image.clamp(-1.0, 1.0), normalized=True)
            fixed = correct(self.model, photo, mode=self.mode, working_side=self.working_side)
            outputs.append(normalize(to_tensor01(fixed)))
        return torch.stack(outputs)


__all__ = ["DEFAULT_WORKING_SIDE", "MODES", "PhotoCorrector", "apply_affine", "correct", "downsample",
           "fit_local_affine", "guided_upsample", "run_network", "working_size"]
