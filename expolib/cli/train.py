"""``python -m expolib train``: the command line over :class:`expolib.training.trainer.Trainer`."""


from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import Dataset

from expolib.cli.errors import USAGE, UsageError, guarded, report_error
from expolib.cli.options import AUTO, add_command, optional_int, parse_switch
from expolib.config import get_budget
from expolib.networks.models import NORMS, UPSAMPLING
from expolib.training.checkpoint import CheckpointError
from expolib.training.config import CAMERAS, LR_POLICIES, TrainConfig
from expolib.training.distributed import leave
from expolib.training.losses import GAN_MODES
from expolib.training.pix2pix import TrainingDiverged
from expolib.training.trainer import Trainer

FULL_VALIDATE_MINUTES = 2.0  # `--budget full`: validate at an epoch's end at most this often
SUMMARY = "train the pix2pix GAN (embedded photos, MSEC or your own photos)"
DESCRIPTION = (
    "Train the U-Net generator and PatchGAN discriminator. Sizes and counts come from the budget "
    "(--budget or $EXPOLIB_BUDGET); every setting below overrides it. Writes last.pt, best.pt, "
    "history.jsonl and a validation grid per validation to --out. Run the same command under "
    "`torchrun --nproc_per_node N -m expolib train ...` for several GPUs or processes."
)


def _datasets(args: argparse.Namespace, config: TrainConfig) -> tuple[Dataset, Optional[Dataset]]:
    """The training (and validation) pairs the command line asks for; the embedded photos by default."""
    from expolib.data import filepairs
    from expolib.data import sources as data
    from expolib.imaging.camera import DEFAULT_FAMILY

    size = config.image_size
    # rendered sources: the camera family and rescaled crops when the configuration asks for them
    scale = (1.0, config.crop_scale) if config.crop_scale is not None else None
    render: dict[str, Any] = {"camera": DEFAULT_FAMILY if config.camera == "random" else None, "scale": scale}
    val_side = 2 * size if scale is not None else None  # validation crops at the training crops' scale
    # JPEGs decode on the GPU when training on one (a few CPU cores cannot decode fast enough)
    decode = args.decode or ("device" if config.device != "cpu" and torch.cuda.is_available() else "loader")
    if args.msec is not None:
        return (filepairs.MSECPairs(args.msec, split="train", size=size, augment=True, decode=decode),
                filepairs.MSECPairs(args.msec, split="val", size=size, augment=False))
    if args.photos is not None:
        return data.PhotoFolderPairs(args.photos, size=size, augment=True, seed=config.seed, **render), None
    if args.pairs is not None:
        inputs, targets = args.pairs
        files = [p for d in (inputs, targets) if Path(d).is_dir() for p in Path(d).iterdir()
                 if p.is_file() and not p.name.startswith(".")]
        all_jpeg = all(p.suffix.lower() in (".jpg", ".jpeg") for p in files)
        return filepairs.PairFolder(inputs, targets, size=size, augment=True, seed=config.seed,
                                    decode=decode if all_jpeg or args.decode else "loader"), None
    return (data.EmbeddedPairs("train", size=size, augment=True, seed=config.seed, **render),
            data.EmbeddedPairs("val", size=size, augment=False, crops_per_photo=2, seed=config.seed,
                               max_side=val_side))


_HELP = {
    "epochs": "passes over the training set", "batch_size": "pairs per step (per process)",
    "image_size": "side of the square training crops", "lr": "Adam learning rate (pix2pix: 2e-4)",
    "lambda_l1": "weight of the L1 term in G's loss (pix2pix: 100)",
    "gan_mode": "adversarial loss: vanilla (BCE on logits) or lsgan (least squares)",
    "ngf": "generator base width", "ndf": "discriminator base width", "depth": "U-Net levels",
    "n_layers": "PatchGAN strided layers (3: 70x70 patches)", "norm": "normalisation layers",
    "lr_policy": "linear: constant, then linear decay to 0; constant: never changes",
    "decay_epochs": "epochs of linear decay at the end (default: half)",
    "steps_per_epoch": "cap on steps per epoch ('all' for the whole set)",
    "val_batches": "cap on validation batches per epoch ('all' for every one)",
    "checkpoint_every": "also save last.pt every N steps (0: not by steps)",
    "checkpoint_minutes": "also save last.pt when this many minutes passed since the last save "
                          "(0: only at the end, on Ctrl-C/SIGTERM and on errors)",
    "validate_every": "validate at an epoch's end only after at least N steps since the last validation "
                      "('all' or default: every epoch); the last epoch always validates",
    "validate_minutes": "... and only when this many minutes passed since the last validation (default 0; "
                        f"{FULL_VALIDATE_MINUTES:g} with --budget full)",
    "seed": "random seed (initialisation, data order, augmentation, dropout)",
    "device": "cuda, cuda:N, mps or cpu (default: the best available)",
    "amp": "mixed precision: on, off or auto (auto: on for CUDA and for CPUs with native bf16)",
    "channels_last": "channels-last memory format: on, off or auto (auto: on for CUDA)",
    "gemm_convolutions": "compute small transposed convolutions as matrix products: on, off or auto "
                         "(auto: on for the CPU, where it is faster)",
    "compile": "compile the networks with torch.compile", "num_workers": "DataLoader worker processes",
    "progress": "show a progress bar",
    "upsample": "decoder blocks: transpose (pix2pix) or bilinear (upsample + 3x3 conv, no checkerboard)",
    "residual": "on: the generator predicts a change to its input, so a good photo passes through",
    "camera": "rendered sources: plain (the book's camera at the MSEC levels) or random (a camera family, "
              "noise, JPEG, continuous EVs)",
    "crop_scale": "shrink each photo so its short side is image_size * U[1, X] before cropping "
                  "(crops show most of the scene; default: crop the photo as it is)",
}


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``python -m expolib train``."""
    parser = add_command(subparsers, "train", SUMMARY, DESCRIPTION)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--msec", metavar="DIR",
                        help="train on the MSEC dataset in DIR (its validation split validates)")
    source.add_argument("--photos", metavar="DIR",
                        help="train on pairs rendered from your well-exposed photos in DIR")
    source.add_argument("--pairs", nargs=2, metavar=("INPUT_DIR", "TARGET_DIR"),
                        help="train on ready-made pairs matched by file name")
    parser.add_argument("--budget", choices=["quick", "standard", "full"], default=None,
                        help="sizes and counts to start from (default: $EXPOLIB_BUDGET or standard)")
    parser.add_argument("--out", metavar="DIR", default=None, help="output folder (default: runs/pix2pix)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue from DIR/last.pt (or from CHECKPOINT) if it exists")
    parser.add_argument("--export", metavar="PATH", default=None,
                        help="after training, save the generator to PATH (safetensors) for `expolib correct`")
    parser.add_argument("--export-half", action="store_true",
                        help="store the exported generator's weights as float16 (half the file size)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop (with a checkpoint) after N steps")
    parser.add_argument("--decode", choices=("loader", "device"), default=None,
                        help="--msec/--pairs JPEGs: decode in the DataLoader (Pillow), or on the training "
                             "device in batches (default: device when training on CUDA)")
    settings = parser.add_argument_group("training settings (default: from the budget, else pix2pix's)")
    skip = {"out_dir"}
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": None, "help": _HELP.get(f.name, f.name)}
        if f.name == "betas":
            settings.add_argument(flag, type=float, nargs=2, metavar=("BETA1", "BETA2"),
                                  help="Adam betas (pix2pix: 0.5 0.999)", default=None)
            continue
        if f.name in ("amp", "channels_last", "gemm_convolutions"):
            kwargs.update(type=parse_switch, metavar="on|off|auto")
        elif f.name in ("compile", "progress"):
            kwargs.update(type=parse_switch, metavar="on|off")
        elif f.name in ("steps_per_epoch", "val_batches", "decay_epochs", "validate_every"):
            kwargs.update(type=optional_int, metavar="N")
        elif f.name == "gan_mode":
            kwargs.update(choices=GAN_MODES)
        elif f.name == "lr_policy":
            kwargs.update(choices=LR_POLICIES)
        elif f.name == "norm":
            kwargs.update(choices=NORMS)
        elif f.name in ("upsample", "camera"):
            kwargs.update(choices=UPSAMPLING if f.name == "upsample" else CAMERAS)
        elif f.name == "residual":
            kwargs.update(type=parse_switch, metavar="on|off")
        elif f.name == "crop_scale":
            kwargs.update(type=float, metavar="X")
        elif f.type in ("int", int):
            kwargs.update(type=int)
        elif f.type in ("float", float):
            kwargs.update(type=float)
        settings.add_argument(flag, **kwargs)
    parser.set_defaults(func=_run_cli)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the command line describes: the budget's, then every option given."""
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if f.name != "out_dir" and getattr(args, f.name, None) is not None}
    overrides = {name: (None if value is AUTO else value) for name, value in overrides.items()}
    if args.out is not None:
        overrides["out_dir"] = args.out
    budget = get_budget(args.budget)
    if budget.name == "full":  # a long run: validation at most every 2 minutes unless asked otherwise
        overrides.setdefault("validate_minutes", FULL_VALIDATE_MINUTES)
    return TrainConfig.from_budget(budget, **overrides)


def _check_export_path(path: Path) -> None:
    """Refuse an export path that cannot take the generator file: a folder, or a missing or read-only
    parent folder."""
    if path.is_dir():
        example = path / "generator.safetensors"
        raise UsageError("--export", f"{path} is a folder; give a file name such as {example}")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UsageError("--export", f"{parent} is not a folder")
    if parent.is_dir() and not os.access(parent, os.W_OK):
        raise UsageError("--export", f"cannot write into {parent}")


@guarded
def _run_cli(args: argparse.Namespace) -> int:
    if args.export_half and not args.export:
        raise UsageError("--export-half", "needs --export PATH")
    if args.export:
        _check_export_path(Path(args.export))  # before hours of training, not after
    config = config_from_args(args)  # bad settings, a missing folder, a dataset laid out wrongly: exit 2
    train_set, val_set = _datasets(args, config)
    trainer = Trainer(config, train_set, val_set)
    main = trainer.process.main
    if main:
        print(f"training on {trainer.device} ({trainer.process.world_size} process(es)): "
              f"{len(train_set)} training pairs, {trainer.steps_per_epoch} steps per epoch, "
              f"output in {config.out_dir}", file=sys.stderr)
    status = 0
    try:
        trainer.fit(resume=args.resume, max_steps=args.max_steps)
        if args.export and main:
            path = trainer.export_generator(args.export, half=args.export_half)
            print(f"generator saved to {path}" + (" (float16)" if args.export_half else ""), file=sys.stderr)
    except KeyboardInterrupt:
        status = 130
    except TrainingDiverged as error:
        report_error(error)
        status = 1
    except (ValueError, OSError, CheckpointError) as error:
        # a photo that cannot be read (ImageLoadError), a dataset laid out wrongly (DatasetLayoutError),
        # a missing or unwritable file, a checkpoint that does not fit: the reader's to fix, no traceback
        report_error(error)
        status = USAGE
    finally:
        leave()
    return status


__all__ = ["add_cli", "config_from_args"]
