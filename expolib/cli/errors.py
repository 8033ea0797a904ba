"""The command line's one error policy, shared by every subcommand.

- A problem is one line on stderr: ``error: <file or option>: <what is wrong>`` (:func:`report`).
- Exit status 2 (:data:`USAGE`) for the user's mistake: a bad option, a missing or unreadable input,
  a dataset laid out wrongly; the command stops before doing anything.
- Exit status 1 (:data:`PARTIAL`) when some photos of a batch failed and the others were written.
- Never a traceback for any of these: :func:`guarded` turns the library's user-facing errors
  (``ValueError`` and its kin: ``ImageLoadError``, ``DatasetLayoutError``, ``ModelFileError``;
  ``OSError``; ``CheckpointError``) into the line and the status.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, NoReturn, Optional

from expolib.training.checkpoint import CheckpointError

USAGE = 2
PARTIAL = 1
# what the library raises for a reader's mistake; anything else is a bug and keeps its traceback
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, CheckpointError)


class UsageError(Exception):
    """A mistake in how a command was called; ``where`` names the option or file."""

    def __init__(self, where: Optional[str], what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)
        self.where, self.what = where, what


def one_line(text: str) -> str:
    """``text`` with every run of white space (newlines included) made one space."""
    return " ".join(text.split())


def report(where: Optional[str], what: str) -> None:
    """Print ``error: <where>: <what>`` (or ``error: <what>``) as one line on stderr."""
    message = one_line(f"{where}: {what}" if where else what)
    print(f"error: {message}", file=sys.stderr, flush=True)


def report_error(error: BaseException) -> None:
    """:func:`report` for an exception: the library's messages name the file or option already."""
    if isinstance(error, UsageError):
        report(error.where, error.what)
    else:
        report(None, str(error) or type(error).__name__)


def guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a subcommand's handler: a :class:`UsageError` or one of :data:`USER_ERRORS` becomes one
    line on stderr and exit status 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (UsageError, *USER_ERRORS) as error:
            report_error(error)
            return USAGE

    return run


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors follow the policy: ``error: <option>: <problem>`` on one line
    of stderr and exit status 2 (argparse's own format is a usage block, then the error)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):  # "argument --lr: invalid float value: 'x'"
            message = message[len("argument "):]
        report(None, f"{message} (see {self.prog} --help)")
        self.exit(USAGE)


__all__ = ["PARTIAL", "USAGE", "USER_ERRORS", "Parser", "UsageError", "guarded", "one_line", "report",
           "report_error"]
