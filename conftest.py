"""Test-session settings: the quick budget for everything, notebook kernels included.

nbmake starts each notebook's kernel with this process's environment, so setting the variable here
(before any test runs) puts every chapter in the quick budget.
"""

import os

os.environ["EXPOLIB_BUDGET"] = "quick"
os.environ.setdefault("TQDM_MININTERVAL", "1")
# Idle OpenMP threads sleep instead of spinning: with two cores, a spinning pool in one process
# (a notebook kernel, a torchrun worker) starves the others several times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
