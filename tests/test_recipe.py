"""The shipped recipe at a small size, as chapter 6 calls it: fit the global stage, train the U-Net
behind it, and beat doing nothing on held-out photos; and the pieces that make it the shipped recipe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from expolib.book.recipe_steps import GUIDED, RECIPE_STEPS
from expolib.config import get_budget
from expolib.data.rendered import EmbeddedPairs
from expolib.evaluation.baselines import Identity
from expolib.evaluation.infer import PhotoCorrector
from expolib.evaluation.protocol import evaluate
from expolib.imaging.transforms import resize_long_side
from expolib.networks.ev_estimator import LEAVE_ALONE_EV, exposure_features
from expolib.networks.modelfile import MODEL_CARD_PATH, load_pretrained, working_side_for
from expolib.networks.two_stage import TwoStageGenerator
from expolib.training.datasets import Source, training_sets
from expolib.training.ev_fit import DEFAULT_FIT, EVFitConfig, fit_ev_estimator
from expolib.training.recipe import (
    RECIPE_CROP_SCALE,
    SHIPPED_RUN,
    RecipeRun,
    build_two_stage,
    global_stage_fit,
    recipe_config,
)
from expolib.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SMALL_FIT = EVFitConfig(examples=192, crop_side=(48, 96), photo_side=192, epochs=30)
SIDE = 64  # long side of the held-out photos


@pytest.fixture(scope="module")
def estimator():
    return fit_ev_estimator(SMALL_FIT, log=None)


def test_a_short_run_of_the_recipe_beats_doing_nothing_at_every_misexposed_level(estimator, tmp_path) -> None:
    """Chapter 6's claim, at a small size: the two-stage corrector, run as `correct` runs it, beats
    doing nothing in PSNR and in SSIM at every mis-exposed EV on the validation photos."""
    config = recipe_config(get_budget("quick"), epochs=1, steps_per_epoch=3, out_dir=str(tmp_path), progress=False)
    model = build_two_stage(config, estimator)
    train_set, _ = training_sets(config, Source(), model.device, validation=False)
    Trainer(config, model, train_set, report=lambda line: None).fit()
    items = list(EmbeddedPairs(split="val", size=None, augment=False, max_side=SIDE))
    nothing = evaluate(Identity(), items, metrics=("psnr", "ssim"), progress=False)
    corrected = evaluate(PhotoCorrector(model.generator.eval()), items, metrics=("psnr", "ssim"), progress=False)
    misexposed = [ev for ev in nothing.evs if ev != 0]
    assert len(misexposed) == 4
    for metric in ("psnr", "ssim"):
        for ev in misexposed:
            assert corrected.mean(metric, ev) > nothing.mean(metric, ev), (metric, ev)


def test_build_two_stage_holds_a_frozen_copy_of_the_estimator_and_repeats_for_a_seed(estimator, tmp_path) -> None:
    config = recipe_config(get_budget("quick"), out_dir=str(tmp_path))
    a, b = build_two_stage(config, estimator), build_two_stage(config, estimator)
    generator = a.generator
    assert isinstance(generator, TwoStageGenerator) and generator.config.threshold == LEAVE_ALONE_EV
    assert generator.config.unet.residual and not any(p.requires_grad for p in generator.estimator.parameters())
    for name, value in estimator.state_dict().items():
        assert torch.equal(generator.estimator.state_dict()[name], value)
    assert generator.working_side == working_side_for(config.image_size, RECIPE_CROP_SCALE)
    for x, y in ((a.generator, b.generator), (a.discriminator, b.discriminator)):
        assert all(torch.equal(p, q) for p, q in zip(x.state_dict().values(), y.state_dict().values()))


def test_the_recipe_is_the_shipped_one_at_the_budgets_size() -> None:
    for name in ("quick", "standard", "full"):
        budget = get_budget(name)
        config = recipe_config(budget)
        assert config.camera == "random" and config.crop_scale == RECIPE_CROP_SCALE
        assert (config.generator.ngf, config.generator.depth, config.generator.residual) == \
            (budget.ngf, budget.depth, True)
        assert (config.image_size, config.batch_size) == (budget.image_size, budget.batch_size)
    full = global_stage_fit(get_budget("full"))
    assert (full.examples, full.epochs) == (DEFAULT_FIT.examples, DEFAULT_FIT.epochs)  # the shipped fit
    assert global_stage_fit(get_budget("quick")).examples < global_stage_fit(get_budget("standard")).examples


def test_the_shipped_model_is_trained_through_the_same_functions() -> None:
    tool = (ROOT / "tools" / "train_shipped_model.py").read_text()
    assert "build_two_stage(config, estimator)" in tool and "recipe_config(" in tool
    assert "TwoStageGenerator(" not in tool  # one code path: no second way of building it


def test_the_shipped_run_record_agrees_with_the_model_card(tmp_path) -> None:
    card = (ROOT / "expolib" / "weights" / "MODEL_CARD.md").read_text()
    steps = re.search(r"\(([\d,]+) steps\)", card)
    assert steps and int(steps.group(1).replace(",", "")) == SHIPPED_RUN.steps
    assert f"{SHIPPED_RUN.fit_examples:,} random crops" in card
    assert f"batch {SHIPPED_RUN.batch_size}," in card
    assert f"{SHIPPED_RUN.image_size}x{SHIPPED_RUN.image_size} crops" in card
    photos = re.search(r"renders of (\d+) embedded training photos", SHIPPED_RUN.data)
    assert photos and f"({photos.group(1)} photos of" in card
    path = SHIPPED_RUN.save(tmp_path / "run.json")
    assert RecipeRun.load(path) == SHIPPED_RUN and SHIPPED_RUN.pairs == SHIPPED_RUN.steps * SHIPPED_RUN.batch_size


def test_the_model_card_states_the_sides_the_shipped_global_stage_reads() -> None:
    """The sides the card gives for the estimator's copies (histograms, noise cue) and for guided
    correction are the shipped file's, and the estimator reads them: a photo twice the histogram side
    gives the same histogram features as its copy at that side, and a noise cue of its own."""
    card = MODEL_CARD_PATH.read_text()
    model = load_pretrained()
    side, noise_side = model.config.estimator.side, model.config.estimator.noise_side
    assert f"from a copy at a long side of {side} px" in card
    assert f"from the photo at a long side of at most {noise_side} px (never enlarged)" in card
    assert f"Its histograms read a {side} px copy at every size" in card
    assert f"`correct` runs it guided: at a long side of {model.working_side} px" in card
    assert not re.search(r"reads a \d+ px copy of the photo", card)  # one place says which copy, not two
    photo = torch.rand(1, 3, 2 * side, 2 * side, generator=torch.Generator().manual_seed(0))
    copy = resize_long_side(photo, side)
    big, small = (exposure_features(p, model.config.estimator) for p in (photo, copy))
    noise = model.config.estimator.noise_bands
    assert torch.allclose(big[:, :-noise], small[:, :-noise], atol=1e-4)  # the histograms read the copy
    assert not torch.allclose(big[:, -noise:], small[:, -noise:], atol=1e-2)  # the noise cue does not


def test_each_recipe_step_keeps_the_changes_before_it() -> None:
    assert RECIPE_STEPS[0].settings == {} and not RECIPE_STEPS[0].global_stage
    for before, after in zip(RECIPE_STEPS, RECIPE_STEPS[1:]):
        assert before.settings.items() <= after.settings.items()
        assert (before.settings, before.global_stage) != (after.settings, after.global_stage)
    assert RECIPE_STEPS[-1].global_stage and RECIPE_STEPS[-1].settings == {
        "residual": True, "camera": "random", "crop_scale": RECIPE_CROP_SCALE}
    assert GUIDED not in {step.label for step in RECIPE_STEPS}
    assert len({step.slug for step in RECIPE_STEPS}) == len(RECIPE_STEPS)
