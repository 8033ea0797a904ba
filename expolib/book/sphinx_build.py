"""A Sphinx extension for the book build (listed in ``_config.yml``): the chapters it executes draw
their progress bars as plain text.

Jupyter Book starts each chapter's kernel from the build's own process, so an environment variable
set here reaches every chapter. ``EXPOLIB_PROGRESS=text`` (see :mod:`expolib.progress`) keeps each
bar as one line of text, its last state, instead of a widget that a built page could only show with
JavaScript from the internet. A value already set (``EXPOLIB_PROGRESS=auto jupyter-book build .``)
is left as it is.
"""

from __future__ import annotations

import os
from typing import Any

from expolib.progress import PROGRESS_ENV


def setup(app: Any) -> dict[str, Any]:
    """Sphinx's entry point: ask for text progress bars in every kernel the build starts."""
    os.environ.setdefault(PROGRESS_ENV, "text")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
