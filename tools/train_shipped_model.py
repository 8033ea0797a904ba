#!/usr/bin/env python3
"""Train the two-stage corrector that ships with expolib (``expolib/weights/``), in one command.

1. Fit the global stage, :class:`expolib.networks.ev_estimator.EVEstimator`, on renders of the
   embedded training photos (:func:`expolib.training.ev_fit.fit_ev_estimator`).
2. Train the U-Net of a :class:`expolib.networks.two_stage.TwoStageGenerator` against the PatchGAN
   (BCE + L1) with the library's :class:`~expolib.training.trainer.Trainer`, the estimator frozen, on
   pairs from the camera family: the U-Net learns what the global stage leaves.
3. Export the generator (both stages, float16) with the side it corrects photos at.

The global stage is fitted on the training and validation photos together; its leave-alone threshold
(:data:`expolib.networks.ev_estimator.LEAVE_ALONE_EV`) was chosen before that, with
``--choose-threshold``: an estimator fitted on the training photos alone, its global stage evaluated
on the validation photos (three cameras, long side 256 px) at each candidate threshold.

Usage::

    python tools/train_shipped_model.py --out runs/shipped \\
        --export expolib/weights/generator_small.safetensors

This is a maintainer script: the settings below are the shipped model's; the model card gives the
command, the time it took and on what machine.
"""

from __future__ import annotations

import argparse
import sys
import time

from expolib.config import get_budget, seed_everything
from expolib.networks.ev_estimator import EVEstimator
from expolib.networks.factory import build_generator
from expolib.networks.modelfile import save_generator
from expolib.networks.patchgan import PatchConfig
from expolib.networks.two_stage import GlobalStageAlone, TwoStageConfig
from expolib.networks.unet import UNetConfig
from expolib.training.datasets import Source, training_sets
from expolib.training.ev_fit import EVFitConfig, fit_ev_estimator
from expolib.training.recipe import build_two_stage, recipe_config
from expolib.training.trainer import Trainer

UNET = UNetConfig(ngf=16, depth=7, residual=True)
# the U-Net sees whole scenes at a long side of 192 px: 128 px crops of photos 128-192 px (crop_scale 1.5)
CANDIDATE_THRESHOLDS = (0.5, 0.75, 1.0)
TIE_DB = 0.1  # within this of the best mean PSNR over the mis-exposed levels counts as a tie


def choose_threshold(estimator: EVEstimator, side: int = 256) -> float:
    """Evaluate the global stage alone on the validation photos at each candidate threshold (three
    cameras); print the scores and return the largest threshold that ties with the best."""
    from expolib.data.rendered import EmbeddedPairs
    from expolib.evaluation.infer import PhotoCorrector
    from expolib.evaluation.protocol import evaluate_many
    from expolib.imaging.camera import FILM_CAMERA, HELD_OUT_CAMERA

    cameras = {"book": None, "held-out": HELD_OUT_CAMERA, "film": FILM_CAMERA}
    scores: dict[float, float] = {}
    print("| threshold | camera | PSNR EV ≠ 0 | SSIM EV ≠ 0 | EV 0 median | EV 0 worst |")
    print("|---|---|---|---|---|---|")
    for threshold in CANDIDATE_THRESHOLDS:
        stages = TwoStageConfig(unet=UNET, estimator=estimator.config, threshold=threshold)
        generator = build_generator(stages)
        generator.estimator.load_state_dict(estimator.state_dict())
        alone = {"global stage": PhotoCorrector(GlobalStageAlone(generator.eval()), "guided")}
        per_camera = []
        for name, camera in cameras.items():
            dataset = EmbeddedPairs(split="val", size=None, augment=False, max_side=side, camera=camera)
            table = evaluate_many(alone, dataset, metrics=("psnr", "ssim"), progress=False)["global stage"]
            ev0 = table.ev0()
            per_camera.append(table.mean("psnr", "misexposed"))
            print(f"| {threshold} | {name} | {per_camera[-1]:.2f} | {table.mean('ssim', 'misexposed'):.3f} | "
                  f"{ev0['median_psnr']:.1f} | {ev0['worst_psnr']:.1f} |")
        scores[threshold] = sum(per_camera) / len(per_camera)
    best = max(scores.values())
    chosen = max(t for t, score in scores.items() if score >= best - TIE_DB)
    print(f"chosen: {chosen} EV (the largest within {TIE_DB} dB of the best mean over the cameras, "
          f"{best:.2f} dB)")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/shipped", help="run folder (checkpoints, history)")
    parser.add_argument("--export", default=None, help="write the generator here (float16 safetensors)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--steps-per-epoch", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--fit-examples", type=int, default=EVFitConfig.examples,
                        help="renders the global stage is fitted on")
    parser.add_argument("--fit-splits", default="train,val",
                        help="embedded splits the global stage is fitted on (default: train,val)")
    parser.add_argument("--choose-threshold", action="store_true",
                        help="fit the global stage on the training photos, print its scores on the "
                             "validation photos at each candidate threshold, and stop")
    args = parser.parse_args(argv)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731

    if args.choose_threshold:
        seed_everything(args.seed)
        fit = EVFitConfig(examples=args.fit_examples, seed=args.seed)
        estimator = fit_ev_estimator(fit, splits=("train",), log=log)
        choose_threshold(estimator)
        return 0

    seed_everything(args.seed)
    began = time.perf_counter()
    splits = tuple(split for split in args.fit_splits.split(",") if split)
    fit = EVFitConfig(examples=args.fit_examples, seed=args.seed)
    estimator = fit_ev_estimator(fit, splits=splits, log=log)
    # the recipe (camera family without input jitter, crop_scale 1.5, residual U-Net) at the shipped sizes
    config = recipe_config(
        get_budget("standard"), epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, seed=args.seed,
        out_dir=args.out, generator=UNET, discriminator=PatchConfig(ndf=16), batch_size=8, image_size=128,
    )
    model = build_two_stage(config, estimator)  # seeds with config.seed, then builds both networks
    train_set, val_set = training_sets(config, Source(), model.device)
    trainer = Trainer(config, model, train_set, val_set, report=lambda line: print(line, file=sys.stderr))
    trainer.fit(resume=args.resume)
    if args.export:
        side = trainer.generator.working_side
        path = save_generator(trainer.generator, args.export, half=True, working_side=side)
        print(f"generator saved to {path} (working side {side} px)", file=sys.stderr)
    print(f"done in {time.perf_counter() - began:.0f} s on {model.device}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
