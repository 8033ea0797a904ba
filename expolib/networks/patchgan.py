"""The pix2pix discriminator: a conditional PatchGAN, one logit per overlapping patch of a pair.

Isola et al. (2017) and their reference implementation's ``basic`` 70x70 PatchGAN:
:class:`PatchConfig` is its shape, :class:`PatchDiscriminator` a plain stack of strided convolutions.
:func:`receptive_field` computes the side of a patch from the layers of any stack (the book uses it
on the U-Net's layers too). Build it through :func:`expolib.networks.factory.build_discriminator`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import nn

from expolib.networks.layers import check_norm, init_weights, norm_layer


@dataclass
class PatchConfig:
    """Shape of the PatchGAN discriminator. The defaults are pix2pix's ``basic`` 70x70 PatchGAN.

    ``in_channels`` counts one image; the discriminator sees the condition and the candidate stacked,
    so its first convolution reads ``2 * in_channels``.
    """

    in_channels: int = 3
    ndf: int = 64
    n_layers: int = 3
    norm: str = "batch"
    max_mult: int = 8

    def __post_init__(self) -> None:
        if self.n_layers < 1:
            raise ValueError(f"PatchConfig.n_layers must be at least 1, got {self.n_layers}")
        if min(self.in_channels, self.ndf, self.max_mult) < 1:
            raise ValueError("PatchConfig in_channels, ndf and max_mult must be positive")
        check_norm(self.norm)


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: one raw logit (no sigmoid) per overlapping patch of the pair.

    With ``n_layers = 3`` and ``ndf = 64`` on a 256x256 pair::

        cat(condition, candidate)   (B, 6, 256, 256)
        Conv 4x4/2, LeakyReLU       (B, 64, 128, 128)
        Conv 4x4/2, Norm, LReLU     (B, 128, 64, 64)
        Conv 4x4/2, Norm, LReLU     (B, 256, 32, 32)
        Conv 4x4/1, Norm, LReLU     (B, 512, 31, 31)
        Conv 4x4/1                  (B, 1, 30, 30)     each logit sees a 70x70 patch

    Being fully convolutional it takes any size: a larger pair gives a larger map of patches.
    """

    def __init__(self, config: Optional[PatchConfig] = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else PatchConfig()

        def width(i: int) -> int:
            return cfg.ndf * min(2**i, cfg.max_mult)

        layers: list[nn.Module] = [
            nn.Conv2d(2 * cfg.in_channels, width(0), kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        for i in range(1, cfg.n_layers + 1):
            stride = 2 if i < cfg.n_layers else 1  # the last of these keeps the side (minus one)
            layers += [
                nn.Conv2d(width(i - 1), width(i), kernel_size=4, stride=stride, padding=1, bias=False),
                norm_layer(cfg.norm, width(i)),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(width(cfg.n_layers), 1, kernel_size=4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, condition: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        if condition.shape != candidate.shape:
            raise ValueError(
                f"condition and candidate must have the same shape, got {tuple(condition.shape)} "
                f"and {tuple(candidate.shape)}"
            )
        pair = torch.cat([condition, candidate], dim=1)  # (B, 2*C, H, W)
        return self.layers(pair)  # (B, 1, h, w): one logit per patch


_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(value: Union[int, tuple[int, ...]]) -> int:
    """The vertical component of a PyTorch int-or-tuple argument; square windows are checked."""
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise ValueError(f"receptive_field handles square windows only, got {value}")
        return int(value[0])
    return int(value)


def receptive_field(layers: Union[nn.Module, Iterable[nn.Module]]) -> int:
    """Side, in input pixels, of the window that one output value of a stack of layers depends on.

    ``layers`` is a module (its convolutions and pooling layers are taken in registration order, which
    is the forward order for an ``nn.Sequential``) or a list of modules. Walking from the input, each
    layer widens the field by ``(kernel - 1) * dilation`` steps of the current jump (the distance, in
    input pixels, between neighbouring values of its input), and multiplies the jump by its stride.
    Activations and norms act pixel by pixel and change nothing.
    """
    modules = [layers] if isinstance(layers, nn.Module) else list(layers)
    field, jump = 1, 1
    for module in modules:
        for m in module.modules():
            if not isinstance(m, _WINDOWED):
                continue
            kernel = _pair(m.kernel_size)
            stride = _pair(m.stride if m.stride is not None else m.kernel_size)
            dilation = _pair(getattr(m, "dilation", 1))
            field += (kernel - 1) * dilation * jump
            jump *= stride
    return field


__all__ = ["PatchConfig", "PatchDiscriminator", "receptive_field"]
