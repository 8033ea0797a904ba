"""``python -m expolib train``: the command line over :class:`expolib.training.trainer.Trainer`."""


from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from expolib.cli.errors import USAGE, UsageError, guarded, report_error
from expolib.cli.options import AUTO, add_command, optional_int, parse_switch
from expolib.config import get_budget
from expolib.networks.layers import NORMS
from expolib.networks.modelfile import save_generator
from expolib.networks.unet import UPSAMPLING
from expolib.training.checkpoint import CheckpointError
from expolib.training.config import CAMERAS, LR_POLICIES, NETWORK_SETTINGS, TrainConfig, with_network_settings
from expolib.training.datasets import Source, training_sets
from expolib.training.distributed import leave
from expolib.training.losses import GAN_MODES
from expolib.training.pix2pix import TrainingDiverged, prepare_pix2pix
from expolib.training.trainer import Trainer

NESTED = ("generator", "discriminator")  # TrainConfig fields the network options (NETWORK_SETTINGS) fill

FULL_VALIDATE_MINUTES = 2.0  # `--budget full`: validate at an epoch's end at most this often
SUMMARY = "train the pix2pix GAN (embedded photos, MSEC or your own photos)"
DESCRIPTION = (
    "Train the U-Net generator and PatchGAN discriminator. Sizes and counts come from the budget "
    "(--budget or $EXPOLIB_BUDGET); every setting below overrides it. Writes last.pt, best.pt, "
    "history.jsonl and a validation grid per validation to --out. Run the same command under "
    "`torchrun --nproc_per_node N -m expolib train ...` for several GPUs or processes."
)


def _source(args: argparse.Namespace) -> Source:
    """The source the command line names; the embedded photos by default."""
    if args.msec is not None:
        return Source.msec(args.msec, args.decode)
    if args.photos is not None:
        return Source.photos(args.photos)
    if args.pairs is not None:
        return Source.pairs(*args.pairs, decode=args.decode)
    return Source()


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
    for f in fields(TrainConfig):  # the network options where the networks' configurations are
        skipped = f.name in (*NESTED, "out_dir")
        for name in NETWORK_SETTINGS if f.name == "generator" else () if skipped else (f.name,):
            _add_setting(settings, name)
    parser.set_defaults(func=_run_cli)


def _add_setting(settings: argparse._ArgumentGroup, name: str) -> None:
    """The option of one TrainConfig field, or of one network setting (:data:`NETWORK_SETTINGS`)."""
    f = next((f for f in fields(TrainConfig) if f.name == name), None)
    kind = f.type if f is not None else None
    flag = "--" + name.replace("_", "-")
    kwargs: dict[str, Any] = {"default": None, "help": _HELP.get(name, name)}
    if name == "betas":
        settings.add_argument(flag, type=float, nargs=2, metavar=("BETA1", "BETA2"),
                              help="Adam betas (pix2pix: 0.5 0.999)", default=None)
        return
    if name in ("amp", "channels_last", "gemm_convolutions"):
        kwargs.update(type=parse_switch, metavar="on|off|auto")
    elif name in ("compile", "progress", "residual"):
        kwargs.update(type=parse_switch, metavar="on|off")
    elif name in ("steps_per_epoch", "val_batches", "decay_epochs", "validate_every"):
        kwargs.update(type=optional_int, metavar="N")
    elif name in ("gan_mode", "lr_policy", "norm", "upsample", "camera"):
        kwargs.update(choices={"gan_mode": GAN_MODES, "lr_policy": LR_POLICIES, "norm": NORMS,
                               "upsample": UPSAMPLING, "camera": CAMERAS}[name])
    elif name == "crop_scale":
        kwargs.update(type=float, metavar="X")
    elif name in ("ngf", "ndf", "depth", "n_layers") or kind in ("int", int):
        kwargs.update(type=int)
    elif kind in ("float", float):
        kwargs.update(type=float)
    settings.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the command line describes: the budget's, then every option given (the
    network options into the nested network configurations)."""
    names = [f.name for f in fields(TrainConfig) if f.name not in ("out_dir", *NESTED)]
    names += list(NETWORK_SETTINGS)
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    given = {name: (None if value is AUTO else value) for name, value in given.items()}
    networks = {name: given.pop(name) for name in NETWORK_SETTINGS if name in given}
    if args.out is not None:
        given["out_dir"] = args.out
    budget = get_budget(args.budget)
    if budget.name == "full":  # a long run: validation at most every 2 minutes unless asked otherwise
        given.setdefault("validate_minutes", FULL_VALIDATE_MINUTES)
    config = TrainConfig.from_budget(budget, **given)
    return with_network_settings(config, **{k: v for k, v in networks.items() if v is not None})


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
    runtime = config.runtime()  # how this run computes, decided once
    train_set, val_set = training_sets(config, _source(args), runtime.device)
    model = prepare_pix2pix(config, runtime)
    trainer = Trainer(config, model, train_set, val_set)
    main = trainer.process.main
    if main:
        print(f"training on {runtime.device} ({trainer.process.world_size} process(es)): "
              f"{len(train_set)} training pairs, {trainer.steps_per_epoch} steps per epoch, "
              f"output in {config.out_dir}", file=sys.stderr)
    status = 0
    try:
        trainer.fit(resume=args.resume, max_steps=args.max_steps)
        if args.export and main:
            path = save_generator(model.generator, args.export, half=args.export_half)
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
