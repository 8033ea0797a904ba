"""The one way expolib draws a progress bar: :func:`progress_bar`, and :func:`progress_write` for a
line printed while bars run.

Where a bar is drawn depends on where it will be read, which the environment variable
``EXPOLIB_PROGRESS`` (read only by :func:`progress_style`) says:

- ``auto`` (the default): ``tqdm.auto``, a widget in a live notebook (JupyterLab, Notebook, Colab),
  text in a terminal.
- ``text``: plain text in every case, drawn rarely (:data:`TEXT_MININTERVAL`), so that an executed
  notebook keeps each bar as one line of text, its last state, and no widget. The book build sets it
  (``expolib.book.sphinx_build``): a saved widget needs JavaScript from the internet to show on a
  built page, and a text bar redrawn hundreds of times fills the page with its drawings. A bar that
  would vanish when it ends (``leave=False``) is not drawn at all in this style.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Optional, TextIO

import tqdm.auto
import tqdm.std

PROGRESS_ENV = "EXPOLIB_PROGRESS"
STYLES = ("auto", "text")
TEXT_MININTERVAL = 60.0  # seconds between two drawings of a text bar (its first and last are always drawn)


def progress_style() -> str:
    """The style ``EXPOLIB_PROGRESS`` asks for: ``"auto"`` (unset or empty) or ``"text"``."""
    style = os.environ.get(PROGRESS_ENV, "").strip().lower() or "auto"
    if style not in STYLES:
        raise ValueError(f"{PROGRESS_ENV}={style!r}: expected one of {', '.join(STYLES)}")
    return style


def bar_class() -> type[tqdm.std.tqdm]:
    """The tqdm class bars are drawn with in the current style."""
    return tqdm.std.tqdm if progress_style() == "text" else tqdm.auto.tqdm


def progress_bar(iterable: Optional[Iterable[Any]] = None, **kwargs: Any) -> tqdm.std.tqdm:
    """A progress bar over ``iterable`` (or a manual one, updated with ``.update``), with tqdm's
    keyword arguments, drawn in the current style (see the module's description)."""
    if progress_style() == "text":
        if kwargs.get("leave", True) is False:  # a bar meant to vanish: nothing to keep on a page
            kwargs["disable"] = True
        kwargs.setdefault("mininterval", TEXT_MININTERVAL)
        kwargs.pop("dynamic_ncols", None)  # a page has no terminal width to follow
    return bar_class()(iterable, **kwargs)


def progress_write(message: str, file: Optional[TextIO] = None) -> None:
    """Print ``message`` on a line of its own without breaking the bars that are running."""
    bar_class().write(message, file=file)


__all__ = ["PROGRESS_ENV", "STYLES", "TEXT_MININTERVAL", "bar_class", "progress_bar", "progress_style",
           "progress_write"]
