"""Rendering training pairs in batches, on the training device.

A rendered source (:class:`expolib.data.sources.EmbeddedPairs`, :class:`expolib.data.sources.PhotoFolderPairs`) makes
each pair in two halves:

1. :func:`draw_item`, in the data loader (CPU, per item, cheap): the crop of the well-exposed photo as
   uint8, and every random choice the pair needs as numbers: the camera (response, knee, white,
   gamma, white balance, noise levels, JPEG quality), the exposure error, the target's own
   re-exposure, the flip and the input-only colour jitter; plus a seed for the noise.
2. :func:`render_pairs`, for a whole batch, on any device: decode those numbers into the pair,
   normalised to [-1, 1].

A loader then moves only uint8 crops and a few numbers per item, and the arithmetic (sRGB curves,
tone curves, noise, colour) runs where the network runs: on a GPU, a 2-core machine's CPU no longer
limits training. Without a device (``deferred`` off) the dataset calls :func:`render_pairs` itself
on a batch of one, so both paths run the same code and, on the CPU, give the same numbers for a seed
(the tests check it). On CUDA the noise comes from CUDA's generator and JPEG from nvJPEG, so the
numbers differ there while their distributions are the same.
"""

from __future__ import annotations

import warnings
from typing import Optional, Union

import torch
import torchvision.transforms.v2.functional as TF

from expolib.imaging.camera import Camera, CameraFamily, jpeg_roundtrip
from expolib.imaging.exposure import inverse_tone_curve, linear_to_srgb, power, srgb_to_linear, tone_curve
from expolib.imaging.transforms import normalize

# The numbers that describe one pair, by position in an item's ``params`` vector.
PARAMS = ("ev", "target_ev", "reinhard", "knee", "white", "gamma", "wb_r", "wb_g", "wb_b", "shot_noise",
          "read_noise", "jpeg_quality", "flip", "jitter", "brightness", "contrast", "saturation", "hue",
          "order_0", "order_1", "order_2", "order_3")
P = {name: i for i, name in enumerate(PARAMS)}


def camera_params(camera: Camera) -> dict[str, float]:
    """A :class:`Camera` as the numbers :func:`render_pairs` reads."""
    return {"reinhard": float(camera.response == "reinhard"), "knee": camera.knee, "white": camera.white,
            "gamma": camera.gamma, "wb_r": camera.wb[0], "wb_g": camera.wb[1], "wb_b": camera.wb[2],
            "shot_noise": camera.shot_noise, "read_noise": camera.read_noise,
            "jpeg_quality": float(camera.jpeg_quality or 0)}


def _uniform(low: float, high: float, generator: Optional[torch.Generator]) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def draw_item(
    camera: Union[Camera, CameraFamily],
    ev: float,
    flip: bool,
    jitter: Optional[tuple[tuple[float, float], ...]],
    jitter_p: float,
    generator: Optional[torch.Generator],
) -> tuple[torch.Tensor, int, float]:
    """The random choices of one pair: (params, noise seed, the input's EV).

    ``camera``: a fixed camera (``ev`` is then the item's EV) or a family, which draws a camera, an EV
    and the target's re-exposure. ``jitter``: the colour jitter's (brightness, contrast, saturation,
    hue) ranges, applied with probability ``jitter_p``; None for none. Draws from ``generator`` (the
    global generator when None: the trainer seeds it per item).
    """
    values = dict.fromkeys(PARAMS, 0.0)
    if isinstance(camera, CameraFamily):
        drawn = camera.sample(generator)  # type: ignore[arg-type]
        ev = camera.sample_ev(generator)  # type: ignore[arg-type]
        if camera.target_ev > 0:
            values["target_ev"] = _uniform(-camera.target_ev, camera.target_ev, generator)
        camera = drawn
    values.update(camera_params(camera), ev=float(ev), flip=float(flip))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    if jitter is not None and float(torch.rand((), generator=generator)) < jitter_p:
        order = torch.randperm(4, generator=generator).tolist()
        factors = [_uniform(lo, hi, generator) for lo, hi in jitter]
        values.update(jitter=1.0, brightness=factors[0], contrast=factors[1], saturation=factors[2],
                      hue=factors[3], **{f"order_{i}": float(o) for i, o in enumerate(order)})
    return torch.tensor([values[name] for name in PARAMS], dtype=torch.float64), seed, float(ev)


def _column(params: torch.Tensor, name: str) -> torch.Tensor:
    """One parameter for every image of the batch, shaped (B, 1, 1, 1) to broadcast over pixels."""
    return params[:, P[name]].view(-1, 1, 1, 1)


def _to_scene(display: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Each image's camera undone: display linear light -> scene linear light (Camera.to_scene)."""
    knee, white, gamma = (_column(params, k) for k in ("knee", "white", "gamma"))
    shoulder = power(inverse_tone_curve(display, knee, white), 1.0 / gamma)
    reinhard = _column(params, "reinhard") > 0
    if not bool(reinhard.any()):
        return shoulder
    d, w2 = display.clamp(0.0, 1.0), white**2
    root = 0.5 * w2 * (-(1.0 - d) + torch.sqrt((1.0 - d) ** 2 + 4.0 * d / w2))
    return torch.where(reinhard, root, shoulder)


def _to_display(scene: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Each image's camera applied: scene linear light -> display linear light (Camera.to_display)."""
    knee, white, gamma = (_column(params, k) for k in ("knee", "white", "gamma"))
    s = scene.clamp(min=0.0)
    shoulder = tone_curve(power(s, gamma), knee, white)
    reinhard = _column(params, "reinhard") > 0
    if not bool(reinhard.any()):
        return shoulder
    w2 = white**2
    return torch.where(reinhard, (s * (1.0 + s / w2) / (1.0 + s)).clamp(max=1.0), shoulder)


def _noise(shape: torch.Size, seeds: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Standard normal noise, each image from its own seed (on the CPU: what a per-item run draws)."""
    out = torch.empty(shape, device=device)
    for i, seed in enumerate(seeds.tolist()):
        generator = torch.Generator(device=device).manual_seed(int(seed))
        out[i] = torch.randn(shape[1:], generator=generator, device=device)
    return out


def _jpeg(images: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """JPEG round trips of some images (float (N, 3, H, W) in [0, 1]) at their qualities: Pillow on
    the CPU, nvJPEG (torchvision.io) on CUDA, falling back to Pillow where it is missing."""
    if images.device.type == "cuda":
        try:
            from torchvision.io import decode_jpeg, encode_jpeg

            as_uint8 = (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
            out = torch.empty_like(images)
            with warnings.catch_warnings():  # torchvision 0.29+ points to TorchCodec; this still works
                warnings.simplefilter("ignore", DeprecationWarning)
                for i, quality in enumerate(qualities):
                    data = encode_jpeg(as_uint8[i], quality=quality)
                    out[i] = decode_jpeg(data, device=images.device).to(images.dtype) / 255.0
            return out
        except (RuntimeError, TypeError):  # no CUDA JPEG codec in this build
            pass
    return torch.stack([jpeg_roundtrip(image, quality) for image, quality in zip(images, qualities)])


def _scene_light(image: torch.Tensor, ev: torch.Tensor, params: torch.Tensor, gains: bool) -> torch.Tensor:
    """sRGB values -> each camera's scene light, exposed by ``ev`` (and its white balance)."""
    scene = _to_scene(srgb_to_linear(image), params) * torch.pow(2.0, ev)
    return scene * params[:, P["wb_r"]:P["wb_b"] + 1].view(-1, 3, 1, 1) if gains else scene


def _srgb_out(scene: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Scene light -> each camera's sRGB output."""
    return linear_to_srgb(_to_display(scene, params))


def _lookup(table: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``table`` (B, 3, 1, 256) read at the uint8 ``codes`` (B, 3, H, W), image by image and channel
    by channel."""
    b, c, h, w = codes.shape
    return table.reshape(b * c, 256).gather(1, codes.reshape(b * c, h * w).long()).view(b, c, h, w)


def _render(codes: torch.Tensor, params: torch.Tensor,
            seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) in [0, 1] for uint8 crops ``codes`` (B, 3, H, W) and their params.

    Everything a camera does to a pixel, short of noise and JPEG, depends on that pixel's code value
    alone (for a given image and channel). So each image's curves are computed once on the 256 code
    values, a small table per image and channel, and the pixels look their values up: a fraction of
    the arithmetic of computing every curve at every pixel (written by hand for that reason; the maths
    is :class:`expolib.imaging.camera.Camera`'s). Noise is added where it belongs, in scene light, and the
    pixels of those images go through the rest of the curve one by one.
    """
    b = codes.shape[0]
    grid = (torch.arange(256, device=codes.device, dtype=torch.float32) / 255.0).expand(b, 3, 1, 256)
    target_ev, ev = _column(params, "target_ev"), _column(params, "ev")
    # the target: the photo re-exposed by a clean camera (same curves, no drift, noise or JPEG)
    clean = _srgb_out(_scene_light(grid, target_ev, params, gains=False), params)
    target_table = torch.where(target_ev == 0, grid, clean)
    target = _lookup(target_table, codes)
    scene_table = _scene_light(target_table, ev, params, gains=True)
    source = _lookup(_srgb_out(scene_table, params), codes)
    shot, read = _column(params, "shot_noise"), _column(params, "read_noise")
    noisy = ((ev < 0) & ((shot > 0) | (read > 0))).view(-1)
    if bool(noisy.any()):
        rows = noisy.nonzero().view(-1)
        scene = _lookup(scene_table[rows], codes[rows])
        z = _noise(scene.shape, seeds[rows], scene.device)
        sigma = torch.sqrt(shot[rows] ** 2 * scene.clamp(min=0.0) + read[rows] ** 2)
        source = source.index_put((rows,), _srgb_out(scene + sigma * z, params[rows]))
    quality = params[:, P["jpeg_quality"]]
    rows = ((quality > 0) & (ev.view(-1) != 0)).nonzero().view(-1)
    if rows.numel():
        source = source.index_put((rows,), _jpeg(source[rows], [int(q) for q in quality[rows].tolist()]))
    return torch.where(ev == 0, target, source), target


def _jitter(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Input-only colour jitter of the images whose ``jitter`` is set, in their drawn order."""
    rows = (params[:, P["jitter"]] > 0).nonzero().view(-1).tolist()
    if not rows:
        return images
    images = images.clone()
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    names = ("brightness", "contrast", "saturation", "hue")
    for row in rows:
        values = params[row].tolist()
        image = images[row]
        for k in range(4):
            which = int(values[P[f"order_{k}"]])
            image = ops[which](image, values[P[names[which]]])
        images[row] = image.clamp(0.0, 1.0)
    return images


def render_pairs(photos: torch.Tensor, params: torch.Tensor, seeds: torch.Tensor,
                 device: Union[str, torch.device, None] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The (input, target) batch in [-1, 1] that ``photos`` (uint8 (B, 3, H, W) well-exposed crops)
    and their drawn ``params`` (B, len(PARAMS)) and noise ``seeds`` (B,) describe, computed on
    ``device`` (default: the photos' own)."""
    device = torch.device(device) if device is not None else photos.device
    codes = photos.to(device, non_blocking=True)
    params = params.to(device=device, dtype=torch.float32, non_blocking=True)
    flip = _column(params, "flip") > 0
    if bool(flip.any()):
        codes = torch.where(flip, codes.flip(-1), codes)
    source, target = _render(codes, params, seeds)
    return normalize(_jitter(source, params)), normalize(target)


def finish_pairs(inputs: torch.Tensor, targets: torch.Tensor, params: torch.Tensor,
                 device: Union[str, torch.device, None] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs whose two halves are files (uint8 (B, 3, H, W) input and target crops): flipped as drawn,
    the input colour-jittered as drawn, both normalised to [-1, 1], on ``device``."""
    device = torch.device(device) if device is not None else inputs.device
    x = inputs.to(device, non_blocking=True).to(torch.float32) / 255.0
    y = targets.to(device, non_blocking=True).to(torch.float32) / 255.0
    params = params.to(device=device, dtype=torch.float32, non_blocking=True)
    flip = _column(params, "flip") > 0
    if bool(flip.any()):
        x, y = torch.where(flip, x.flip(-1), x), torch.where(flip, y.flip(-1), y)
    return normalize(_jitter(x, params)), normalize(y)


__all__ = ["P", "PARAMS", "camera_params", "draw_item", "finish_pairs", "render_pairs"]
