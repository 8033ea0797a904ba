"""Figures of the networks, drawn from their configurations with matplotlib.

- :func:`draw_unet`: the U-Net generator's levels, feature-map sizes and skip connections.
- :func:`patch_window` and :func:`draw_patch`: the part of the input that one PatchGAN logit sees,
  computed from the discriminator's layers, drawn over an input/candidate pair.

:mod:`expolib.book.figures` re-exports them.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import matplotlib.pyplot as plt
import numpy as np
import torch

from expolib.imaging.imageio import to_uint8_image

# as expolib.book.figures: uint8 or float, HWC arrays or CHW tensors
ImageLike = Union[np.ndarray, torch.Tensor]


def draw_unet(config: Any, side: int = 256) -> plt.Figure:
    """Draw the U-Net of ``config`` (a :class:`~expolib.networks.unet.UNetConfig`) for a ``side`` x ``side``
    photo: one box per feature map with its side and channels, the encoder going down on the left, the
    decoder coming up on the right, and the skip connections across (drawn only when ``config.skip``).

    Row ``r`` holds the maps of side ``side / 2**r``. The encoder's box in row ``r`` is what the
    stride-2 convolution of level ``r - 1`` makes; the decoder's box is what the up-sampling of level
    ``r`` makes, and the skip puts the two side by side (``cat``) before the next up-sampling reads them.
    Drawn by hand with matplotlib patches: no plotting library draws network diagrams from a config.
    """
    from matplotlib.patches import FancyArrowPatch, Rectangle

    depth, step, width = config.depth, 0.55, 1.9
    fig, ax = plt.subplots(figsize=(11, 0.62 * depth + 1.4))
    right = 2 * depth * step + 3 * width

    def box(x: float, row: int, text: str, colour: str) -> tuple[float, float]:
        ax.add_patch(Rectangle((x, -row - 0.32), width, 0.64, facecolor=colour, edgecolor="black", lw=0.8))
        ax.text(x + width / 2, -row, text, ha="center", va="center", fontsize=8)
        return x, -row

    def arrow(start: tuple[float, float], end: tuple[float, float], colour: str = "black") -> None:
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, color=colour, lw=0.9))

    def size(row: int, channels: int) -> str:
        n = max(1, side // 2**row)
        return f"{n}x{n}x{channels}"

    encoder = [box(row * step, row, size(row, config.in_channels if row == 0 else config.channels(row - 1)),
                   "#cfe3f5") for row in range(depth + 1)]
    decoder = [box(right - width - row * step, row,
                   size(row, config.out_channels if row == 0 else config.channels(row - 1)), "#f8dcc4")
               for row in range(depth)]
    for row in range(depth):  # down: conv 4x4 stride 2; up: the level's up-sampling, one row higher
        arrow((encoder[row][0] + width / 2, -row - 0.32), (encoder[row + 1][0] + width / 2, -row - 0.68))
        source = encoder[depth] if row == depth - 1 else decoder[row + 1]
        arrow((source[0] + width / 2, -row - 0.68), (decoder[row][0] + width / 2, -row - 0.32))
    for row in range(1, depth if config.skip else 1):
        arrow((encoder[row][0] + width, -row), (decoder[row][0], -row), colour="tab:green")
        ax.text((encoder[row][0] + width + decoder[row][0]) / 2, -row + 0.1, "skip (cat)", ha="center",
                fontsize=7, color="tab:green")
    ax.text(encoder[0][0], 0.55, "encoder: conv 4x4, stride 2", fontsize=9)
    ax.text(decoder[0][0] + width, 0.55, "decoder: up-sampling x2", fontsize=9, ha="right")
    ax.set_xlim(-0.2, right + 0.2)
    ax.set_ylim(-depth - 0.6, 0.9)
    ax.axis("off")
    ax.set_title(f"U-Net, depth {depth}, ngf {config.ngf}, on a {side}x{side} photo (side x side x channels)",
                 fontsize=10)
    return fig


def patch_window(config: Any, index: int) -> tuple[int, int]:
    """(first pixel, side) of the window of input pixels that logit ``index`` of a
    :class:`~expolib.networks.patchgan.PatchDiscriminator` built from ``config`` (a ``PatchConfig``)
    reads, along one axis. The window may start before pixel 0 or end past the image: those pixels are
    padding."""
    from torch import nn

    from expolib.networks.factory import build_discriminator
    from expolib.networks.patchgan import receptive_field

    with torch.device("meta"):  # shapes only: nothing is allocated
        convs = [m for m in build_discriminator(config).modules() if isinstance(m, nn.Conv2d)]
    offset, jump = 0, 1
    for conv in convs:  # each layer's padding moves the window's start back by padding x jump
        offset += conv.padding[0] * jump
        jump *= conv.stride[0]
    return index * jump - offset, receptive_field(convs)


def draw_patch(condition: ImageLike, candidate: ImageLike, config: Any,
               centre: Optional[tuple[int, int]] = None, *, normalized: bool = False) -> plt.Figure:
    """Draw one PatchGAN patch over a (condition, candidate) pair: the window of both images that one
    logit of the discriminator built from ``config`` (a :class:`~expolib.networks.patchgan.PatchConfig`) reads
    (red; dashed: the window of its right-hand neighbour), and where that logit sits in the map.

    ``centre`` (row, column) picks the logit whose window is centred nearest it (default: the image's
    centre). Images as in :func:`show_grid`; ``normalized=True`` for float images in [-1, 1]. The
    window's side and position are computed from the layers (:func:`patch_window`), not typed in.
    """
    from matplotlib.patches import Rectangle

    from expolib.networks.factory import build_discriminator

    images = [to_uint8_image(im, normalized=normalized) for im in (condition, candidate)]
    if images[0].shape != images[1].shape:
        raise ValueError(f"condition and candidate differ in shape: {images[0].shape} vs {images[1].shape}")
    h, w = images[0].shape[:2]
    with torch.device("meta"):
        empty = torch.empty(1, 3, h, w)
        map_h, map_w = build_discriminator(config)(empty, empty).shape[-2:]
    if min(map_h, map_w) < 1:
        raise ValueError(f"a {w}x{h} pair is too small for this discriminator: its map is empty")
    start0, field = patch_window(config, 0)
    jump = patch_window(config, 1)[0] - start0
    cy, cx = centre if centre is not None else (h // 2, w // 2)
    row = min(max(round((cy - start0 - field / 2) / jump), 0), map_h - 1)
    col = min(max(round((cx - start0 - field / 2) / jump), 0), map_w - 1)
    top, left = patch_window(config, row)[0], patch_window(config, col)[0]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.0 * h / w + 1.0))
    for ax, image, title in zip(axes, images, ("condition (input)", "candidate")):
        ax.imshow(image)
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), field, field, fill=False, color="tab:red", lw=2))
        if col + 1 < map_w:
            ax.add_patch(Rectangle((left + jump - 0.5, top - 0.5), field, field, fill=False,
                                   color="tab:red", lw=1, ls="--"))
        ax.set(xlim=(-0.5, w - 0.5), ylim=(h - 0.5, -0.5), title=title)
        ax.axis("off")
    grid = np.zeros((map_h, map_w))
    grid[row, col] = 1.0
    axes[2].imshow(grid, cmap="Reds", vmin=0, vmax=1.4)
    axes[2].set_xticks(np.arange(-0.5, map_w, 1), minor=True)
    axes[2].set_yticks(np.arange(-0.5, map_h, 1), minor=True)
    axes[2].grid(which="minor", color="gray", lw=0.3)
    axes[2].tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    axes[2].set_title(f"patch map {map_h}x{map_w}: logit ({row}, {col})")
    fig.suptitle(f"one logit reads the same {field}x{field} window of both images; its neighbour's "
                 f"window (dashed) starts {jump} px further")
    return fig


__all__ = ["draw_patch", "draw_unet", "patch_window"]
