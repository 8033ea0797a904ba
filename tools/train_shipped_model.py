#!/usr/bin/env python3
"""Train the two-stage corrector that ships with expolib (``expolib/weights/``), in one command.

1. Fit the global stage, :class:`expolib.networks.ev_estimator.EVEstimator`, on renders of the
   embedded training photos (:func:`expolib.training.ev_fit.fit_ev_estimator`).
2. Train the U-Net of a :class:`expolib.networks.two_stage.TwoStageGenerator` against the PatchGAN
   (BCE + L1) with the library's :class:`~expolib.training.trainer.Trainer`, the estimator frozen, on
   pairs from the camera family: the U-Net learns what the global stage leaves.
3. Export the generator (both stages, float16) with the side it corrects photos at.

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
from expolib.networks.modelfile import save_generator
from expolib.networks.patchgan import PatchConfig
from expolib.networks.unet import UNetConfig
from expolib.training.datasets import Source, training_sets
from expolib.training.ev_fit import EVFitConfig, fit_ev_estimator
from expolib.training.recipe import build_two_stage, recipe_config
from expolib.training.trainer import Trainer

UNET = UNetConfig(ngf=16, depth=7, residual=True)
# the U-Net sees whole scenes at a long side of 192 px: 128 px crops of photos 128-192 px (crop_scale 1.5)


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
    args = parser.parse_args(argv)

    seed_everything(args.seed)
    began = time.perf_counter()
    estimator = fit_ev_estimator(EVFitConfig(examples=args.fit_examples, seed=args.seed), splits=("train",),
                                 log=lambda line: print(line, file=sys.stderr))
    # the recipe (camera family without input jitter, crop_scale 1.5, residual U-Net) at the shipped sizes
    config = recipe_config(
        get_budget("standard"), epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, seed=args.seed, out_dir=args.out,
        generator=UNET, discriminator=PatchConfig(ndf=16), batch_size=8, image_size=128,
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
