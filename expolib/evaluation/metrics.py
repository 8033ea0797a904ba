"""How close is a corrected photo to its ground truth? PSNR, SSIM and CIEDE2000 colour difference.

All three come from scikit-image; this module only makes them agree on one convention: images in
[0, 1], given either as NumPy arrays ``(H, W, 3)`` or as torch tensors ``(3, H, W)`` (a batch of one,
``(1, 3, H, W)``, is accepted too). ``uint8`` NumPy images are divided by 255.

- PSNR, peak signal-to-noise ratio, in dB: ``10 log10(1 / MSE)`` for a peak value of 1. Higher is better;
  identical images give ``inf``. :func:`psnr_batch` computes it for a whole torch batch at once.
- SSIM, structural similarity (Wang et al. 2004): local means, variances and covariance compared in
  7x7 windows, averaged over the image and the colour channels. 1 means identical.
- Delta E 2000 (Sharma et al. 2005): the CIEDE2000 colour difference between the two images in CIE
  Lab, averaged over pixels. About 1 is "just noticeable"; 0 means identical.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from expolib.imaging.transforms import luminance

ImageLike = Union[np.ndarray, torch.Tensor]

METRICS: tuple[str, ...] = ("psnr", "ssim", "delta_e00")
"""The metric names, in the order every table shows them."""

HIGHER_IS_BETTER: dict[str, bool] = {"psnr": True, "ssim": True, "delta_e00": False}

_RANGE_TOLERANCE = 1e-3  # float rounding may leave values a hair outside [0, 1]


def to_numpy_image(image: ImageLike) -> np.ndarray:
    """Return ``image`` as a float64 NumPy array ``(H, W, 3)`` in [0, 1].

    Accepts NumPy ``(H, W, 3)`` (float in [0, 1] or uint8) and torch ``(3, H, W)`` or ``(1, 3, H, W)``
    in [0, 1]. Anything else, or float values outside [0, 1] (for example a normalised image in
    [-1, 1]), raises ``ValueError``.
    """
    if isinstance(image, torch.Tensor):
        tensor = image.detach()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(f"expected a torch image of shape (3, H, W), got {tuple(image.shape)}")
        array = tensor.to(device="cpu", dtype=torch.float64).permute(1, 2, 0).numpy()
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a NumPy image of shape (H, W, 3), got {image.shape}")
        if image.dtype == np.uint8:
            return image.astype(np.float64) / 255.0
        array = image.astype(np.float64, copy=False)
    else:
        raise TypeError(f"expected a NumPy array or a torch tensor, got {type(image).__name__}")
    low, high = float(array.min()), float(array.max())
    if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise ValueError(
            f"image values must lie in [0, 1] (got min {low:.3f}, max {high:.3f}); "
            "denormalise network tensors with expolib.imaging.transforms.denormalize first"
        )
    return np.clip(array, 0.0, 1.0)


def _pair(output: ImageLike, target: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_numpy_image(output), to_numpy_image(target)
    if a.shape != b.shape:
        raise ValueError(f"the two images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(output: ImageLike, target: ImageLike) -> float:
    """Peak signal-to-noise ratio in dB for a peak value of 1 (``inf`` for identical images)."""
    a, b = _pair(output, target)
    if np.array_equal(a, b):
        return float("inf")  # skimage would divide by zero (with a warning) to get the same answer
    return float(peak_signal_noise_ratio(b, a, data_range=1.0))


def psnr_batch(pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of every image of a batch, computed by torch on the tensors' device: shape ``(B,)``.

    ``pred01`` and ``target01`` are ``(B, C, H, W)`` (or one ``(C, H, W)`` image) in [0, 1]. Same
    definition as :func:`psnr`: peak value 1, ``inf`` for identical images, ``ValueError`` for values
    outside [0, 1]. The squared error is averaged over each image's channels and pixels in float64
    (float32 on Apple's MPS, which has no float64). Meant for many images at once, such as validation
    during training, where :func:`psnr` would copy every image to NumPy.
    """
    if pred01.shape != target01.shape:
        raise ValueError(f"the two batches differ in shape: {tuple(pred01.shape)} vs {tuple(target01.shape)}")
    if pred01.ndim == 3:
        pred01, target01 = pred01.unsqueeze(0), target01.unsqueeze(0)
    if pred01.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W) or (C, H, W), got shape {tuple(pred01.shape)}")
    for name, images in (("pred01", pred01), ("target01", target01)):
        low, high = (float(v) for v in torch.aminmax(images.detach()))
        if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise ValueError(
                f"{name} values must lie in [0, 1] (got min {low:.3f}, max {high:.3f}); "
                "denormalise network tensors with expolib.imaging.transforms.denormalize first"
            )
    dtype = torch.float32 if pred01.device.type == "mps" else torch.float64
    # clipped to [0, 1] like psnr (float rounding may leave values a hair outside)
    diff = pred01.detach().to(dtype).clamp(0, 1) - target01.detach().to(pred01.device, dtype).clamp(0, 1)
    mse = diff.pow(2).mean(dim=(1, 2, 3))  # (B,)
    return -10.0 * torch.log10(mse)  # mse 0 gives inf, as psnr does


def ssim(output: ImageLike, target: ImageLike) -> float:
    """Structural similarity (7x7 windows, mean over pixels and channels); 1 for identical images."""
    a, b = _pair(output, target)
    if min(a.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {a.shape[1]}x{a.shape[0]}")
    return float(structural_similarity(b, a, channel_axis=-1, data_range=1.0))


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference between two CIE Lab arrays (last axis L, a, b), element-wise."""
    a = np.asarray(lab1, dtype=np.float64)
    b = np.asarray(lab2, dtype=np.float64)
    return np.asarray(deltaE_ciede2000(a, b))


def delta_e_map(output: ImageLike, target: ImageLike) -> np.ndarray:
    """Per-pixel CIEDE2000 difference ``(H, W)`` between two sRGB images in [0, 1]."""
    a, b = _pair(output, target)
    return ciede2000(rgb2lab(a), rgb2lab(b))


def delta_e00(output: ImageLike, target: ImageLike) -> float:
    """Mean CIEDE2000 colour difference over pixels; 0 for identical images."""
    return float(delta_e_map(output, target).mean())


def period2_energy(image: ImageLike) -> float:
    """Fraction of an image's luma variation that sits at the period-2 frequencies.

    The 2-D Fourier transform of the luma (mean removed, cropped to even sides) has three bins whose
    pattern repeats every two pixels: vertical stripes, horizontal stripes and the checkerboard. This
    returns their energy over the total energy. A transposed convolution with stride 2 leaves its
    artifacts exactly there. Hand-written (a few NumPy lines): no metrics library offers it.
    """
    a = to_numpy_image(image)
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    if min(h, w) < 2:
        raise ValueError(f"period2_energy needs at least 2x2 pixels, got {a.shape[1]}x{a.shape[0]}")
    luma = luminance(a[:h, :w])
    spectrum = np.abs(np.fft.fft2(luma - luma.mean())) ** 2
    total = float(spectrum.sum())
    if total == 0.0:
        return 0.0
    return float(spectrum[h // 2, 0] + spectrum[0, w // 2] + spectrum[h // 2, w // 2]) / total


def checkerboard(output: ImageLike, target: ImageLike) -> float:
    """Period-2 energy of ``output`` relative to the ground truth's (:func:`period2_energy`).

    1 means the output has as much two-pixel pattern as the real photo; a network that leaves a
    checkerboard scores well above 1, one that blurs scores below.
    """
    reference = period2_energy(target)
    mine = period2_energy(output)
    if reference == 0.0:
        return float("inf") if mine > 0 else 1.0
    return mine / reference


def image_metrics(output: ImageLike, target: ImageLike) -> dict[str, float]:
    """All three metrics for one pair: ``{"psnr": ..., "ssim": ..., "delta_e00": ...}``."""
    a, b = _pair(output, target)
    return {"psnr": psnr(a, b), "ssim": ssim(a, b), "delta_e00": delta_e00(a, b)}
