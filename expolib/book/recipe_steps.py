"""From the design report's recipe to the shipped one, a change at a time, each measured.

:data:`RECIPE_STEPS` lists the changes in order: the report's recipe (a plain U-Net, the book's camera
with input jitter, crops of the photos at one scale), then a residual output, the camera family (no
input jitter), rescaled crops, and the global stage in front of the U-Net. :func:`train_recipe_steps`
trains every step with a few seeds in short runs of the same length (:func:`step_config`, the size of
:func:`~expolib.book.loss_curves.curve_config`) and evaluates each generator on the same held-out items;
the last step is evaluated once more in guided mode, as ``correct`` runs it.
:func:`recipe_steps_table` puts the results in one table, mean ± sd over the seeds at the mis-exposed
levels, with doing nothing as the first row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expolib.book.experiments import format_mean_sd
from expolib.book.loss_curves import curve_config
from expolib.config import Budget
from expolib.evaluation.baselines import Identity
from expolib.evaluation.infer import PhotoCorrector
from expolib.evaluation.protocol import EvaluationTable, Table, evaluate
from expolib.networks.ev_estimator import EVEstimator
from expolib.progress import progress_bar
from expolib.training.config import TrainConfig
from expolib.training.datasets import Source, training_sets
from expolib.training.pix2pix import prepare_pix2pix
from expolib.training.recipe import RECIPE_CROP_SCALE, build_two_stage
from expolib.training.trainer import Trainer

DOING_NOTHING = "doing nothing (identity)"
GUIDED = "+ guided inference"
METRICS = ("psnr", "ssim")


@dataclass(frozen=True)
class RecipeStep:
    """One row of the comparison: its ``label``, a short ``slug`` for its run folders, the settings it
    has reached (:class:`TrainConfig` fields, or network settings such as ``residual``) and whether a
    global stage stands in front of the U-Net."""

    label: str
    slug: str
    settings: dict[str, Any] = field(default_factory=dict)
    global_stage: bool = False


_RESIDUAL = {"residual": True}
_FAMILY = {**_RESIDUAL, "camera": "random"}
_SCALE = {**_FAMILY, "crop_scale": RECIPE_CROP_SCALE}
RECIPE_STEPS: tuple[RecipeStep, ...] = (
    RecipeStep("the report's recipe", "report"),
    RecipeStep("+ residual output", "residual", _RESIDUAL),
    RecipeStep("+ camera family, no input jitter", "family", _FAMILY),
    RecipeStep(f"+ crop scale {RECIPE_CROP_SCALE:g}", "scale", _SCALE),
    RecipeStep("+ global stage", "global-stage", _SCALE, global_stage=True),
)


def step_config(budget: Budget, step: RecipeStep, seed: int, out_dir: str) -> TrainConfig:
    """The short run of one step: :func:`~expolib.book.loss_curves.curve_config`'s size and length with
    the step's settings, validated only at its end."""
    config = curve_config(budget, seed, out_dir, **step.settings)
    return dataclasses.replace(config, validate_every=10**9)


def train_recipe_steps(budget: Budget, estimator: EVEstimator, items: Sequence[Mapping[str, Any]],
                       out_dir: str, seeds: Sequence[int] = (0, 1), steps: Sequence[RecipeStep] = RECIPE_STEPS,
                       progress: bool = True) -> dict[str, list[EvaluationTable]]:
    """Train each step once per seed on the embedded training photos (the global stage's step with a
    copy of ``estimator``) and evaluate its generator in direct mode on ``items``; the last step is also
    evaluated guided (:data:`GUIDED`). Returns the tables per row label, one per seed; runs go to
    ``out_dir/<slug>-seed<seed>``."""
    results: dict[str, list[EvaluationTable]] = {step.label: [] for step in steps}
    results[GUIDED] = []
    runs = [(step, seed) for step in steps for seed in seeds]
    for step, seed in progress_bar(runs, desc="recipe steps", disable=not progress):
        config = step_config(budget, step, seed, str(Path(out_dir) / f"{step.slug}-seed{seed}"))
        model = build_two_stage(config, estimator) if step.global_stage else prepare_pix2pix(config)
        train_set, _ = training_sets(config, Source(), model.device, validation=False)
        trainer = Trainer(config, model, train_set, None, report=lambda message: None)
        trainer.fit()
        generator = trainer.generator.eval()
        results[step.label].append(evaluate(PhotoCorrector(generator, mode="direct"), items, name=step.label,
                                            metrics=METRICS, progress=False))
        if step is steps[-1]:
            results[GUIDED].append(evaluate(PhotoCorrector(generator), items, name=GUIDED, metrics=METRICS,
                                            progress=False))
    return results


def recipe_steps_table(results: Mapping[str, Sequence[EvaluationTable]], items: Sequence[Mapping[str, Any]],
                       ev: Any = "misexposed") -> Table:
    """Doing nothing, then one row per step: PSNR and SSIM (mean ± sd over the seeds) at ``ev``
    (default: the mis-exposed levels together) and each seed's PSNR."""
    identity = evaluate(Identity(), items, metrics=METRICS, progress=False)
    seeds = max(len(tables) for tables in results.values())
    header = ["recipe", "PSNR (dB) ↑", "SSIM ↑", *(f"PSNR, seed {k + 1}" for k in range(seeds))]
    rows: list[list[Any]] = [[DOING_NOTHING, f"{identity.mean('psnr', ev):.2f}", f"{identity.mean('ssim', ev):.3f}",
                              *([""] * seeds)]]
    for label, tables in results.items():
        psnrs = [t.mean("psnr", ev) for t in tables]
        ssims = [t.mean("ssim", ev) for t in tables]
        rows.append([label, format_mean_sd(psnrs, 2), format_mean_sd(ssims, 3),
                     *(f"{v:.2f}" for v in psnrs), *([""] * (seeds - len(psnrs)))])
    title = "held-out photos, mean over the mis-exposed levels" if ev == "misexposed" else f"EV {ev}"
    return Table(header, rows, title=title)


def scores(results: Mapping[str, Sequence[EvaluationTable]], metric: str,
           ev: Any = "misexposed") -> dict[str, list[float]]:
    """Each row's ``metric`` at ``ev``, one value per seed."""
    return {label: [t.mean(metric, ev) for t in tables] for label, tables in results.items()}


__all__ = ["DOING_NOTHING", "GUIDED", "RECIPE_STEPS", "RecipeStep", "recipe_steps_table", "scores",
           "step_config", "train_recipe_steps"]
