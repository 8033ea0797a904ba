"""Small helpers for the chapters: show the library's own code instead of copying it."""

from __future__ import annotations

import inspect
from typing import Any


def show_source(obj: Any) -> Any:
    """Display the source of a library function or class with syntax highlighting.

    Returns an IPython ``Code`` object (rendered by Jupyter); outside IPython, the plain text.
    """
    text = inspect.getsource(obj)
    try:
        from IPython.display import Code
    except ImportError:  # pragma: no cover - IPython ships with every notebook environment
        return text
    return Code(text, language="python")
