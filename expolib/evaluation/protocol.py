"""Measure a corrector on held-out photos: PSNR, SSIM and colour difference per exposure level.

:func:`evaluate` runs any corrector (a generator, a baseline, the identity) over a dataset of pairs, one
photo at a time, and returns an :class:`EvaluationTable`: the metrics of every item, their means per
EV level and over the mis-exposed levels. :func:`compare` puts several tables side by side for one
metric; :meth:`EvaluationTable.per_scene` shows where a corrector wins and loses, photo by photo.
No summary averages EV 0 with the other levels: there the input *is* the ground truth, and doing
nothing scores an infinite PSNR that would swamp any mean. EV 0 has its own summary
(:meth:`EvaluationTable.ev0`, :func:`ev0_table`): does a corrector leave a good photo alone? Its mean,
median and worst PSNR, the share of photos returned above :data:`GOOD_PSNR` and the colour error.
A bound (:class:`~expolib.evaluation.baselines.Bound`) is evaluated like a corrector but sees the
target; its table says so and :func:`compare` lists it last.
The command line ``python -m expolib evaluate`` (:mod:`expolib.cli.evaluate`) does this for the shipped
model and every baseline. Correctors follow :mod:`expolib.evaluation.corrector`.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from expolib.evaluation.baselines import Bound
from expolib.evaluation.corrector import Corrector, run_corrector
from expolib.evaluation.metrics import HIGHER_IS_BETTER, METRICS, checkerboard, delta_e00, psnr, ssim
from expolib.imaging.transforms import denormalize
from expolib.progress import progress_bar

METRIC_LABELS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "delta_e00": "ΔE00 ↓",
                 "checkerboard": "checkerboard (1 = as the truth)"}
OVERALL = "all"
MISEXPOSED = "EV ≠ 0"  # label of the mean over the mis-exposed levels, the ones that need correcting
UNKNOWN = "unknown"  # the group of items whose EV is not known (NaN), such as PairFolder's pairs
METRIC_FUNCTIONS = {"psnr": psnr, "ssim": ssim, "delta_e00": delta_e00, "checkerboard": checkerboard}
GOOD_PSNR = 30.0  # dB: a well-exposed photo that comes back above this is left (nearly) alone


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
    sees_target: bool = False  # a bound fitted with the ground truth, not a method

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

    def ev0(self, threshold: float = GOOD_PSNR) -> Optional[dict[str, Any]]:
        """Do no harm: how the well-exposed photos (EV 0, where the input is the ground truth) come back.

        ``count``; ``psnr`` (mean), ``median_psnr``, ``worst_psnr``; ``above`` (how many photos come
        back above ``threshold`` dB) and ``share_above`` (that as a fraction); the mean of every other
        metric held. None when no item is at EV 0. An unchanged photo scores an infinite PSNR.
        """
        records = self.select(0.0)
        if not records:
            return None
        values = [float(r["psnr"]) for r in records] if "psnr" in self.metrics else []
        summary: dict[str, Any] = {"count": len(records)}
        if values:
            above = sum(v > threshold for v in values)
            summary.update(psnr=sum(values) / len(values), median_psnr=float(statistics.median(values)),
                           worst_psnr=min(values), above=above, share_above=above / len(values))
        summary.update({m: self.mean(m, 0.0) for m in self.metrics if m != "psnr"})
        return summary

    def _groups(self) -> list[tuple[str, Union[float, str, None]]]:
        return _ev_groups(self.evs, self.has_unknown)

    def per_scene(self, metric: str = "psnr") -> Table:
        """One row per scene: ``metric`` at each EV level (and the mis-exposed mean), to see which
        photos a corrector handles and which it does not."""
        groups = [(label, ev) for label, ev in self._groups()]
        scenes = sorted({str(r["scene"]) for r in self.records})
        rows = []
        for scene in scenes:
            part = EvaluationTable(self.name, [r for r in self.records if r["scene"] == scene], self.metrics)
            rows.append([scene, *(part.mean(metric, ev) for _, ev in groups)])
        title = f"{self.name}: {METRIC_LABELS[metric]} per scene"
        return Table(["scene", *(label for label, _ in groups)], rows, title=title, digits=_digits(metric))

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

    def ev0_line(self, threshold: float = GOOD_PSNR) -> str:
        """EV 0 in one sentence (median and worst PSNR, photos above ``threshold``); "" without EV 0."""
        summary = self.ev0(threshold)
        if summary is None or "psnr" not in summary:
            return ""
        return (f"EV 0 (do no harm): {summary['above']} of {summary['count']} photos returned above "
                f"{threshold:g} dB; median {_format(summary['median_psnr'], 2)} dB, worst "
                f"{_format(summary['worst_psnr'], 2)} dB.")

    def to_markdown(self) -> str:
        line = self.ev0_line()
        return self.table().to_markdown() + (f"\n\n{line}" if line else "")

    def _repr_html_(self) -> str:
        line = self.ev0_line()
        return self.table()._repr_html_() + (f"<p>{html.escape(line)}</p>" if line else "")

    def __str__(self) -> str:
        return self.to_markdown()


def compare(tables: Mapping[str, EvaluationTable] | Sequence[EvaluationTable], metric: str = "psnr") -> Table:
    """One metric for several correctors: a row per corrector, a column per EV level and the
    mis-exposed mean (or overall, when EV 0 is not mixed in)."""
    named = _named(tables)
    evs = sorted({ev for _, t in named for ev in t.evs})
    groups = _ev_groups(evs, any(t.has_unknown for _, t in named), prefix="EV ")
    header = ["method", *(label for label, _ in groups)]
    rows = [[name, *(t.mean(metric, ev) for _, ev in groups)] for name, t in named]
    return Table(header, rows, title=METRIC_LABELS[metric], digits=_digits(metric))


def ev0_table(tables: Mapping[str, EvaluationTable] | Sequence[EvaluationTable],
              threshold: float = GOOD_PSNR) -> Table:
    """EV 0 on its own, for several correctors: a row per corrector (those with items at EV 0), with
    the mean, median and worst PSNR, how many photos come back above ``threshold`` dB and the mean
    ΔE00 (see :meth:`EvaluationTable.ev0`)."""
    header = ["method", "photos", "PSNR mean", "median", "worst", f"> {threshold:g} dB",
              METRIC_LABELS["delta_e00"]]
    rows = []
    for name, table in _named(tables):
        summary = table.ev0(threshold)
        if summary is None or "psnr" not in summary:
            continue
        share = f"{summary['above']}/{summary['count']} ({100 * summary['share_above']:.0f}%)"
        rows.append([name, summary["count"], summary["psnr"], summary["median_psnr"], summary["worst_psnr"],
                     share, summary.get("delta_e00", float("nan"))])
    title = "EV 0: well-exposed photos, where the input is the ground truth"
    return Table(header, rows, title=title, digits=2)


def _named(
    tables: Mapping[str, EvaluationTable] | Sequence[EvaluationTable],
) -> list[tuple[str, EvaluationTable]]:
    """(name, table) pairs in the given order, bounds (which see the target) last."""
    named = list(tables.items()) if isinstance(tables, Mapping) else [(t.name, t) for t in tables]
    return sorted(named, key=lambda pair: pair[1].sees_target)  # a stable sort keeps the order


def _digits(metric: str) -> int:
    return 3 if metric in ("ssim", "checkerboard") else 2


def _ev_groups(evs: Sequence[float], has_unknown: bool,
               prefix: str = "") -> list[tuple[str, Union[float, str, None]]]:
    """The columns of a summary: each EV level, then the mis-exposed levels together when EV 0 is
    among them (and then no overall mean, which would average in EV 0), the unknown EVs, and overall."""
    groups: list[tuple[str, Union[float, str, None]]] = [(f"{prefix}{_ev_label(ev)}", ev) for ev in evs]
    with_ev0 = any(ev == 0 for ev in evs) and len(evs) > 1
    if with_ev0:
        groups.append((MISEXPOSED, "misexposed"))
    if has_unknown:
        groups.append((f"{prefix}{UNKNOWN}", UNKNOWN))
    return groups if with_ev0 else [*groups, (OVERALL, None)]


def evaluate(
    corrector: Union[Corrector, Bound],
    dataset: Iterable[Mapping[str, Any]],
    *,
    name: Optional[str] = None,
    max_items: Optional[int] = None,
    metrics: Sequence[str] = METRICS,
    progress: bool = True,
) -> EvaluationTable:
    """Run ``corrector`` on every item of ``dataset`` and measure PSNR, SSIM and ΔE00 against the target.

    ``dataset`` yields items ``{"input", "target", "ev", "scene"}`` (normalised images of any size, such
    as ``EmbeddedPairs(split="test", size=None)``). ``corrector`` may be a
    :class:`~expolib.evaluation.baselines.Bound`, which is given the target too. ``name`` labels the
    table (default: the corrector's ``name`` attribute or class name); ``max_items`` stops early;
    ``metrics`` picks a subset of ``("psnr", "ssim", "delta_e00")`` (PSNR alone is much cheaper than
    SSIM and ΔE00).
    """
    unknown = [m for m in metrics if m not in METRIC_FUNCTIONS]
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(METRICS)}")
    label = name or getattr(corrector, "name", None) or type(corrector).__name__
    bound = isinstance(corrector, Bound)
    table = EvaluationTable(name=str(label), metrics=tuple(metrics), sees_target=bound)
    total = len(dataset) if hasattr(dataset, "__len__") else None  # type: ignore[arg-type]
    if max_items is not None and total is not None:
        total = min(total, max_items)
    bar = progress_bar(dataset, total=total, desc=f"evaluating {label}", disable=not progress, leave=False)
    for index, item in enumerate(bar):
        if max_items is not None and index >= max_items:
            break
        if bound:
            output = corrector(item["input"], item["target"])  # type: ignore[call-arg]
        else:
            output = run_corrector(corrector, item["input"])
        result, target = denormalize(output), denormalize(item["target"].float().cpu())
        scores = {m: METRIC_FUNCTIONS[m](result, target) for m in metrics}
        table.records.append({"index": index, "scene": str(item["scene"]), "ev": float(item["ev"]), **scores})
    bar.close()
    return table


def evaluate_many(
    correctors: Mapping[str, Union[Corrector, Bound]], dataset: Sequence[Mapping[str, Any]], **kwargs: Any
) -> dict[str, EvaluationTable]:
    """:func:`evaluate` for each named corrector on the same dataset."""
    return {name: evaluate(c, dataset, name=name, **kwargs) for name, c in correctors.items()}


__all__ = ["GOOD_PSNR", "EvaluationTable", "Table", "compare", "ev0_table", "evaluate", "evaluate_many"]
