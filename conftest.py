"""Test-session settings: the quick budget for everything, notebook kernels included.

nbmake starts each notebook's kernel with this process's environment, so setting the variable here
(before any test runs) puts every chapter in the quick budget.
"""

import os
from collections.abc import Iterator

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
