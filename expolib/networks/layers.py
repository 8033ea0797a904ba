"""The pieces both networks are made of, and the tools that inspect them.

- :func:`norm_layer` (BatchNorm or InstanceNorm, :data:`NORMS`) and :func:`init_weights` (pix2pix's
  N(0, 0.02) start) are shared by the U-Net and the PatchGAN; :func:`count_parameters` counts what
  either of them learns.
- :class:`GemmConvTranspose2d` is a faster route through the transposed convolution on the CPU, for
  the U-Net's small inner maps: an ``nn.ConvTranspose2d`` with the same parameters and results that
  computes tiny maps as one matrix product and a ``fold``. The generator uses it when
  ``UNetConfig.gemm_upsampling`` is set (the trainer sets it on the CPU, see
  :func:`expolib.config.decide_runtime`); :func:`use_gemm_transposed_convolutions` converts
  the layers of any existing module.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "instance")


def check_norm(kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`NORMS`."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; use one of {NORMS}")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation after a convolution: BatchNorm (pix2pix's default) or InstanceNorm."""
    check_norm(kind)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    # affine=True so that both norms carry a learnable scale and shift (and the convs before them can
    # drop their bias the same way); pix2pix uses affine=False and keeps the bias instead.
    return nn.InstanceNorm2d(channels, affine=True)


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix/DCGAN initialisation: conv weights ~ N(0, std), norm scales ~ N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine:
            nn.init.normal_(m.weight, mean=1.0, std=std)
            nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module) -> int:
    """Number of learnable values (weights, biases, norm scales and shifts) in ``module``."""
    return sum(p.numel() for p in module.parameters())



class GemmConvTranspose2d(nn.ConvTranspose2d):
    """A ``ConvTranspose2d`` that computes small inputs on the CPU as one matrix product and a col2im.

    The same operation, written differently: every input pixel scatters ``weight[c_in]`` (a
    ``c_out x k x k`` stamp) into the output, so the stamps of all pixels are one matrix product,
    ``(c_out k k, c_in) @ (c_in, h w)``, and ``F.fold`` adds the overlapping stamps into place. PyTorch's
    CPU kernel (oneDNN) is slow when the map is tiny and the weights are large, which is the U-Net's
    inner levels: 1x1 to 8x8 maps with 1024 x 512 x 4 x 4 weights. There the matrix product is limited
    only by reading the weights once. Autograd differentiates it. Larger maps, other devices and
    unusual settings (groups, dilation, output padding) use the parent class.
    """

    max_pixels: int = 64  # h * w of the input up to which the matrix product is used

    def forward(self, x: torch.Tensor, output_size: Optional[list[int]] = None) -> torch.Tensor:
        plain = (self.groups == 1 and self.dilation == (1, 1) and self.output_padding == (0, 0)
                 and self.padding_mode == "zeros")
        small = x.dim() == 4 and x.shape[-2] * x.shape[-1] <= self.max_pixels
        if not (plain and small and x.device.type == "cpu" and output_size is None):
            return super().forward(x, output_size)
        b, c_in, h, w = x.shape  # (B, c_in, h, w)
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        stamps = self.weight.reshape(c_in, -1).t()  # (c_out kh kw, c_in)
        cols = torch.matmul(stamps, x.reshape(b, c_in, h * w))  # (B, c_out kh kw, h w)
        size = ((h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        y = F.fold(cols, size, kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw))  # (B, c_out, H, W)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def use_gemm_transposed_convolutions(module: nn.Module) -> int:
    """Turn every plain ``ConvTranspose2d`` inside ``module`` into a :class:`GemmConvTranspose2d` (same
    parameters, same ``state_dict``, same results up to float rounding). Returns how many."""
    count = 0
    for m in module.modules():
        if type(m) is nn.ConvTranspose2d:
            m.__class__ = GemmConvTranspose2d  # a subclass with only a new forward: the module is kept
            count += 1
    return count


__all__ = ["NORMS", "GemmConvTranspose2d", "check_norm", "count_parameters", "init_weights", "norm_layer",
           "use_gemm_transposed_convolutions"]
