"""What several subcommands share in their options: on/off/auto switches, "all" counts, the parser."""

from __future__ import annotations

import argparse
from typing import Any, Optional, Union


class _Auto:
    """What "auto" / "all" parse to on the command line: the TrainConfig value None (choose for me),
    as opposed to an option left out (take the budget's value)."""

    def __repr__(self) -> str:
        return "auto"


AUTO = _Auto()


def parse_switch(text: str) -> Union[bool, _Auto]:
    """Command-line on/off/auto (also true/false, yes/no, 1/0)."""
    value = text.strip().lower()
    if value in ("auto", "none"):
        return AUTO
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected on, off or auto, got {text!r}")


def optional_int(text: str) -> Union[int, _Auto]:
    """A count, or "all" / "none" / "auto" for no limit."""
    if text.strip().lower() in ("none", "all", "auto"):
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'all', got {text!r}") from None


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's help that appends ``(default: X)``, only where that tells something: not when the
    option's help already speaks of its default, nor for an unset option (None) or a flag (False)."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_command(subparsers: argparse._SubParsersAction, name: str, summary: str,
                description: str) -> argparse.ArgumentParser:
    """Add a subcommand: ``summary`` in the list of commands, ``description`` atop its help, each
    option's default in its help; errors follow :mod:`expolib.cli.errors` (the top parser's class)."""
    return subparsers.add_parser(name, help=summary, description=description, formatter_class=_DefaultsHelp)


def add_model_options(parser: argparse.ArgumentParser, device_default: Optional[str] = None) -> None:
    """The options of the commands that run a generator: which one, how, and where."""
    parser.add_argument("--weights", help="a generator saved with expolib.networks.modelfile.save_generator "
                        "(default: the shipped one)")
    from expolib.evaluation.infer import MODES

    parser.add_argument("--mode", choices=MODES, default="guided",
                        help="guided (default: the network at its working side, its change carried to full "
                        "resolution) or direct (the whole photo through the network)")
    parser.add_argument("--working-side", type=int, default=None,
                        help="long side the network sees in guided mode (default: the model's own, else 512)")
    parser.add_argument("--device", default=device_default,
                        help="where the network runs: cuda, cuda:N, mps or cpu (default: the best available, "
                        "as for train)")


def auto_to_none(value: Any) -> Optional[Any]:
    """``AUTO`` becomes None (the library's "choose for me"); other values stay."""
    return None if value is AUTO else value


__all__ = ["AUTO", "add_command", "add_model_options", "auto_to_none", "optional_int", "parse_switch"]
