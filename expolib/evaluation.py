"""Measure a corrector on held-out photos: PSNR, SSIM and colour difference per exposure level.

:func:`evaluate` runs any corrector (a generator, a baseline, the identity) over a dataset of pairs, one
photo at a time, and returns an :class:`EvaluationTable`: the metrics of every item, their means per
EV level and overall. :func:`compare` puts several tables side by side for one metric.
The command line ``python -m expolib evaluate`` does this for the shipped model and every baseline.
"""

from __future__ import annotations

import argparse
import html
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from expolib.metrics import HIGHER_IS_BETTER, METRICS, delta_e00, psnr, ssim
from expolib.transforms import denormalize

Corrector = Callable[[torch.Tensor], torch.Tensor]

METRIC_LABELS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "delta_e00": "ΔE00 ↓"}
OVERALL = "all"
MISEXPOSED = "EV ≠ 0"  # label of the mean over the mis-exposed levels, the ones that need correcting
UNKNOWN = "unknown"  # the group of items whose EV is not known (NaN), such as PairFolder's pairs
METRIC_FUNCTIONS = {"psnr": psnr, "ssim": ssim, "delta_e00": delta_e00}


def _format(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def _ev_label(ev: float) -> str:
    return f"{ev:+.1f}" if ev != 0 else "0.0"


@dataclass
class Table:
    """A small table (a header and rows of values) that prints as Markdown and renders in notebooks."""

    header: list[str]
    rows: list[list[Any]]
    title: str = ""
    digits: int = 3

    def to_markdown(self) -> str:
        """The table as GitHub-flavoured Markdown (floats rounded to ``digits``)."""
        cells = [[_format(v, self.digits) for v in row] for row in self.rows]
        lines = ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return (f"**{self.title}**\n\n" if self.title else "") + "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_format(v, self.digits))}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __str__(self) -> str:
        return self.to_markdown()


@dataclass
class EvaluationTable:
    """Metrics of one corrector: one record per evaluated item, summarised per EV and overall."""

    name: str
    records: list[dict[str, Any]] = field(default_factory=list)  # scene, ev, index and one value per metric
    metrics: tuple[str, ...] = METRICS  # which metrics the records hold

    @property
    def evs(self) -> list[float]:
        """The known EV levels present, in increasing order (unknown EVs: see :attr:`has_unknown`)."""
        return sorted({float(r["ev"]) for r in self.records if math.isfinite(float(r["ev"]))})

    @property
    def has_unknown(self) -> bool:
        """Whether some items have no known EV (NaN, as from a ``PairFolder``): they form one group."""
        return any(not math.isfinite(float(r["ev"])) for r in self.records)

    def select(self, ev: Union[float, str, None] = None) -> list[dict[str, Any]]:
        """The records at one EV level; all of them when ``ev`` is None; ``"misexposed"``: every known EV
        but 0; ``"unknown"``: those whose EV is not known."""
        if ev is None:
            return list(self.records)
        if ev == "misexposed":
            return [r for r in self.records if math.isfinite(float(r["ev"])) and abs(float(r["ev"])) > 1e-6]
        if ev == UNKNOWN:
            return [r for r in self.records if not math.isfinite(float(r["ev"]))]
        if isinstance(ev, str):
            raise ValueError(f"ev must be a number, None, 'misexposed' or 'unknown', got {ev!r}")
        return [r for r in self.records if math.isclose(float(r["ev"]), ev, abs_tol=1e-6)]

    def mean(self, metric: str, ev: Union[float, str, None] = None) -> float:
        """Mean of ``metric`` over the items at ``ev`` (see :meth:`select`); NaN if there are none."""
        if metric not in self.metrics:
            held = ", ".join(self.metrics)
            raise ValueError(f"metric {metric!r} was not measured; this table holds {held}")
        values = [float(r[metric]) for r in self.select(ev)]
        return sum(values) / len(values) if values else float("nan")

    def count(self, ev: Union[float, str, None] = None) -> int:
        """How many items were evaluated at ``ev`` (see :meth:`select`)."""
        return len(self.select(ev))

    def _groups(self) -> list[tuple[str, Union[float, str, None]]]:
        groups: list[tuple[str, Union[float, str, None]]] = [(_ev_label(ev), ev) for ev in self.evs]
        if any(ev == 0 for ev in self.evs) and len(self.evs) > 1:
            groups.append((MISEXPOSED, "misexposed"))
        if self.has_unknown:
            groups.append((UNKNOWN, UNKNOWN))
        return [*groups, (OVERALL, None)]

    def summary(self) -> list[dict[str, Any]]:
        """One dict per EV level, the mis-exposed levels together (when EV 0 is present), the items of
        unknown EV together (if any) and overall: ``ev`` (a label), the metric means and ``count``."""
        rows = []
        for label, ev in self._groups():
            row: dict[str, Any] = {"ev": label}
            row.update({m: self.mean(m, ev) for m in self.metrics})
            row["count"] = self.count(ev)
            rows.append(row)
        return rows

    def table(self) -> Table:
        """The summary as a :class:`Table` (rows: EV levels and overall; columns: metrics and count)."""
        header = ["EV", *(METRIC_LABELS[m] for m in self.metrics), "count"]
        rows = [[r["ev"], *(r[m] for m in self.metrics), r["count"]] for r in self.summary()]
        return Table(header, rows, title=self.name)

    def ranked(self, metric: str = "psnr") -> list[dict[str, Any]]:
        """The records from best to worst by ``metric``."""
        return sorted(self.records, key=lambda r: float(r[metric]), reverse=HIGHER_IS_BETTER[metric])

    def to_markdown(self) -> str:
        return self.table().to_markdown()

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def __str__(self) -> str:
        return self.to_markdown()


def compare(tables: Mapping[str, EvaluationTable] | Sequence[EvaluationTable], metric: str = "psnr") -> Table:
    """One metric for several correctors: a row per corrector, a column per EV level and overall."""
    if isinstance(tables, Mapping):
        named = list(tables.items())
    else:
        named = [(t.name, t) for t in tables]
    evs = sorted({ev for _, t in named for ev in t.evs})
    groups: list[tuple[str, Union[float, str, None]]] = [(f"EV {_ev_label(ev)}", ev) for ev in evs]
    if 0.0 in evs and len(evs) > 1:
        groups.append((MISEXPOSED, "misexposed"))
    if any(t.has_unknown for _, t in named):
        groups.append((f"EV {UNKNOWN}", UNKNOWN))
    groups.append((OVERALL, None))
    header = ["method", *(label for label, _ in groups)]
    rows = [[name, *(t.mean(metric, ev) for _, ev in groups)] for name, t in named]
    return Table(header, rows, title=METRIC_LABELS[metric], digits=2 if metric != "ssim" else 3)


def _corrector_device(corrector: Corrector) -> torch.device:
    if isinstance(corrector, nn.Module):
        for tensor in (*corrector.parameters(), *corrector.buffers()):
            return tensor.device
    return torch.device("cpu")


def run_corrector(corrector: Corrector, image: torch.Tensor) -> torch.Tensor:
    """Correct one normalised image ``(3, H, W)``: batch of one, no gradients, eval mode (restored after).

    Returns the corrected image ``(3, H, W)`` in [-1, 1] on the CPU.
    """
    was_training = isinstance(corrector, nn.Module) and corrector.training
    if isinstance(corrector, nn.Module):
        corrector.eval()
    try:
        with torch.no_grad():
            output = corrector(image.unsqueeze(0).to(_corrector_device(corrector)))
    finally:
        if was_training:
            assert isinstance(corrector, nn.Module)
            corrector.train()
    if output.shape[1:] != image.shape:
        raise ValueError(
            f"the corrector changed the image shape from {tuple(image.shape)} to {tuple(output.shape[1:])}"
        )
    return output[0].float().cpu().clamp(-1.0, 1.0)


def evaluate(
    corrector: Corrector,
    dataset: Iterable[Mapping[str, Any]],
    *,
    name: Optional[str] = None,
    max_items: Optional[int] = None,
    metrics: Sequence[str] = METRICS,
    progress: bool = True,
) -> EvaluationTable:
    """Run ``corrector`` on every item of ``dataset`` and measure PSNR, SSIM and ΔE00 against the target.

    ``dataset`` yields items ``{"input", "target", "ev", "scene"}`` (normalised images of any size, such
    as ``EmbeddedPairs(split="test", size=None)``). ``name`` labels the table (default: the corrector's
    ``name`` attribute or class name); ``max_items`` stops early; ``metrics`` picks a subset of
    ``("psnr", "ssim", "delta_e00")`` (PSNR alone is much cheaper than SSIM and ΔE00).
    """
    unknown = [m for m in metrics if m not in METRIC_FUNCTIONS]
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(METRICS)}")
    label = name or getattr(corrector, "name", None) or type(corrector).__name__
    table = EvaluationTable(name=str(label), metrics=tuple(metrics))
    total = len(dataset) if hasattr(dataset, "__len__") else None  # type: ignore[arg-type]
    if max_items is not None and total is not None:
        total = min(total, max_items)
    bar = tqdm(dataset, total=total, desc=f"evaluating {label}", disable=not progress, leave=False)
    for index, item in enumerate(bar):
        if max_items is not None and index >= max_items:
            break
        output = run_corrector(corrector, item["input"])
        result, target = denormalize(output), denormalize(item["target"].float().cpu())
        scores = {m: METRIC_FUNCTIONS[m](result, target) for m in metrics}
        table.records.append({"index": index, "scene": str(item["scene"]), "ev": float(item["ev"]), **scores})
    bar.close()
    return table


def evaluate_many(
    correctors: Mapping[str, Corrector], dataset: Sequence[Mapping[str, Any]], **kwargs: Any
) -> dict[str, EvaluationTable]:
    """:func:`evaluate` for each named corrector on the same dataset."""
    return {name: evaluate(c, dataset, name=name, **kwargs) for name, c in correctors.items()}


# ---------------------------------------------------------------------------------------------- CLI


def _test_dataset(args: argparse.Namespace) -> Any:
    from expolib import data
    from expolib.config import get_budget

    side = args.side or get_budget().eval_side
    if args.msec:
        root = Path(args.msec)
        return data.MSECPairs(root, split="test", expert=args.expert, size=None, augment=False, max_side=side)
    return data.EmbeddedPairs(split="test", size=None, augment=False, max_side=side)


def _run_evaluate(args: argparse.Namespace) -> int:
    """The ``evaluate`` command; a missing or unreadable file, or a bad option, is one line on stderr
    and exit status 2."""
    from expolib.data import DatasetLayoutError
    from expolib.models import ModelFileError

    try:
        return _evaluate_command(args)
    except (FileNotFoundError, ModelFileError, DatasetLayoutError, ValueError) as error:
        # ModelFileError, DatasetLayoutError and ImageLoadError are ValueErrors; named for the reader.
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"evaluate: {message}", file=sys.stderr)
        return 2


def _evaluate_command(args: argparse.Namespace) -> int:
    from expolib.baselines import BASELINES
    from expolib.models import load_generator
    from expolib.pretrained import PRETRAINED_PATH

    dataset = _test_dataset(args)
    weights = Path(args.weights) if args.weights else PRETRAINED_PATH
    correctors: dict[str, Corrector] = {}
    if not args.no_model:
        correctors["model"] = load_generator(weights, device=args.device or "cpu")
    names = list(BASELINES) if args.baselines == "all" else [n for n in args.baselines.split(",") if n]
    for n in names:
        if n not in BASELINES:
            print(f"unknown baseline {n!r}; choose from {', '.join(BASELINES)}")
            return 2
        correctors[n] = BASELINES[n]().eval()
    if not correctors:
        print("nothing to evaluate: give a model or at least one baseline")
        return 2
    tables = evaluate_many(correctors, dataset, max_items=args.max_items, progress=not args.quiet)
    source = f"MSEC test set at {args.msec}" if args.msec else "the embedded test photos"
    print(f"Evaluated on {source} ({tables[next(iter(tables))].count()} items)"
          + (f"; model weights: {weights}" if not args.no_model else ""))
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
        "--weights", help="a generator saved with expolib.models.save_generator (default: the shipped one)"
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


__all__ = ["EvaluationTable", "Table", "compare", "evaluate", "evaluate_many", "run_corrector", "add_cli"]
