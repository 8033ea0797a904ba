"""``python -m expolib evaluate``: the model, run as ``correct`` runs it, and the baselines on held-out
photos; EV 0 on its own, then one table per metric, per exposure level, for each rendering of the test
photos, with a bound that sees the answer as the last row."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from expolib.cli.errors import UsageError, guarded
from expolib.cli.options import add_command, add_model_options
from expolib.config import pick_device
from expolib.evaluation.corrector import Corrector
from expolib.evaluation.metrics import METRICS
from expolib.evaluation.protocol import GOOD_PSNR, compare, ev0_table, evaluate_many
from expolib.networks.modelfile import load_model, model_source

CAMERAS = {"plain": "the book's camera", "held-out": "a camera held out from training",
           "film": "a film-like S-curve, a third response outside training"}
CAMERA_CHOICES = (*CAMERAS, "both", "all")  # both: plain and held-out (as before the film camera); all: three
TABLE_METRICS = (*METRICS, "checkerboard")
SUMMARY = "measure PSNR, SSIM, colour difference and checkerboard per EV for the model and the baselines"
DESCRIPTION = (
    "Evaluate the shipped generator (or --weights), run the way `correct` runs it, and the classical "
    "baselines on the embedded test photos (rendered by the book's camera, by a camera held out "
    "from training and by a film-like response), the MSEC test set (--msec) or your own pairs (--pairs): "
    "EV 0 on its own (do no harm), then one table per metric, per exposure level and over the "
    "mis-exposed levels; the last row of each is a bound that sees the ground truth, not a method."
)


def _datasets(args: argparse.Namespace, side: int) -> list[tuple[str, Any]]:
    """(description, dataset) pairs to evaluate on: MSEC's test split, a folder of pairs, or the
    embedded test photos rendered by the chosen cameras (``--camera``)."""
    from expolib.data import filepairs, msec
    from expolib.data import rendered as data
    from expolib.imaging.camera import FILM_CAMERA, HELD_OUT_CAMERA

    if args.msec:
        root = Path(args.msec)
        msec_test = msec.MSECPairs(root, split="test", expert=args.expert, size=None, augment=False,
                                   max_side=side)
        return [(f"the MSEC test set at {root} (expert {args.expert})", msec_test)]
    if args.pairs:
        inputs, targets = args.pairs
        pairs = filepairs.PairFolder(inputs, targets, size=None, augment=False, max_side=side)
        return [(f"the pairs in {inputs} and {targets}", pairs)]
    cameras = {"plain": None, "held-out": HELD_OUT_CAMERA, "film": FILM_CAMERA}
    chosen = {"all": list(CAMERAS), "both": ["plain", "held-out"]}.get(args.camera, [args.camera])
    return [(f"the embedded test photos (long side {side} px) rendered by {CAMERAS[c]}",
             data.EmbeddedPairs(split="test", size=None, augment=False, max_side=side, camera=cameras[c]))
            for c in chosen]


@guarded
def _run_evaluate(args: argparse.Namespace) -> int:
    """The ``evaluate`` command; a missing or unreadable file, or a bad option, is one line on stderr
    and exit status 2 (see :mod:`expolib.cli.errors`)."""
    from expolib.config import get_budget
    from expolib.evaluation.baselines import BASELINES, BOUNDS, Bound
    from expolib.evaluation.infer import PhotoCorrector

    names = list(BASELINES) if args.baselines == "all" else [n for n in args.baselines.split(",") if n]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        choices = ", ".join(BASELINES)
        raise UsageError("--baselines", f"unknown baseline {unknown[0]!r}; choose from {choices}")
    if args.no_model and not names:
        raise UsageError("--no-model", "nothing to evaluate: give a model or at least one baseline")
    for option in ("side", "working_side", "max_items"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError("--" + option.replace("_", "-"), f"must be a positive number, got {value}")
    side = args.side or get_budget().eval_side
    datasets = _datasets(args, side)  # a missing or wrongly laid out folder stops here, before any work
    correctors: dict[str, Corrector | Bound] = {}
    if not args.no_model:
        network = load_model(args.weights, device=pick_device(args.device))
        model = PhotoCorrector(network, args.mode, args.working_side)
        correctors[model.name] = model
        if getattr(network, "global_stage", None) is not None:  # what the U-Net adds to its global stage
            from expolib.networks.two_stage import GlobalStageAlone

            correctors[GlobalStageAlone.name] = PhotoCorrector(GlobalStageAlone(network), args.mode)
        print(f"model: {model_source(args.weights)}, run as `correct --mode {args.mode}` runs it")
    for n in names:
        correctors[n] = BASELINES[n]().eval()
    if not args.no_bound:
        for bound in BOUNDS.values():
            correctors[bound().name] = bound()
    for description, dataset in datasets:
        tables = evaluate_many(correctors, dataset, max_items=args.max_items, metrics=TABLE_METRICS,
                               progress=not args.quiet)
        print(f"\n## {description}: {tables[next(iter(tables))].count()} items\n")
        ev0 = ev0_table(tables)
        if ev0.rows:
            print(f"At EV 0 the input is the ground truth itself: a corrector should return it unchanged "
                  f"(doing nothing scores inf). '> {GOOD_PSNR:g} dB': photos returned above it.\n")
            print(ev0.to_markdown())
            print()
        print("Mean over the mis-exposed levels in 'EV ≠ 0', never with EV 0. "
              "Checkerboard: period-2 energy of the output over the ground truth's (1 is right).")
        if any(t.sees_target for t in tables.values()):
            print("Rows named 'bound' fit a curve to each photo's ground truth: they see the answer, "
                  "a ceiling for global corrections, not a method to beat.")
        for metric in TABLE_METRICS:
            print()
            print(compare(tables, metric).to_markdown())
        if args.per_scene:
            for table in tables.values():
                print()
                print(table.per_scene("psnr").to_markdown())
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``python -m expolib evaluate``."""
    p = add_command(subparsers, "evaluate", SUMMARY, DESCRIPTION)
    add_model_options(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--msec", metavar="DIR", help="root of the MSEC dataset; its test split is used")
    source.add_argument("--pairs", nargs=2, metavar=("INPUT_DIR", "TARGET_DIR"),
                        help="your own pairs: inputs and ground truths matched by file name")
    p.add_argument("--camera", choices=CAMERA_CHOICES, default="all",
                   help="for the embedded test photos: which rendering of the exposure errors; both: plain "
                        "and held-out; all (default): plain, held-out and film")
    p.add_argument("--expert", default="c", help="MSEC expert whose retouch is the ground truth (default c)")
    p.add_argument(
        "--side", type=int, default=None,
        help="long side of the evaluated photos (default: the budget's eval_side)",
    )
    p.add_argument("--baselines", default="all", help="comma-separated baseline names, 'all' (default) or ''")
    p.add_argument("--no-model", action="store_true", help="evaluate the baselines only")
    p.add_argument("--no-bound", action="store_true",
                   help="leave out the bound (a curve per channel fitted to each photo's ground truth)")
    p.add_argument("--per-scene", action="store_true",
                   help="also print a PSNR table per photo for each method")
    p.add_argument("--max-items", type=int, default=None, help="stop after this many pairs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_evaluate)


__all__ = ["add_cli"]
