"""Test-session settings: the quick budget for everything, notebook kernels included, and the
share-out of the tests between pytest-xdist's workers.

nbmake starts each notebook's kernel with this process's environment, so setting the variable here
(before any test runs) puts every chapter in the quick budget.

``pytest`` runs on one worker per core (``-n auto`` in pyproject.toml, at most four). Each worker, and
every process it starts (notebook kernels, the command line in a subprocess, torchrun), computes on its
share of the cores, one thread on two cores, so that the workers do not fight over them. A test file
runs in one worker, and so do chapters 6 to 8 (see :data:`CHAIN`).
"""

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["EXPOLIB_BUDGET"] = "quick"
os.environ.setdefault("TQDM_MININTERVAL", "1")
# Progress bars as text, as the book build draws them (expolib/progress.py): the chapters nbmake
# executes save what the built pages show, which tests/test_saved_outputs.py checks.
os.environ.setdefault("EXPOLIB_PROGRESS", "text")
# Idle OpenMP threads sleep instead of spinning: with two cores, a spinning pool in one process
# (a notebook kernel, a torchrun worker) starves the others several times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

MAX_WORKERS = 4  # beyond four, the longest group of tests (chapters 6 to 8) sets the time anyway


def available_cores() -> int:
    """The cores this process may run on (its affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


if os.environ.get("PYTEST_XDIST_WORKER"):  # set by pytest-xdist in each worker, before this file loads
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    # Inherited by notebook kernels and subprocesses; read by torch when it is first imported.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // workers)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core, at most :data:`MAX_WORKERS`; none (plain pytest) on one core."""
    cores = available_cores()
    return 0 if cores < 2 else min(cores, MAX_WORKERS)


# One unit of work, run in this order in one process: chapters 7 and 8 evaluate the generator that
# chapter 6 exports to book/runs/chapter06 (chapter 6 deletes its runs first), and
# tests/test_saved_outputs.py checks chapter 6's outputs as nbmake left them (see executed_chapters).
CHAIN = ("06_training.ipynb", "07_evaluation.ipynb", "08_alternatives.ipynb", "test_saved_outputs.py")


def _unit(nodeid: str) -> str:
    """The work unit of a test: its file (module-scoped fixtures are computed once), or the chain."""
    path = nodeid.split("::", 1)[0]
    return "the chain" if Path(path).name in CHAIN else path


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` with the chain as one unit (pytest-xdist's own scheduler, by file)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LoadFileAndChain(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return LoadFileAndChain(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The units in the order they are handed out to the workers: the long ones first (the chain, the
    other chapters, then the files with tests marked slow), so that no worker is left with a long one
    at the end (``--no-loadscope-reorder`` keeps this order); the chain in its own order."""
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        units.setdefault(_unit(item.nodeid), []).append(item)
    units.get("the chain", []).sort(key=lambda item: CHAIN.index(item.path.name))

    def rank(unit: list[pytest.Item]) -> int:
        if unit[0].path.name in CHAIN:
            return 0
        if unit[0].path.suffix == ".ipynb":
            return 1
        return 2 if any(item.get_closest_marker("slow") for item in unit) else 3

    items[:] = [item for unit in sorted(units.values(), key=rank) for item in unit]


# The chapters nbmake executed in this process, by file name, as it left them (outputs and widget
# state), kept when every cell ran: tests/test_saved_outputs.py reads chapter 6 here instead of
# executing it a second time.
EXECUTED_CHAPTERS: dict[str, Any] = {}


def _keep_what_nbmake_executes() -> None:
    try:
        from nbmake.nb_run import NotebookRun
    except ImportError:  # no nbmake: test_saved_outputs executes chapter 6 itself
        return
    execute = NotebookRun.execute
    if getattr(execute, "keeps_the_notebook", False):
        return

    def execute_and_keep(self: Any) -> Any:
        result = execute(self)
        if result.error is None:
            EXECUTED_CHAPTERS[Path(self.filename).name] = result.nb
        return result

    execute_and_keep.keeps_the_notebook = True  # type: ignore[attr-defined]
    NotebookRun.execute = execute_and_keep


_keep_what_nbmake_executes()


@pytest.fixture(scope="session")
def executed_chapters() -> dict[str, Any]:
    """The chapters nbmake has executed in this process so far, by file name (see EXECUTED_CHAPTERS)."""
    return EXECUTED_CHAPTERS


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
