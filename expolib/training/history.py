"""What a training run logged, per batch and per epoch, in memory and in ``history.jsonl``."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]
BATCH_FIELDS = ("epoch", "step", "lr")  # what a batch row holds besides the step's loss terms


@dataclass
class History:
    """What a run logged: one dict per batch and one per epoch (plain floats and ints).

    Per batch: ``epoch``, ``step`` (global), ``lr`` and every loss term the step returned, by name
    (pix2pix's: ``g_adv``, ``g_l1``, ``d_real``, ``d_fake``). Per epoch: ``epoch``, ``steps``, ``lr``,
    the means of the loss terms, ``seconds``, ``images_per_second``, and ``val_l1`` / ``val_psnr``
    when there is a validation set (else NaN).
    """

    batches: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)

    def terms(self) -> list[str]:
        """The names of the loss terms the batch rows hold, in the step's order."""
        return [key for key in (self.batches[0] if self.batches else {}) if key not in BATCH_FIELDS]

    def term_means(self, epoch: int, last: Optional[int] = None) -> dict[str, float]:
        """The mean of each loss term over the batch rows of ``epoch`` (only the ``last`` rows looked
        at, when given); NaN for an epoch without rows."""
        rows = self.batches[-last:] if last else self.batches
        rows = [row for row in rows if row["epoch"] == epoch]
        return {key: float(np.mean([row[key] for row in rows])) if rows else math.nan for key in self.terms()}

    def add_epoch(self, epoch: int, lr: float, metrics: dict[str, float], seconds: float,
                  images: int) -> dict[str, float]:
        """Append and return the row of a finished ``epoch``: its steps and loss terms' means over its
        batch rows (those before a resume included), ``metrics`` (validation), the seconds it took and
        the ``images`` it trained on per second."""
        steps = sum(row["epoch"] == epoch for row in self.batches)
        row = {"epoch": epoch, "steps": steps, "lr": lr, **self.term_means(epoch), **metrics,
               "seconds": seconds, "images_per_second": images / seconds if seconds > 0 else math.nan}
        self.epochs.append(row)
        return row

    def column(self, key: str, per: str = "batch") -> list[float]:
        """One value per batch (``per="batch"``) or per epoch (``per="epoch"``)."""
        rows = {"batch": self.batches, "epoch": self.epochs}.get(per)
        if rows is None:
            raise ValueError(f"per must be 'batch' or 'epoch', got {per!r}")
        # None is how JSON writes NaN: read it back as NaN, whatever produced the rows
        return [math.nan if row[key] is None else float(row[key]) for row in rows]

    def to_dict(self) -> dict[str, list[dict[str, float]]]:
        """Plain lists of plain dicts, for checkpoints."""
        return {"batches": [dict(r) for r in self.batches], "epochs": [dict(r) for r in self.epochs]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        """The inverse of :meth:`to_dict`."""
        return cls(list(values.get("batches", [])), list(values.get("epochs", [])))

    def write_jsonl(self, path: Path, written: tuple[int, int] = (0, 0)) -> tuple[int, int]:
        """Append the rows after the first ``written`` (batches, epochs) to ``path`` (rewrite it when
        nothing was written yet); return the new counts, for the next call."""
        mode = "a" if written != (0, 0) else "w"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode, encoding="utf-8") as handle:
            for row in self.batches[written[0]:]:
                handle.write(_json_line("batch", row))
            for row in self.epochs[written[1]:]:
                handle.write(_json_line("epoch", row))
        return len(self.batches), len(self.epochs)

    @classmethod
    def load(cls, path: PathLike) -> History:
        """Read the ``history.jsonl`` a :class:`Trainer` writes (one ``{"kind": ...}`` object a line)."""
        history = cls()
        path = Path(path)
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = {k: (math.nan if v is None else v) for k, v in json.loads(line).items()}
                    kind = row.pop("kind")
                    {"batch": history.batches, "epoch": history.epochs}[kind].append(row)
                except (ValueError, KeyError) as error:
                    raise ValueError(f"{path}, line {number}: not a history record ({error})") from error
        return history


def _json_line(kind: str, row: dict[str, float]) -> str:
    # NaN is not JSON: write it as null so that other tools can read the file
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    return json.dumps({"kind": kind, **clean}) + "\n"


__all__ = ["BATCH_FIELDS", "History"]
