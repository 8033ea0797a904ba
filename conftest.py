"""Test-session settings: the quick budget for everything, notebook kernels included.

nbmake starts each notebook's kernel with this process's environment, so setting the variable here
(before any test runs) puts every chapter in the quick budget.
"""

import os

os.environ["EXPOLIB_BUDGET"] = "quick"
os.environ.setdefault("TQDM_MININTERVAL", "1")
