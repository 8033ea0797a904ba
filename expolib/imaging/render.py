"""Rendering training pairs in batches, on the training device.

A rendered source (:class:`expolib.data.rendered.EmbeddedPairs`,
:class:`expolib.data.rendered.PhotoFolderPairs`) makes each pair in two halves:

1. :func:`draw_item`, in the data loader (CPU, per item, cheap): the crop of the well-exposed photo as
   uint8, and every random choice the pair needs as numbers: the camera (response, knee, white,
   gamma, white balance, noise levels, JPEG quality), the exposure error, the target's own
   re-exposure, the flip and the input-only colour jitter; plus a seed for the noise.
2. :func:`render_pairs`, for a whole batch, on any device: decode those numbers into the pair,
   normalised to [-1, 1]. :func:`render_crops` runs the one camera chain
   (:mod:`expolib.imaging.exposure`, the same as :meth:`expolib.imaging.camera.Camera.render`) on
   lookup tables.

A loader then moves only uint8 crops and a few numbers per item, and the arithmetic (sRGB curves,
tone curves, noise, colour) runs where the network runs: on a GPU, a 2-core machine's CPU no longer
limits training. Without a device (``deferred`` off) the dataset calls :func:`render_pairs` itself
on a batch of one, so both paths run the same code and, on the CPU, give the same numbers for a seed
(the tests check it). On CUDA the noise comes from CUDA's generator and JPEG from nvJPEG, so the
numbers differ there; the noise's distribution is the same, and nvJPEG keeps the colour at full
resolution (4:4:4) where Pillow halves it (4:2:0), so its colour artefacts are slightly milder.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torchvision.transforms.v2.functional as TF

from expolib.imaging.camera import Camera, CameraFamily, jpeg_roundtrip
from expolib.imaging.exposure import RESPONSES, CameraParams, capture, develop, misexpose
from expolib.imaging.transforms import normalize

# The numbers that describe one pair, by position in an item's ``params`` vector.
PARAMS = ("ev", "target_ev", "response", "knee", "white", "gamma", "wb_r", "wb_g", "wb_b", "shot_noise",
          "read_noise", "jpeg_quality", "flip", "jitter", "brightness", "contrast", "saturation", "hue",
          "order_0", "order_1", "order_2", "order_3")
P = {name: i for i, name in enumerate(PARAMS)}


def camera_params(camera: Camera) -> dict[str, float]:
    """A :class:`Camera` as the numbers :func:`render_pairs` reads."""
    return {"response": float(RESPONSES.index(camera.response)), "knee": camera.knee, "white": camera.white,
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


def camera_of(params: torch.Tensor) -> CameraParams:
    """The camera of each pair, as the chain reads it, from their ``params`` (B, len(PARAMS))."""
    def column(name: str) -> torch.Tensor:
        return params[:, P[name]]

    return CameraParams(response=column("response").round().long(), knee=column("knee"),
                        white=column("white"), gamma=column("gamma"), wb=params[:, P["wb_r"]:P["wb_b"] + 1],
                        shot_noise=column("shot_noise"), read_noise=column("read_noise"))


def _noise(shape: torch.Size, seeds: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Standard normal noise, each image from its own seed (on the CPU: what a per-item run draws)."""
    out = torch.empty(shape, device=device)
    for i, seed in enumerate(seeds.tolist()):
        out[i] = _normal(shape[1:], int(seed), device)
    return out


def _normal(shape: torch.Size, seed: int, device: torch.device) -> torch.Tensor:
    """Standard normal numbers drawn on ``device`` by a generator of its own (CUDA's on a GPU); a device
    without one gets the CPU's numbers for ``seed``, moved there."""
    try:
        generator = torch.Generator(device=device)
    except RuntimeError:  # "not an accelerator": no generator of its own
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    return torch.randn(shape, generator=generator.manual_seed(seed), device=device)


def _lookup(table: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``table`` (B, 3, 1, 256) read at the uint8 ``codes`` (B, 3, H, W), image by image and channel
    by channel."""
    b, c, h, w = codes.shape
    return table.reshape(b * c, 256).gather(1, codes.reshape(b * c, h * w).long()).view(b, c, h, w)


def render_crops(codes: torch.Tensor, params: torch.Tensor,
                 seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) in [0, 1] for uint8 crops ``codes`` (B, 3, H, W) and their params.

    Short of noise and JPEG, what the chain (:func:`~expolib.imaging.exposure.capture`, then
    :func:`~expolib.imaging.exposure.develop`) does to a pixel depends on that pixel's code value alone
    (for a given image and channel). So the chain runs once on the 256 code values, a small table per
    image and channel, and the pixels look their results up: a fraction of the arithmetic of running it
    at every pixel. Noise is added where it belongs, in scene light: the pixels of those images look up
    their scene light and are developed one by one. JPEG comes last.
    """
    b = codes.shape[0]
    grid = (torch.arange(256, device=codes.device, dtype=torch.float32) / 255.0).expand(b, 3, 1, 256)
    camera, ev, target_ev = camera_of(params), params[:, P["ev"]], params[:, P["target_ev"]]
    # the target: the photo re-exposed by the same camera without colour drift or noise
    clean = misexpose(grid, target_ev, camera.clean())
    target_table = torch.where(target_ev.view(-1, 1, 1, 1) == 0, grid, clean)
    target = _lookup(target_table, codes)
    scene_table = capture(target_table, ev, camera)
    source = _lookup(develop(scene_table, camera), codes)
    noisy = camera.noisy(ev)
    if bool(noisy.any()):
        rows = noisy.nonzero().view(-1)
        scene = _lookup(scene_table[rows], codes[rows])
        z = _noise(scene.shape, seeds[rows], scene.device)
        source = source.index_put((rows,), develop(scene, camera[rows], z))
    quality = params[:, P["jpeg_quality"]]
    rows = ((quality > 0) & (ev != 0)).nonzero().view(-1)
    if rows.numel():
        source = source.index_put((rows,), jpeg_roundtrip(source[rows], quality[rows].tolist()))
    return torch.where(ev.view(-1, 1, 1, 1) == 0, target, source), target


def jitter_inputs(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
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
    source, target = render_crops(codes, params, seeds)
    return normalize(jitter_inputs(source, params)), normalize(target)


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
    return normalize(jitter_inputs(x, params)), normalize(y)


__all__ = [
    "P", "PARAMS", "camera_of", "camera_params", "draw_item", "finish_pairs", "jitter_inputs", "render_crops",
    "render_pairs",
]
