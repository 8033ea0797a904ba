"""The command line, ``python -m expolib``: one subcommand per module that owns the work.

Each module listed in :data:`SUBCOMMANDS` provides ``add_cli(subparsers)``, which adds its parser and
sets ``func`` to a handler that takes the parsed arguments and returns an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from expolib import __version__

SUBCOMMANDS = ("expolib.train", "expolib.evaluation", "expolib.infer", "expolib.bench")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m expolib",
        description="Exposure correction with a pix2pix-style GAN: train, evaluate, correct photos, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"expolib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_cli(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
