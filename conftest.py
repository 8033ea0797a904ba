"""Test-session settings: the quick budget for everything, notebook kernels included.

nbmake starts each notebook's kernel with this process's environment, so setting the variable here
(before any test runs) puts every chapter in the quick budget.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["EXPOLIB_BUDGET"] = "quick"
os.environ.setdefault("TQDM_MININTERVAL", "1")
# Idle OpenMP threads sleep instead of spinning: with two cores, a spinning pool in one process
# (a notebook kernel, a torchrun worker) starves the others several times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test on one torch thread: tiny networks run fastest, and steadiest, that way."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Debian's Chromium, driven by Playwright: the browser tests' shared set-up.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def browser_unavailable(reason: str) -> None:
    """Skip when the browser is missing; with ``CI=true`` fail instead: CI must not skip it silently."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run in CI)")
    pytest.skip(reason)


@pytest.fixture
def chromium() -> str:
    """Path of the Chromium executable; skips (fails under CI) when it is not installed."""
    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if executable is None:
        browser_unavailable("Chromium is not installed at /usr/bin/chromium (apt-get install chromium); "
                            "the browser tests need it")
    return str(executable)


@pytest.fixture
def sync_api() -> Any:
    """playwright's synchronous API; skips (fails under CI) when playwright is not installed."""
    try:
        from playwright import sync_api
    except ImportError:
        browser_unavailable("playwright is not installed (pip install playwright); the browser tests need it")
    return sync_api
