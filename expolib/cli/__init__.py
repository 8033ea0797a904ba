"""The command line, ``python -m expolib`` (and the ``expolib`` script): one module per subcommand.

Each module listed in :data:`SUBCOMMANDS` provides ``add_cli(subparsers)``, which adds its parser and
sets ``func`` to a handler that takes the parsed arguments and returns an exit status. Every
subcommand reports problems the same way (:mod:`expolib.cli.errors`). The library modules underneath
neither parse arguments nor print.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Optional

from expolib import __version__
from expolib.cli.errors import Parser

SUBCOMMANDS = ("expolib.cli.train", "expolib.cli.evaluate", "expolib.cli.correct", "expolib.cli.bench")


def build_parser() -> Parser:
    """Build the top-level parser with every subcommand."""
    parser = Parser(
        prog="python -m expolib",
        description="Exposure correction with a pix2pix-style GAN: train, evaluate, correct photos, "
        "benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"expolib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_cli(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line and return its exit status (a bad option exits with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
