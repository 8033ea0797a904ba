"""A generator on disk: the one place that saves, loads, exports and picks the generator that runs.

- The file: :func:`save_generator` writes a safetensors file with the generator's architecture and
  config in its metadata, and the side it corrects photos at best; :func:`load_generator` rebuilds it
  through :func:`expolib.networks.factory.build_generator`. :class:`ModelFileError` names a file that
  is not such a generator.
- A training checkpoint: :func:`generator_checkpoint` is what ``best.pt`` holds (and the generator's
  part of ``last.pt``); :func:`generator_from_checkpoint` reads the generator back from either, older
  checkpoints included; :func:`export_checkpoint` turns one into a file for ``correct --weights``.
- Which one runs: :data:`PRETRAINED_PATH` is the generator that ships with expolib (trained in the
  book's standard configuration; its recipe and scores are in ``MODEL_CARD.md`` next to it), and
  :func:`load_model` is the one rule that ``correct``, ``evaluate`` and the benchmarks follow: the
  file named, else the shipped one, never an untrained network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from expolib.files import atomic_write
from expolib.networks.factory import (
    DEFAULT_GENERATOR,
    GENERATORS,
    build_generator,
    config_to_dict,
    generator_architecture,
    generator_config_from_dict,
)

PathLike = Union[str, os.PathLike]
FILE_FORMAT = "expolib.generator.safetensors/1"  # the marker save_generator writes into the metadata
LEGACY_FILE_FORMAT = "expolib.UNetGenerator"  # files written before the architecture was recorded: a U-Net
GENERATOR_FORMAT = "expolib.generator/1"  # best.pt: a generator checkpoint without optimiser state
# how checkpoints written before "generator_config" described the generator: flat fields of the run's config
LEGACY_CHECKPOINT_FIELDS = ("ngf", "depth", "norm", "upsample", "residual")

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
PRETRAINED_PATH = WEIGHTS_DIR / "generator_small.safetensors"
"""Where the shipped generator's weights live (a safetensors file written by :func:`save_generator`)."""
MODEL_CARD_PATH = WEIGHTS_DIR / "MODEL_CARD.md"


class ModelFileError(ValueError):
    """A generator file or checkpoint that exists but cannot be read as an expolib generator."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` or (Distributed)DataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


# ----------------------------------------------------------------------------------------------------
# The file


def save_generator(model: nn.Module, path: PathLike, *, half: bool = False,
                   working_side: Optional[int] = None) -> Path:
    """Write the generator's weights and buffers to a safetensors file, its architecture and config in
    the metadata, and the side that ``expolib.evaluation.infer.correct`` should run it at
    (``working_side``, else the model's own).

    ``half=True`` stores floating-point tensors as float16, half the size (how the shipped weights are
    kept small); :func:`load_generator` casts them back to the model's float32. A tensor that float16
    cannot hold (beyond its range of 65504) is an error rather than a silent infinity.
    """
    from safetensors.torch import save_file

    net = _unwrap(model)
    config = getattr(net, "config", None)
    if not any(type(net) is a.network for a in GENERATORS.values()) or config is None:
        known = ", ".join(getattr(a.network, "__name__", a.name) for a in GENERATORS.values())
        raise TypeError(f"save_generator expects a generator the factory builds ({known}), "
                        f"got {type(net).__name__}")
    path = Path(path)
    tensors = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    if half:
        for name, t in tensors.items():
            if t.is_floating_point():
                if t.abs().max() > torch.finfo(torch.float16).max:
                    raise ValueError(f"{name} has values beyond float16's range; save with half=False")
                tensors[name] = t.half()
    metadata = {"format": FILE_FORMAT, "architecture": generator_architecture(config),
                "config": json.dumps(config_to_dict(config))}
    side = working_side if working_side is not None else getattr(net, "working_side", None)
    if side is not None:
        metadata["working_side"] = str(int(side))
    with atomic_write(path, "generator file") as tmp:  # a full disk leaves the previous file whole
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _build(values: dict[str, Any], architecture: str, state: dict[str, torch.Tensor],
           working_side: Optional[int], source: str) -> nn.Module:
    """The generator of a saved config and state, in eval mode; errors name ``source``."""
    try:
        config = generator_config_from_dict(values, architecture)
    except (ValueError, TypeError) as error:
        raise ModelFileError(f"{source} has an invalid generator configuration: {error}") from error
    model = build_generator(config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as error:
        raise ModelFileError(f"{source}: the weights do not match the saved configuration: "
                             f"{error}") from error
    model.working_side = None if working_side is None else int(working_side)
    return model.eval()


def load_generator(path: PathLike, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Rebuild a generator saved by :func:`save_generator`, on ``device`` and in eval mode.

    A missing file raises ``FileNotFoundError``; a file that is not a safetensors file, or not one
    written by :func:`save_generator`, or whose weights do not fit its configuration raises
    :class:`ModelFileError`; every message names the file.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such generator file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{path} is not a readable safetensors file: {error}") from error
    if metadata.get("format") not in (FILE_FORMAT, LEGACY_FILE_FORMAT) or "config" not in metadata:
        raise ModelFileError(
            f"{path} is a safetensors file but not an expolib generator (no {FILE_FORMAT!r} metadata); "
            "write it with expolib.networks.modelfile.save_generator"
        )
    try:
        values = json.loads(metadata["config"])
        side = int(metadata["working_side"]) if "working_side" in metadata else None
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise ModelFileError(f"{path} has an invalid generator configuration: {error}") from error
    if not isinstance(values, dict):
        raise ModelFileError(f"{path} has an invalid generator configuration: not a JSON object")
    architecture = metadata.get("architecture", DEFAULT_GENERATOR)
    return _build(values, architecture, state, side, str(path)).to(device)


# ----------------------------------------------------------------------------------------------------
# Training checkpoints


def working_side_for(image_size: int, crop_scale: Optional[float]) -> Optional[int]:
    """The side a photo's long edge is shrunk to for correction, from how a run cropped: crops of
    photos whose short side was ``image_size x [1, crop_scale]`` (a 4:3 photo with its long side at
    ``image_size x crop_scale`` has its short side inside that range); None without ``crop_scale``."""
    return round(image_size * crop_scale) if crop_scale is not None else None


def generator_checkpoint(generator: nn.Module, generator_config: Optional[Any] = None, *,
                         working_side: Optional[int], **extra: Any) -> dict[str, Any]:
    """A checkpoint dict holding a generator: ``"generator"`` (its state dict), ``"generator_config"``
    (its config as plain values), ``"generator_architecture"`` and ``"working_side"``, plus ``extra``
    (the run's ``config``, where it stood, its score...). ``"format"`` is :data:`GENERATOR_FORMAT`
    (``best.pt``: no optimiser state) unless ``extra`` gives another. ``generator_config`` defaults to
    the generator's own."""
    net = _unwrap(generator)
    config = generator_config if generator_config is not None else net.config
    return {"format": GENERATOR_FORMAT, "generator": net.state_dict(),
            "generator_architecture": generator_architecture(config),
            "generator_config": config_to_dict(config),
            "working_side": None if working_side is None else int(working_side), **extra}


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # zip, pickle and EOF errors all mean the same thing here
        raise ModelFileError(f"{path} is not a readable expolib checkpoint: "
                             f"{(str(error) or type(error).__name__).splitlines()[0]}") from error
    if not isinstance(state, dict):
        raise ModelFileError(f"{path} is not an expolib checkpoint")
    return state


def generator_from_checkpoint(checkpoint: Union[dict[str, Any], PathLike]) -> nn.Module:
    """The generator (eval mode, on the CPU, ``working_side`` set) of a checkpoint: a run's ``best.pt``
    or ``last.pt``, given as its path or as the dict it holds.

    Checkpoints written before ``"generator_config"`` existed are read from the flat fields of their
    run's ``"config"`` (:data:`LEGACY_CHECKPOINT_FIELDS`, a U-Net) and their working side from its
    ``image_size`` and ``crop_scale``. A missing file is ``FileNotFoundError``; anything else that is
    not such a checkpoint is :class:`ModelFileError`, naming the file.
    """
    source = "checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
    state = checkpoint if isinstance(checkpoint, dict) else _read_checkpoint(Path(checkpoint))
    run = state.get("config")
    if "generator" not in state or not ("generator_config" in state or isinstance(run, dict)):
        raise ModelFileError(f"{source} is not an expolib checkpoint holding a generator")
    if "generator_config" in state:
        values = dict(state["generator_config"])
        architecture = state.get("generator_architecture", DEFAULT_GENERATOR)
        side = state.get("working_side")
    else:  # an older checkpoint: the generator's shape is in the run's flat settings
        values = {name: run[name] for name in LEGACY_CHECKPOINT_FIELDS if name in run}
        architecture = DEFAULT_GENERATOR
        side = working_side_for(run.get("image_size", 256), run.get("crop_scale"))
    return _build(values, architecture, state["generator"], side, source)


def export_checkpoint(checkpoint: Union[dict[str, Any], PathLike], out: PathLike, half: bool = False) -> Path:
    """Export the generator of a run's ``best.pt`` (or ``last.pt``) as a safetensors file that
    :func:`load_generator` and ``python -m expolib correct --weights`` load."""
    return save_generator(generator_from_checkpoint(checkpoint), out, half=half)


# ----------------------------------------------------------------------------------------------------
# Which generator runs


def pretrained_available() -> bool:
    """True when the shipped weights file is present."""
    return PRETRAINED_PATH.is_file()


def load_pretrained(device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Load the shipped generator on ``device``, in eval mode.

    Raises ``FileNotFoundError`` naming the expected file, and how to make one, when it is missing.
    """
    if not PRETRAINED_PATH.is_file():
        raise FileNotFoundError(
            f"{PRETRAINED_PATH}: the shipped generator weights are missing. Reinstall expolib, "
            "or train a generator (python -m expolib train) and pass its file with --weights / "
            "expolib.networks.modelfile.load_generator(path)"
        )
    return load_generator(PRETRAINED_PATH, device=device)


def load_model(weights: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """The generator to run, in eval mode on ``device``: the file ``weights`` (written by
    :func:`save_generator`) when given, else the shipped one.

    A missing file is ``FileNotFoundError`` and an unreadable one :class:`ModelFileError`, both naming
    the file; there is no fallback to an untrained network, whose output would look like a result.
    """
    if weights is not None:
        return load_generator(weights, device=device)
    return load_pretrained(device)


def model_source(weights: Optional[PathLike] = None) -> str:
    """How :func:`load_model` describes where its generator came from."""
    return str(weights) if weights is not None else "shipped weights"


__all__ = ["FILE_FORMAT", "GENERATOR_FORMAT", "LEGACY_CHECKPOINT_FIELDS", "LEGACY_FILE_FORMAT",
           "MODEL_CARD_PATH", "PRETRAINED_PATH", "WEIGHTS_DIR", "ModelFileError", "export_checkpoint",
           "generator_checkpoint", "generator_from_checkpoint", "load_generator", "load_model",
           "load_pretrained", "model_source", "pretrained_available", "save_generator", "working_side_for"]
