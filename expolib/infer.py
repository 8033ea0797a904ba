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

The command line ``python -m expolib correct`` corrects files and folders; :func:`benchmark_fullres`
measures time and peak memory of both modes on a 12-megapixel photo.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from expolib.evaluation import Corrector, run_corrector
from expolib.imageio import DEFAULT_MAX_PIXELS, to_uint8_image
from expolib.transforms import denormalize, normalize, to_tensor01

MODES = ("guided", "direct")


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
    :func:`expolib.evaluation.run_corrector` (no gradients, eval mode restored after).
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
    working_side: int = 512,
    radius: int = 2,
    eps: float = 1e-4,
    tile_rows: Optional[int] = 256,
) -> np.ndarray:
    """Correct a photo of any size with ``model`` (a generator or any corrector); uint8 (H, W, 3) in and out.

    ``mode="guided"``: the network sees the photo with its long side at ``working_side`` pixels and its
    change is carried to full resolution by a local affine colour model (``radius`` and ``eps`` of the
    guided filter, in low-resolution pixels and squared [0, 1] units), applied in bands of ``tile_rows``
    rows; a photo already within ``working_side`` still goes through the fitted colour model.
    ``mode="direct"``: the whole photo through the network at full resolution.
    """
    _check_photo(photo)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if mode == "direct":
        return _to_uint8(run_network(model, to_tensor01(photo).unsqueeze(0)))
    if working_side < 8:
        raise ValueError(f"working_side must be at least 8 pixels, got {working_side}")
    small = to_tensor01(downsample(photo, working_size(*photo.shape[:2], working_side))).unsqueeze(0)
    output = run_network(model, small)
    coeffs = fit_local_affine(small, output, radius=radius, eps=eps)
    return guided_upsample(coeffs, photo, tile_rows=tile_rows)


# ------------------------------------------------------------------------------------- benchmark


def synthetic_photo(megapixels: float, ev: float = -1.0) -> np.ndarray:
    """A test photo of about ``megapixels`` (4:3): the embedded cat, rendered at ``ev`` and enlarged."""
    from skimage import data as skdata

    from expolib.exposure import render_exposure

    base = render_exposure(skdata.chelsea(), ev)
    width = int(round(math.sqrt(megapixels * 1e6 * 4 / 3)))
    height = int(round(width * 3 / 4))
    return np.array(Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC))


def _load_model(weights: Optional[Union[str, Path]], device: str = "cpu") -> tuple[nn.Module, str]:
    """The generator from ``weights``, or the shipped one; an untrained standard one when neither exists."""
    from expolib.models import generator_from_budget, load_generator
    from expolib.pretrained import PRETRAINED_PATH

    if weights is not None:
        return load_generator(weights, device=device), str(weights)
    if PRETRAINED_PATH.is_file():
        return load_generator(PRETRAINED_PATH, device=device), "shipped weights"
    from expolib.config import get_budget

    return generator_from_budget(get_budget("standard")).to(device).eval(), "untrained standard generator"


def _memory_kib() -> tuple[int, int]:
    """(current, peak) resident memory of this process in KiB.

    Linux reports both in /proc/self/status (VmRSS, VmHWM); elsewhere only the peak is known
    (``ru_maxrss``), and it stands in for both.
    """
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        peak = _maxrss_kib()
        return peak, peak


def _maxrss_kib() -> int:
    """The process's peak resident size in KiB from ``ru_maxrss``, which is in bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux and the BSDs
    return peak // 1024 if sys.platform == "darwin" else peak


def _reset_peak_memory() -> None:
    """Restart the peak-memory count from the current size (Linux: write 5 to /proc/self/clear_refs).

    Importing torch alone briefly peaks higher than correcting a small photo, so without a reset the
    peak would say nothing about the correction. Where the reset is not possible, nothing happens.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _benchmark_worker(
    modes: Sequence[str], megapixels: float, weights: Optional[str], working_side: int
) -> list[dict[str, Any]]:
    """Time each mode's correction of one photo in this process and measure how far the resident
    memory rose above its size before that correction (the peak count restarts for every mode)."""
    import gc

    model, source = _load_model(weights)
    photo = synthetic_photo(megapixels)
    results = []
    for mode in modes:
        # Warm-up on a corner: the first call of each operator pays one-off setup costs.
        correct(model, photo[:64, :64], mode=mode, working_side=min(64, working_side))
        gc.collect()
        _reset_peak_memory()
        before, _ = _memory_kib()
        start = time.perf_counter()
        correct(model, photo, mode=mode, working_side=working_side)
        seconds = time.perf_counter() - start
        _, peak = _memory_kib()
        results.append({
            "mode": mode, "megapixels": photo.shape[0] * photo.shape[1] / 1e6,
            "size": f"{photo.shape[1]}x{photo.shape[0]}", "seconds": seconds, "peak_mib": peak / 1024,
            "extra_peak_mib": max(0, peak - before) / 1024, "model": source,
            "threads": torch.get_num_threads(),
        })
    return results


def compare_modes(
    model: Corrector, pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, working_side: int = 256
) -> dict[str, float]:
    """Mean PSNR against the ground truth of guided and direct correction over (input, target) uint8 pairs."""
    from expolib.metrics import psnr

    scores: dict[str, list[float]] = {m: [] for m in MODES}
    for source, target in pairs:
        for m in MODES:
            scores[m].append(psnr(correct(model, source, mode=m, working_side=working_side), target))
    means = {m: float(np.mean(v)) for m, v in scores.items()}
    means["difference"] = means["guided"] - means["direct"]
    return means


def embedded_test_pairs(max_side: Optional[int] = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input, ground truth) uint8 pairs of the embedded test photos at every EV (native size by default)."""
    from expolib.data import EmbeddedPairs
    from expolib.imageio import to_uint8_image

    dataset = EmbeddedPairs(split="test", size=None, augment=False, max_side=max_side)
    return [
        (to_uint8_image(item["input"], normalized=True), to_uint8_image(item["target"], normalized=True))
        for item in dataset
    ]


def benchmark_fullres(
    megapixels: float = 12.0,
    *,
    weights: Optional[Union[str, Path]] = None,
    working_side: int = 512,
    modes: Sequence[str] = MODES,
    psnr_working_side: int = 256,
    measure_psnr: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Time and peak memory of each mode on a ``megapixels`` photo (CPU), and the PSNR difference.

    The measurement runs in a fresh Python process, so that nothing of the caller's counts. Memory is
    the process's resident size (which, unlike ``tracemalloc``, counts what torch allocates): its peak
    during the correction (``peak_mib``) and how far that rose above the size just before it
    (``extra_peak_mib``, the model and the photo being already loaded). The PSNR of both modes is measured
    on the embedded test photos at every EV (native size, guided at ``psnr_working_side``) unless
    ``measure_psnr`` is False. Returns ``{"modes": {mode: {...}}, "psnr": {...}}``.
    """
    results: dict[str, Any] = {"modes": {}}
    # With a resettable peak (Linux) one process measures every mode; elsewhere the peak only grows,
    # so each mode needs a process of its own.
    groups = [list(modes)] if Path("/proc/self/clear_refs").exists() else [[m] for m in modes]
    for group in groups:
        code = (
            "import json\nfrom expolib.infer import _benchmark_worker\n"
            f"print(json.dumps(_benchmark_worker({group!r}, {float(megapixels)!r}, "
            f"{None if weights is None else str(weights)!r}, {int(working_side)})))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"benchmark of {', '.join(group)} failed:\n{done.stderr.strip()}")
        for r in json.loads(done.stdout.strip().splitlines()[-1]):
            results["modes"][r["mode"]] = r
            if verbose:
                print(
                    f"{r['mode']:>6}: {r['size']} ({r['megapixels']:.1f} MP) in {r['seconds']:.2f} s, "
                    f"peak memory {r['peak_mib']:.0f} MiB "
                    f"(+{r['extra_peak_mib']:.0f} MiB for the correction), "
                    f"{r['threads']} threads, {r['model']}"
                )
    if not measure_psnr:
        return results
    model, _ = _load_model(weights)
    results["psnr"] = compare_modes(model, embedded_test_pairs(), working_side=psnr_working_side)
    if verbose:
        p = results["psnr"]
        print(
            f"PSNR on the embedded test photos (guided at {psnr_working_side} px): "
            f"guided {p['guided']:.2f} dB, "
            f"direct {p['direct']:.2f} dB, difference {p['difference']:+.2f} dB"
        )
    return results


# ------------------------------------------------------------------------------------------- CLI


def _collect(inputs: Sequence[str], recursive: bool) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, path relative to the output folder) for every input; problems found while listing.

    Folders are listed with :func:`expolib.data.list_images`: image extensions only, hidden files (such
    as macOS's ``._IMG.jpg`` companions) skipped.
    """
    from expolib.data import list_images

    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files = list_images(path, recursive=recursive)
            if not files:
                hint = "" if recursive else " (try --recursive)"
                problems.append(f"skipped {path}: no photos in this folder{hint}")
            found.extend((f, f.relative_to(path)) for f in files)
        elif path.exists():
            found.append((path, Path(path.name)))
        else:
            problems.append(f"skipped {path}: no such file or folder")
    return found, problems


def _run_correct(args: argparse.Namespace) -> int:
    from expolib.imageio import load_image, save_image

    if args.benchmark:
        benchmark_fullres(args.megapixels, weights=args.weights, working_side=args.working_side)
        return 0
    if not args.inputs or args.out is None:
        print("correct needs at least one input and --out DIR (or --benchmark)")
        return 2
    if args.max_pixels < 1:
        print(f"--max-pixels must be a positive number of pixels, got {args.max_pixels}")
        return 2
    out_dir = Path(args.out)
    files, problems = _collect(args.inputs, args.recursive)
    for line in problems:
        print(line)
    if not files:
        return 1
    from expolib.models import load_generator
    from expolib.pretrained import load_pretrained

    try:
        if args.weights:
            model = load_generator(args.weights, device=args.device)
        else:
            model = load_pretrained(args.device)
    except (FileNotFoundError, ValueError) as error:  # ModelFileError is a ValueError
        print(f"cannot load the generator: {error}")
        return 1
    inputs = {f.resolve() for f, _ in files}
    written: dict[Path, Path] = {}
    failed = len(problems)
    for path, relative in files:
        target = out_dir / relative
        resolved = target.resolve()
        if resolved in inputs:
            print(f"skipped {path}: the output {target} would overwrite an input; choose another --out")
            failed += 1
            continue
        if resolved in written:
            print(f"skipped {path}: {written[resolved]} already writes {target}")
            failed += 1
            continue
        try:
            photo = load_image(path, max_pixels=args.max_pixels)
            fixed = correct(model, photo, mode=args.mode, working_side=args.working_side)
            save_image(fixed, target)
        except (ValueError, OSError, RuntimeError) as error:  # ImageLoadError is a ValueError
            reason = str(error).replace("\n", " ")
            prefix = f"{path}: "
            if reason.startswith(prefix):  # load_image's messages already name the file
                reason = reason[len(prefix):]
            print(f"skipped {path}: {reason}")
            failed += 1
            continue
        written[resolved] = path
        if not args.quiet:
            print(f"wrote {target}")
    return 1 if failed else 0


def add_cli(subparsers: Any) -> None:
    """Add ``correct``: fix the exposure of photos or folders of photos, at full resolution."""
    p = subparsers.add_parser(
        "correct",
        help="correct the exposure of photos (files or folders) at full resolution",
        description="Correct photos with the shipped generator (or --weights) and write them, under the "
        "same names, into --out. Inputs are never overwritten; a file that cannot be read is reported "
        "and skipped. Exit status 1 when anything was skipped.",
    )
    p.add_argument("inputs", nargs="*", metavar="IN", help="photos or folders of photos")
    p.add_argument("--out", metavar="DIR", help="folder for the corrected photos")
    p.add_argument("--mode", choices=MODES, default="guided", help="guided (default, fast) or direct")
    p.add_argument("--weights", help="a generator saved with expolib.models.save_generator")
    p.add_argument("--working-side", type=int, default=512, help="long side the network sees in guided mode")
    p.add_argument("--recursive", action="store_true", help="also correct photos in sub-folders")
    p.add_argument("--device", default="cpu", help="where the network runs (default cpu)")
    p.add_argument("--quiet", action="store_true", help="report only problems")
    p.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
        help=f"refuse photos with more pixels than this (default {DEFAULT_MAX_PIXELS:,}, Pillow's "
        "decompression-bomb limit)",
    )
    p.add_argument("--benchmark", action="store_true", help="time both modes on a synthetic photo instead")
    p.add_argument(
        "--megapixels", type=float, default=12.0, help="size of the --benchmark photo (default 12)"
    )
    p.set_defaults(func=_run_correct)


__all__ = ["MODES", "add_cli", "apply_affine", "benchmark_fullres", "compare_modes", "correct",
           "fit_local_affine", "guided_upsample", "synthetic_photo"]
