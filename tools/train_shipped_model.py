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
import dataclasses
import sys
import time

from expolib.config import get_budget, seed_everything
from expolib.networks.factory import build_discriminator
from expolib.networks.modelfile import save_generator
from expolib.networks.patchgan import PatchConfig
from expolib.networks.two_stage import TwoStageConfig, TwoStageGenerator
from expolib.networks.unet import UNetConfig
from expolib.training.config import TrainConfig
from expolib.training.datasets import Source, training_sets
from expolib.training.ev_fit import EVFitConfig, fit_ev_estimator
from expolib.training.pix2pix import Pix2Pix
from expolib.training.trainer import Trainer

UNET = UNetConfig(ngf=16, depth=7, residual=True)
WORKING_SIDE = 192  # the U-Net sees whole scenes at this long side (128 px crops of photos 128-192 px)


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
    config = TrainConfig.from_budget(
        get_budget("standard"), epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, seed=args.seed, out_dir=args.out,
        camera="random", crop_scale=1.5, generator=UNET, discriminator=PatchConfig(ndf=16),
        batch_size=8, image_size=128,
    )
    runtime = config.runtime()
    seed_everything(args.seed)
    unet = dataclasses.replace(UNET, gemm_upsampling=runtime.gemm_convolutions)  # how it computes, not saved
    generator = TwoStageGenerator(TwoStageConfig(unet=unet, estimator=estimator.config))
    generator.estimator.load_state_dict(estimator.state_dict())
    generator.working_side = WORKING_SIDE
    model = Pix2Pix(generator, build_discriminator(config.discriminator), config, runtime)
    train_set, val_set = training_sets(config, Source(), runtime.device)
    trainer = Trainer(config, model, train_set, val_set, report=lambda line: print(line, file=sys.stderr))
    trainer.fit(resume=args.resume)
    if args.export:
        path = save_generator(trainer.generator, args.export, half=True, working_side=WORKING_SIDE)
        print(f"generator saved to {path}", file=sys.stderr)
    print(f"done in {time.perf_counter() - began:.0f} s on {runtime.device}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
