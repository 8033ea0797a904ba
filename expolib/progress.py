"""The one way expolib draws a progress bar: :func:`progress_bar`, and :func:`progress_write` for a
line printed while bars run.

Where a bar is drawn depends on where it will be read, which the environment variable
``EXPOLIB_PROGRESS`` (read only by :func:`progress_style`) says:

- ``auto`` (the default): ``tqdm.auto``, a widget in a live notebook (JupyterLab, Notebook, Colab),
  text in a terminal.
- ``text``: plain text in every case, drawn once, when the bar closes (:class:`TextBar`), so that an
  executed notebook keeps each bar as one line of text, its last state, and no widget. The book build
  sets it (``expolib.book.sphinx_build``): a saved widget needs JavaScript from the internet to show
  on a built page, and each drawing of a text bar that reaches the notebook as an output of its own
  stays on the page as a line of its own. A bar that would vanish when it ends (``leave=False``) is
  not drawn at all in this style.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Optional, TextIO

import tqdm.auto
import tqdm.std

PROGRESS_ENV = "EXPOLIB_PROGRESS"
STYLES = ("auto", "text")


class TextBar(tqdm.std.tqdm):
    """tqdm's text bar, drawn only when it closes: one line, its last state (counts, time, postfix)."""

    _closing = False

    def display(self, msg: Optional[str] = None, pos: Optional[int] = None) -> bool:
        if not self._closing:
            return True
        return bool(super().display(msg, pos))

    def clear(self, nolock: bool = False) -> None:
        if self._closing:
            super().clear(nolock)

    def close(self) -> None:
        self._closing = True
        super().close()


def progress_style() -> str:
    """The style ``EXPOLIB_PROGRESS`` asks for: ``"auto"`` (unset or empty) or ``"text"``."""
    style = os.environ.get(PROGRESS_ENV, "").strip().lower() or "auto"
    if style not in STYLES:
        raise ValueError(f"{PROGRESS_ENV}={style!r}: expected one of {', '.join(STYLES)}")
    return style


def bar_class() -> type[tqdm.std.tqdm]:
    """The tqdm class bars are drawn with in the current style."""
    return TextBar if progress_style() == "text" else tqdm.auto.tqdm


def progress_bar(iterable: Optional[Iterable[Any]] = None, **kwargs: Any) -> tqdm.std.tqdm:
    """A progress bar over ``iterable`` (or a manual one, updated with ``.update``), with tqdm's
    keyword arguments, drawn in the current style (see the module's description)."""
    if progress_style() == "text":
        if kwargs.get("leave", True) is False:  # a bar meant to vanish: nothing to keep on a page
            kwargs["disable"] = True
        kwargs.pop("dynamic_ncols", None)  # a page has no terminal width to follow
    return bar_class()(iterable, **kwargs)


def progress_write(message: str, file: Optional[TextIO] = None) -> None:
    """Print ``message`` on a line of its own without breaking the bars that are running."""
    bar_class().write(message, file=file)


__all__ = ["PROGRESS_ENV", "STYLES", "TextBar", "bar_class", "progress_bar", "progress_style",
           "progress_write"]
