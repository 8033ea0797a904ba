"""``python -m expolib evaluate``: the model and the baselines on held-out photos, one table per metric."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from expolib.cli.errors import UsageError, guarded
from expolib.corrector import Corrector
from expolib.evaluation import compare, evaluate_many
from expolib.metrics import METRICS
from expolib.pretrained import load_model, model_source


def _test_dataset(args: argparse.Namespace) -> Any:
    from expolib import data, filepairs
    from expolib.config import get_budget

    side = args.side or get_budget().eval_side
    if args.msec:
        root = Path(args.msec)
        return filepairs.MSECPairs(root, split="test", expert=args.expert, size=None, augment=False,
                                   max_side=side)
    return data.EmbeddedPairs(split="test", size=None, augment=False, max_side=side)


@guarded
def _run_evaluate(args: argparse.Namespace) -> int:
    """The ``evaluate`` command; a missing or unreadable file, or a bad option, is one line on stderr
    and exit status 2 (see :mod:`expolib.cli.errors`)."""
    from expolib.baselines import BASELINES

    names = list(BASELINES) if args.baselines == "all" else [n for n in args.baselines.split(",") if n]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        choices = ", ".join(BASELINES)
        raise UsageError("--baselines", f"unknown baseline {unknown[0]!r}; choose from {choices}")
    if args.no_model and not names:
        raise UsageError("--no-model", "nothing to evaluate: give a model or at least one baseline")
    correctors: dict[str, Corrector] = {}
    if not args.no_model:
        correctors["model"] = load_model(args.weights, device=args.device or "cpu")
    dataset = _test_dataset(args)
    for n in names:
        correctors[n] = BASELINES[n]().eval()
    tables = evaluate_many(correctors, dataset, max_items=args.max_items, progress=not args.quiet)
    source = f"MSEC test set at {args.msec}" if args.msec else "the embedded test photos"
    print(f"Evaluated on {source} ({tables[next(iter(tables))].count()} items)"
          + (f"; model weights: {model_source(args.weights)}" if not args.no_model else ""))
    for metric in METRICS:
        print()
        print(compare(tables, metric).to_markdown())
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``evaluate``: the shipped model (or ``--weights``) and the baselines on the test photos."""
    p = subparsers.add_parser(
        "evaluate",
        help="measure PSNR, SSIM and colour difference per EV for the model and the baselines",
        description="Evaluate the shipped generator (or --weights) and the classical baselines on the "
        "embedded test photos (or the MSEC test set with --msec) and print one table per metric.",
    )
    p.add_argument(
        "--weights", help="a generator saved with expolib.modelfile.save_generator (default: the shipped one)"
    )
    p.add_argument("--msec", metavar="DIR", help="root of the MSEC dataset; its test split is used")
    p.add_argument("--expert", default="c", help="MSEC expert whose retouch is the ground truth (default c)")
    p.add_argument(
        "--side", type=int, default=None,
        help="long side of the evaluated photos (default: the budget's eval_side)",
    )
    p.add_argument("--baselines", default="all", help="comma-separated baseline names, 'all' (default) or ''")
    p.add_argument("--no-model", action="store_true", help="evaluate the baselines only")
    p.add_argument("--max-items", type=int, default=None, help="stop after this many pairs")
    p.add_argument("--device", default=None, help="where the model runs (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_evaluate)


__all__ = ["add_cli"]
