"""``python -m expolib correct``: fix the exposure of photos and folders of photos, at full resolution."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from expolib.cli.errors import PARTIAL, UsageError, guarded, one_line, report
from expolib.cli.options import add_command, add_model_options
from expolib.config import pick_device
from expolib.evaluation.infer import correct
from expolib.imaging.imageio import DEFAULT_MAX_PIXELS
from expolib.networks.modelfile import load_model

SUMMARY = "correct the exposure of photos (files or folders) at full resolution"
DESCRIPTION = (
    "Correct photos with the shipped generator (or --weights) and write them, under the same names, "
    "into --out. A photo whose output is already there, whole and newer than the photo, is kept as it "
    "is, so that a second run over a library continues where the first stopped (--redo corrects "
    "everything again: use it after changing the weights or the mode). Outputs are written whole or "
    "not at all, and inputs are never overwritten. A photo that cannot be read, or a broken link, is "
    "reported on stderr and skipped, and the exit status is then 1. A missing input, a folder without "
    "photos, unreadable weights or a full disk stop the command with status 2."
)


def _collect(inputs: Sequence[str], recursive: bool) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(file, path relative to the output folder) for every input, and the broken links found in
    the folders.

    Folders are listed with :func:`expolib.data.photofiles.list_images`: image extensions only, hidden
    files (such as macOS's ``._IMG.jpg`` companions) skipped. A missing input, or a folder without
    photos, is a :class:`UsageError`: nothing has been written yet.
    """
    from expolib.data.photofiles import broken_links, list_images

    found: list[tuple[Path, Path]] = []
    broken: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files = list_images(path, recursive=recursive)
            links = broken_links(path, recursive=recursive)
            if not files and not links:
                hint = "" if recursive else " (try --recursive)"
                raise UsageError(str(path), f"no photos in this folder{hint}")
            found.extend((f, f.relative_to(path)) for f in files)
            broken.extend(links)
        elif path.exists():
            found.append((path, Path(path.name)))
        elif path.is_symlink():
            raise UsageError(str(path), f"a broken link: {os.readlink(path)} does not exist")
        else:
            raise UsageError(str(path), "no such file or folder")
    return found, broken


def up_to_date(photo: Path, output: Path) -> bool:
    """True when ``output`` exists, is newer than ``photo`` and decodes to the end (a photo cut short
    by a writer that was killed, before outputs were written whole, does not)."""
    from PIL import Image

    try:
        if output.stat().st_mtime < photo.stat().st_mtime:
            return False
        with Image.open(output) as image:
            # decoded at 1/8 scale: cheap, and still read to the end
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except (OSError, ValueError, SyntaxError):  # missing, truncated or not an image at all
        return False
    return True


def _benchmark(args: argparse.Namespace) -> int:
    from expolib.benchmarks.fullres import benchmark_fullres

    benchmark_fullres(args.megapixels, weights=args.weights, working_side=args.working_side or 512,
                      out=lambda line: print(line, flush=True))
    return 0


def _reason(error: BaseException, path: Path) -> str:
    reason = one_line(str(error))
    prefix = f"{path}: "
    return reason[len(prefix):] if reason.startswith(prefix) else reason  # load_image names the file


@guarded
def _run_correct(args: argparse.Namespace) -> int:
    from expolib.files import WriteError, remove_temporaries
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
    files, broken = _collect(args.inputs, args.recursive)
    model = load_model(args.weights, device=pick_device(args.device))  # bad weights: exit 2 before anything
    inputs = {f.resolve() for f, _ in files}
    written: dict[Path, Path] = {}
    failed, kept = 0, 0
    for link in broken:
        report(str(link), f"skipped: a broken link ({os.readlink(link)} does not exist)")
        failed += 1
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
        written[resolved] = path
        if not args.redo and up_to_date(path, target):
            kept += 1
            if not args.quiet:
                print(f"kept {target} (up to date)")
            continue
        remove_temporaries(target)  # left by a run that was killed while writing it
        try:
            photo = load_image(path, max_pixels=args.max_pixels)
            fixed = correct(model, photo, mode=args.mode, working_side=args.working_side)
            save_image(fixed, target)
        except WriteError as error:
            if error.no_space:  # the next photo would not fit either: stop, keeping what is written
                raise
            report(str(path), f"skipped: {_reason(error, path)}")
            failed += 1
            continue
        except (ValueError, OSError, RuntimeError) as error:  # ImageLoadError is a ValueError
            report(str(path), f"skipped: {_reason(error, path)}")
            failed += 1
            continue
        if not args.quiet:
            print(f"wrote {target}")
    if kept and not args.quiet:
        print(f"{kept} photo(s) already corrected were kept; --redo corrects them again")
    return PARTIAL if failed else 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``python -m expolib correct``."""
    p = add_command(subparsers, "correct", SUMMARY, DESCRIPTION)
    p.add_argument("inputs", nargs="*", metavar="IN", help="photos or folders of photos")
    p.add_argument("--out", metavar="DIR", help="folder for the corrected photos")
    add_model_options(p)
    p.add_argument("--recursive", action="store_true", help="also correct photos in sub-folders")
    p.add_argument("--quiet", action="store_true", help="report only problems")
    p.add_argument("--redo", action="store_true",
                   help="correct every photo again, even where its output is already there and up to date")
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
