"""expolib: photo exposure correction with a pix2pix-style GAN, the library behind the book."""

from expolib.config import BUDGETS, Budget, get_budget, pick_device, seed_everything

__version__ = "0.1.0"

__all__ = ["BUDGETS", "Budget", "__version__", "get_budget", "pick_device", "seed_everything"]
