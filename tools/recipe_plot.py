#!/usr/bin/env python3
"""Compare the recipes tried for the shipped model: do no harm (EV 0) against correction (EV ≠ 0).

Each recipe is a generator file; each is evaluated the way ``python -m expolib correct`` runs it, on
the embedded test photos rendered by the three cameras of ``python -m expolib evaluate``, beside
doing nothing, a global gamma and auto levels (and, for a two-stage generator, its global stage
alone). The figure puts the mean PSNR over the mis-exposed levels on the x axis and the EV 0 PSNR on
the y axis (median photo as a marker, worst photo as the end of a line below it; a photo returned
unchanged scores an infinite PSNR and is drawn at the top edge). The table prints the same numbers.

Usage (the model card's figure)::

    python tools/recipe_plot.py --out expolib/weights/recipes.png \\
        "report recipe=old/report.safetensors" "two-stage=expolib/weights/generator_small.safetensors"

This is a maintainer script: the older generators are in the project's history, not shipped.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from expolib.data.rendered import EmbeddedPairs  # noqa: E402
from expolib.evaluation.baselines import BASELINES  # noqa: E402
from expolib.evaluation.infer import PhotoCorrector  # noqa: E402
from expolib.evaluation.protocol import evaluate_many  # noqa: E402
from expolib.imaging.camera import FILM_CAMERA, HELD_OUT_CAMERA  # noqa: E402
from expolib.networks.modelfile import load_generator  # noqa: E402
from expolib.networks.two_stage import GlobalStageAlone  # noqa: E402

CAMERAS = {"book's camera": None, "held-out camera": HELD_OUT_CAMERA, "film camera": FILM_CAMERA}
BASELINE_ROWS = ("identity", "gamma", "autolevels")
TOP = 60.0  # dB: where an unchanged photo (infinite PSNR) is drawn


def _capped(value: float) -> float:
    return TOP if math.isinf(value) else min(value, TOP)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", metavar="LABEL=WEIGHTS", help="a generator file per recipe")
    parser.add_argument("--out", default="recipes.png", help="where the figure goes")
    parser.add_argument("--side", type=int, default=256, help="long side of the test photos")
    args = parser.parse_args(argv)

    correctors = {}
    for spec in args.recipes:
        label, _, path = spec.partition("=")
        if not path:
            parser.error(f"{spec!r}: expected LABEL=WEIGHTS")
        network = load_generator(Path(path))
        correctors[label] = PhotoCorrector(network, "guided")
        if getattr(network, "global_stage", None) is not None:
            correctors[f"{label}: global stage alone"] = PhotoCorrector(GlobalStageAlone(network), "guided")
    for name in BASELINE_ROWS:
        correctors[name] = BASELINES[name]().eval()

    fig, axes = plt.subplots(1, len(CAMERAS), figsize=(5.2 * len(CAMERAS), 5.4), sharey=True)
    print("| camera | corrector | PSNR EV ≠ 0 | SSIM EV ≠ 0 | EV 0 median | EV 0 worst | EV 0 > 30 dB |")
    print("|---|---|---|---|---|---|---|")
    for ax, (camera_name, camera) in zip(axes, CAMERAS.items()):
        dataset = EmbeddedPairs(split="test", size=None, augment=False, max_side=args.side, camera=camera)
        tables = evaluate_many(correctors, dataset, metrics=("psnr", "ssim"), progress=False)
        for k, (name, table) in enumerate(tables.items()):
            ev0 = table.ev0()
            x = table.mean("psnr", "misexposed")
            print(f"| {camera_name} | {name} | {x:.2f} | {table.mean('ssim', 'misexposed'):.3f} | "
                  f"{ev0['median_psnr']:.1f} | {ev0['worst_psnr']:.1f} | {ev0['above']}/{ev0['count']} |")
            median, worst = _capped(ev0["median_psnr"]), _capped(ev0["worst_psnr"])
            colour = f"C{k % 10}"
            ax.plot([x, x], [worst, median], color=colour, lw=1.5, alpha=0.7)
            ax.plot([x], [median], "o" if name not in BASELINE_ROWS else "s", color=colour, label=name)
        ax.axhline(30.0, color="grey", ls=":", lw=1)
        ax.set_title(camera_name)
        ax.set_xlabel("mean PSNR over EV ≠ 0 (dB) →")
    axes[0].set_ylabel(f"EV 0 PSNR (dB) ↑, {TOP:g} = unchanged")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"Recipes on the {len(dataset) // 5} test photos (long side {args.side} px): up leaves a "
                 "good photo alone, right corrects a bad one; marker: median photo at EV 0, line: down to "
                 "the worst", fontsize=10)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(args.out, dpi=110)
    print(f"figure written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
