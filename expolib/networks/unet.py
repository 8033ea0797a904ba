"""The pix2pix generator: a U-Net of nested blocks, image in, image out.

Isola et al. (2017) and their reference implementation's ``unet_256``, rebuilt as small modules that
read top to bottom: :class:`UNetConfig` is its shape, :class:`UNetBlock` one level of the U, and
nesting ``depth`` of them makes :class:`UNetGenerator`. :func:`pad_to_multiple` and
:func:`crop_center` let it take photos of any size. Build it through
:func:`expolib.networks.factory.build_generator`, which is how the library picks its generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from expolib.networks.layers import GemmConvTranspose2d, check_norm, init_weights, norm_layer

UPSAMPLING = ("transpose", "bilinear")  # how a decoder block doubles the side
# a residual generator maps x to tanh(atanh(x * RESIDUAL_SHRINK) + u): u = 0 returns x within 1e-3
RESIDUAL_SHRINK = 1.0 - 1e-3


@dataclass
class UNetConfig:
    """Shape of the U-Net generator. The defaults are pix2pix's ``unet_256``.

    ``depth`` strided convolutions halve the side ``depth`` times: 256 / 2**8 = 1, a 1x1 bottleneck.
    Level ``k`` (0 = outermost) has ``ngf * min(2**k, max_mult)`` channels. The ``n_dropout`` decoder
    blocks just outside the innermost one use dropout. ``skip=False`` removes every skip connection
    (a plain encoder-decoder, for comparison in the book). ``gemm_upsampling=True`` builds the
    transposed convolutions as :class:`GemmConvTranspose2d`: the same parameters and results, faster on
    the CPU; it changes how the network computes, not what it is, so a saved generator does not
    store it.

    Two departures from pix2pix, off by default (measured in the book): ``upsample="bilinear"`` makes
    each decoder block a bilinear upsampling and a 3x3 convolution instead of a stride-2 transposed
    convolution, whose uneven overlaps print a checkerboard (Odena et al. 2016); ``residual=True``
    makes the network predict a change to its input rather than a new image: the output is
    ``tanh(atanh(x) + u)`` for the last layer's ``u``, so ``u = 0`` returns the photo unchanged.
    """

    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 64
    depth: int = 8
    norm: str = "batch"
    dropout: float = 0.5
    n_dropout: int = 3
    skip: bool = True
    max_mult: int = 8
    # transposed convs as GemmConvTranspose2d: faster on the CPU, same weights; how the network computes,
    # not what it is, so a saved generator leaves it out (field metadata "saved": False)
    gemm_upsampling: bool = field(default=False, metadata={"saved": False})
    upsample: str = "transpose"  # "transpose" (pix2pix) or "bilinear" (upsample, then a 3x3 conv)
    residual: bool = False  # predict a change to the input (tanh(atanh(x) + u)) instead of the image

    def __post_init__(self) -> None:
        if self.depth < 2:
            raise ValueError(f"UNetConfig.depth must be at least 2 (outermost + innermost), got {self.depth}")
        if min(self.in_channels, self.out_channels, self.ngf, self.max_mult) < 1:
            raise ValueError("UNetConfig channels, ngf and max_mult must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.n_dropout < 0:
            raise ValueError(f"UNetConfig.n_dropout must be >= 0, got {self.n_dropout}")
        check_norm(self.norm)
        if self.upsample not in UPSAMPLING:
            raise ValueError(f"UNetConfig.upsample must be one of {UPSAMPLING}, got {self.upsample!r}")
        if self.residual and self.in_channels != self.out_channels:
            raise ValueError("UNetConfig.residual needs as many output channels as input channels")

    def channels(self, level: int) -> int:
        """Feature channels produced by the down convolution of ``level`` (0 = outermost)."""
        return self.ngf * min(2**level, self.max_mult)


class UNetBlock(nn.Module):
    """One level of the U: a strided convolution down, the levels below it, a transposed one up.

    ::

        x ──┬──► down ──► inner (the next UNetBlock, or nothing at the bottom) ──► up ──► y ──┐
            │                                                                              ▼
            └─────────────────────────── skip connection ──────────────────────────► cat(x, y)

    ``x`` has ``outer`` channels at side ``s``; ``down`` makes ``inner`` channels at ``s / 2``; ``up``
    turns what the inner level returns back into ``outer`` channels at side ``s``. Every block except the
    outermost returns ``cat(x, y)`` (2 * outer channels), so the ``up`` of the level above reads twice
    the channels its ``down`` produced. The outermost block maps the image (``in_channels``) to the
    output (``out_channels``) through tanh and has no skip: its input is the photo itself.

    Down: LeakyReLU(0.2) -> Conv 4x4/2 -> Norm (no activation before the outermost conv, which sees
    the photo; no norm after the innermost, whose output is 1x1 and would be normalised over a single
    value per channel with batch 1). Up: ReLU -> ConvTranspose 4x4/2 -> Norm [-> Dropout], or -> tanh
    at the outermost. A conv followed by a norm has no bias: the norm removes the mean and adds its own.
    """

    def __init__(
        self,
        outer: int,
        inner: int,
        *,
        submodule: Optional[UNetBlock] = None,
        outermost: bool = False,
        in_channels: Optional[int] = None,
        norm: str = "batch",
        dropout: float = 0.0,
        skip: bool = True,
        gemm_upsampling: bool = False,
        upsample: str = "transpose",
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        self.innermost = submodule is None
        self.skip = skip and not outermost
        in_channels = outer if in_channels is None else in_channels
        down_norm = not (outermost or self.innermost)

        down: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2)]
        down.append(nn.Conv2d(in_channels, inner, kernel_size=4, stride=2, padding=1, bias=not down_norm))
        if down_norm:
            down.append(norm_layer(norm, inner))
        self.down = nn.Sequential(*down)

        self.inner = submodule
        # what the inner level hands back: its own cat(x, y) when it has a skip, else its y alone
        up_in = inner if submodule is None or not submodule.skip else 2 * inner
        up: list[nn.Module] = [nn.ReLU()]
        if upsample == "bilinear":  # every output pixel gets the same number of weights: no checkerboard
            up += [nn.Upsample(scale_factor=2, mode="bilinear"),
                   nn.Conv2d(up_in, outer, kernel_size=3, padding=1, bias=outermost)]
        else:
            transposed = GemmConvTranspose2d if gemm_upsampling else nn.ConvTranspose2d
            up.append(transposed(up_in, outer, kernel_size=4, stride=2, padding=1, bias=outermost))
        if outermost:
            if not residual:  # a residual generator applies tanh after adding its input (UNetGenerator)
                up.append(nn.Tanh())
        else:
            up.append(norm_layer(norm, outer))
            if dropout > 0:
                up.append(nn.Dropout(dropout))
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(x)  # (B, inner, s/2, s/2)
        if self.inner is not None:
            h = self.inner(h)  # (B, 2*inner or inner, s/2, s/2)
        y = self.up(h)  # (B, outer, s, s)
        return torch.cat([x, y], dim=1) if self.skip else y  # (B, 2*outer, s, s) with a skip


class UNetGenerator(nn.Module):
    """The pix2pix generator: ``depth`` nested :class:`UNetBlock` s, image in, image out (tanh, [-1, 1]).

    For ``unet_256`` (depth 8, ngf 64) on a 256x256 photo the sides and channels are::

        level  down: side  channels                   up: side  channels in -> out
          0      256->128      3 -> 64      ... tanh ◄──  128->256     128 -> 3
          1      128->64      64 -> 128                   64->128      256 -> 64
          2       64->32     128 -> 256                   32->64       512 -> 128
          3       32->16     256 -> 512                   16->32      1024 -> 256
          4       16->8      512 -> 512                    8->16      1024 -> 512  (dropout)
          5        8->4      512 -> 512                    4->8       1024 -> 512  (dropout)
          6        4->2      512 -> 512                    2->4       1024 -> 512  (dropout)
          7        2->1      512 -> 512   (bottleneck)     1->2        512 -> 512

    Any height and width work: the photo is padded (reflect) to a multiple of ``2**depth`` and the
    output is cropped back to the input's size.
    """

    def __init__(self, config: Optional[UNetConfig] = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else UNetConfig()
        block: Optional[UNetBlock] = None
        for level in reversed(range(cfg.depth)):
            outermost = level == 0
            # dropout in the n_dropout decoder blocks just above the innermost (never the outermost)
            uses_dropout = 1 <= cfg.depth - 1 - level <= cfg.n_dropout and not outermost
            block = UNetBlock(
                outer=cfg.out_channels if outermost else cfg.channels(level - 1),
                inner=cfg.channels(level),
                submodule=block,
                outermost=outermost,
                in_channels=cfg.in_channels if outermost else None,
                norm=cfg.norm,
                dropout=cfg.dropout if uses_dropout else 0.0,
                skip=cfg.skip,
                gemm_upsampling=cfg.gemm_upsampling,
                upsample=cfg.upsample,
                residual=cfg.residual,
            )
        assert block is not None
        self.unet = block
        self.working_side: Optional[int] = None  # the side it corrects photos at best, when known
        init_weights(self)

    def blocks(self) -> list[UNetBlock]:
        """The nested blocks from the outermost (level 0) to the innermost (the bottleneck)."""
        out: list[UNetBlock] = []
        block: Optional[UNetBlock] = self.unet
        while block is not None:
            out.append(block)
            block = block.inner
        return out

    @property
    def multiple(self) -> int:
        """Height and width are padded to a multiple of this (2**depth) before the network runs."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"UNetGenerator expects a (B, {self.config.in_channels}, H, W) tensor, got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]  # padded to multiples of 2**depth inside, cropped back after
        y = crop_center(self.unet(pad_to_multiple(x, self.multiple)), height, width)  # (B, C_out, H, W)
        if self.config.residual:  # y is a change of the tanh's input; atanh of ±1 is kept finite
            return torch.tanh(torch.atanh(x.clamp(-1.0, 1.0) * RESIDUAL_SHRINK) + y)
        return y  # in [-1, 1] (tanh)


def _split(total: int) -> tuple[int, int]:
    return total // 2, total - total // 2


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two dims of ``x`` to multiples of ``multiple``, evenly on both sides.

    Reflect padding avoids a hard black border; PyTorch's reflect needs each pad to be smaller than the
    side it mirrors, so tiny images fall back to replicating the edge pixels.
    """
    height, width = x.shape[-2:]
    top, bottom = _split(-height % multiple)
    left, right = _split(-width % multiple)
    if top == bottom == left == right == 0:
        return x
    mode = "reflect" if max(top, bottom) < height and max(left, right) < width else "replicate"
    return F.pad(x, (left, right, top, bottom), mode=mode)


def crop_center(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the ``height`` x ``width`` window it padded around."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


__all__ = ["RESIDUAL_SHRINK", "UPSAMPLING", "UNetBlock", "UNetConfig", "UNetGenerator", "crop_center",
           "pad_to_multiple"]
