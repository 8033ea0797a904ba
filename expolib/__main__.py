"""Entry point for ``python -m expolib``."""

import sys

from expolib.cli import main

if __name__ == "__main__":
    sys.exit(main())
