"""A trained generator in one file: safetensors weights with its configuration in the metadata.

:func:`save_generator` writes what :func:`load_generator` needs to rebuild the network (its
:class:`~expolib.networks.models.UNetConfig`, and the side it corrects photos at best); :class:`ModelFileError`
names a file that is not such a generator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from expolib.networks.models import UNetConfig, UNetGenerator

FILE_FORMAT = "expolib.UNetGenerator"  # the marker save_generator writes into the file's metadata


class ModelFileError(ValueError):
    """A generator file that exists but cannot be read as an expolib generator."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` or (Distributed)DataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def save_generator(model: nn.Module, path: Union[str, Path], *, half: bool = False,
                   working_side: Optional[int] = None) -> Path:
    """Write the generator's weights and buffers to a safetensors file, its UNetConfig in the metadata,
    and the side that ``expolib.evaluation.infer.correct`` should run it at (``working_side``, else the model's).

    ``half=True`` stores floating-point tensors as float16, half the size (how the shipped weights are
    kept small); :func:`load_generator` casts them back to the model's float32. A tensor that float16
    cannot hold (beyond its range of 65504) is an error rather than a silent infinity.
    """
    from safetensors.torch import save_file

    net = _unwrap(model)
    if not isinstance(net, UNetGenerator):
        raise TypeError(f"save_generator expects a UNetGenerator, got {type(net).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    if half:
        for name, t in tensors.items():
            if t.is_floating_point():
                if t.abs().max() > torch.finfo(torch.float16).max:
                    raise ValueError(f"{name} has values beyond float16's range; save with half=False")
                tensors[name] = t.half()
    config = asdict(net.config)
    config.pop("gemm_upsampling")  # how it computes, not what it is: the file stays the same either way
    metadata = {"format": FILE_FORMAT, "config": json.dumps(config)}
    side = working_side if working_side is not None else net.working_side
    if side is not None:
        metadata["working_side"] = str(int(side))
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_generator(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> UNetGenerator:
    """Rebuild a generator saved by :func:`save_generator`, on ``device`` and in eval mode.

    A missing file raises ``FileNotFoundError``; a file that is not a safetensors file, or not one
    written by :func:`save_generator`, or whose weights do not fit its configuration raises
    :class:`ModelFileError`; every message names the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such generator file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{path} is not a readable safetensors file: {error}") from error
    if metadata.get("format") != FILE_FORMAT or "config" not in metadata:
        raise ModelFileError(
            f"{path} is a safetensors file but not an expolib generator (no {FILE_FORMAT!r} metadata); "
            "write it with expolib.networks.modelfile.save_generator"
        )
    try:
        values = json.loads(metadata["config"])
        known = {f.name for f in fields(UNetConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown UNetConfig fields {unknown}")
        config = UNetConfig(**values)
    except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        raise ModelFileError(f"{path} has an invalid generator configuration: {error}") from error
    model = UNetGenerator(config)
    try:
        model.load_state_dict(state, strict=True)
        model.working_side = int(metadata["working_side"]) if "working_side" in metadata else None
    except (RuntimeError, ValueError) as error:
        raise ModelFileError(f"{path}: the weights do not match the saved configuration: {error}") from error
    return model.to(device).eval()


__all__ = ["FILE_FORMAT", "ModelFileError", "load_generator", "save_generator"]
