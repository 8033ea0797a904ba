"""``python -m expolib correct``: fix the exposure of photos and folders of photos, at full resolution."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from expolib.cli.errors import PARTIAL, UsageError, guarded, one_line, report
from expolib.cli.options import add_command, add_model_options
from expolib.evaluation.infer import correct
from expolib.imaging.imageio import DEFAULT_MAX_PIXELS
from expolib.networks.modelfile import load_model

SUMMARY = "correct the exposure of photos (files or folders) at full resolution"
DESCRIPTION = (
    "Correct photos with the shipped generator (or --weights) and write them, under the same names, "
    "into --out. Inputs are never overwritten; a photo that cannot be read is reported on stderr and "
    "skipped, and the exit status is then 1. A missing input, a folder without photos or unreadable "
    "weights stop the command with status 2."
)


def _collect(inputs: Sequence[str], recursive: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to the output folder) for every input.

    Folders are listed with :func:`expolib.data.photofiles.list_images`: image extensions only, hidden
    files (such as macOS's ``._IMG.jpg`` companions) skipped. A missing input, or a folder without
    photos, is a :class:`UsageError`: nothing has been written yet.
    """
    from expolib.data.photofiles import list_images

    found: list[tuple[Path, Path]] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files = list_images(path, recursive=recursive)
            if not files:
                hint = "" if recursive else " (try --recursive)"
                raise UsageError(str(path), f"no photos in this folder{hint}")
            found.extend((f, f.relative_to(path)) for f in files)
        elif path.exists():
            found.append((path, Path(path.name)))
        else:
            raise UsageError(str(path), "no such file or folder")
    return found


def _benchmark(args: argparse.Namespace) -> int:
    from expolib.benchmarks.fullres import benchmark_fullres

    benchmark_fullres(args.megapixels, weights=args.weights, working_side=args.working_side or 512,
                      out=lambda line: print(line, flush=True))
    return 0


@guarded
def _run_correct(args: argparse.Namespace) -> int:
    from expolib.imaging.imageio import load_image, save_image

    if args.benchmark:
        return _benchmark(args)
    if not args.inputs:
        raise UsageError("IN", "give at least one photo or folder (or --benchmark)")
    if args.out is None:
        raise UsageError("--out", "give the folder for the corrected photos")
    if args.max_pixels < 1:
        raise UsageError("--max-pixels", f"must be a positive number of pixels, got {args.max_pixels}")
    out_dir = Path(args.out)
    files = _collect(args.inputs, args.recursive)
    model = load_model(args.weights, device=args.device)
    inputs = {f.resolve() for f, _ in files}
    written: dict[Path, Path] = {}
    failed = 0
    for path, relative in files:
        target = out_dir / relative
        resolved = target.resolve()
        if resolved in inputs:
            report(str(path), f"skipped: the output {target} would overwrite an input; choose another --out")
            failed += 1
            continue
        if resolved in written:
            report(str(path), f"skipped: {written[resolved]} already writes {target}")
            failed += 1
            continue
        try:
            photo = load_image(path, max_pixels=args.max_pixels)
            fixed = correct(model, photo, mode=args.mode, working_side=args.working_side)
            save_image(fixed, target)
        except (ValueError, OSError, RuntimeError) as error:  # ImageLoadError is a ValueError
            reason = one_line(str(error))
            prefix = f"{path}: "
            if reason.startswith(prefix):  # load_image's messages already name the file
                reason = reason[len(prefix):]
            report(str(path), f"skipped: {reason}")
            failed += 1
            continue
        written[resolved] = path
        if not args.quiet:
            print(f"wrote {target}")
    return PARTIAL if failed else 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``python -m expolib correct``."""
    p = add_command(subparsers, "correct", SUMMARY, DESCRIPTION)
    p.add_argument("inputs", nargs="*", metavar="IN", help="photos or folders of photos")
    p.add_argument("--out", metavar="DIR", help="folder for the corrected photos")
    add_model_options(p)
    p.add_argument("--recursive", action="store_true", help="also correct photos in sub-folders")
    p.add_argument("--quiet", action="store_true", help="report only problems")
    p.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
        help=f"refuse photos with more pixels than this (default {DEFAULT_MAX_PIXELS:,}, Pillow's "
        "decompression-bomb limit)",
    )
    p.add_argument("--benchmark", action="store_true", help="time both modes on a synthetic photo instead")
    p.add_argument(
        "--megapixels", type=float, default=12.0, help="size of the --benchmark photo (default 12)"
    )
    p.set_defaults(func=_run_correct)


__all__ = ["add_cli"]
