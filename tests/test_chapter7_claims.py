"""What chapter 7's computed sentences rely on: the library behaviour behind each claim it prints.

The chapter prints its verdicts from the tables it computes (no number is typed into its prose); these
tests check that the tables mean what the sentences say they mean, on small images so they stay quick.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter

from expolib.data.photos import EMBEDDED_SPLIT
from expolib.data.rendered import EmbeddedPairs
from expolib.evaluation.baselines import BASELINES, Identity, make_baseline
from expolib.evaluation.infer import PhotoCorrector, correct
from expolib.evaluation.metrics import checkerboard
from expolib.evaluation.protocol import MISEXPOSED, OVERALL, compare, evaluate
from expolib.imaging.camera import DEFAULT_FAMILY, HELD_OUT_CAMERA
from expolib.imaging.imageio import to_uint8_image
from expolib.imaging.transforms import denormalize
from expolib.networks.unet import UNetConfig, UNetGenerator

BOOK = Path(__file__).resolve().parents[1] / "book"
SIDE = 48  # long side of the test photos here: the claims do not depend on the size


def _chapter_code(name: str) -> str:
    cells = json.loads((BOOK / name).read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.fixture(scope="module")
def renderings() -> dict[str, list[dict]]:
    """The test split rendered as chapter 7 renders it: by the book's camera and the held-out one."""
    plain = EmbeddedPairs(split="test", size=None, augment=False, max_side=SIDE)
    held = EmbeddedPairs(split="test", size=None, augment=False, max_side=SIDE, camera=HELD_OUT_CAMERA)
    return {"plain": list(plain), "held-out": list(held)}


def test_the_test_scenes_were_never_trained_or_validated_on() -> None:
    test = set(EMBEDDED_SPLIT["test"])
    assert test and not test & set(EMBEDDED_SPLIT["train"]) and not test & set(EMBEDDED_SPLIT["val"])


@pytest.mark.parametrize("camera", ["plain", "held-out"])
def test_at_ev0_doing_nothing_is_perfect_and_elsewhere_it_is_not(renderings, camera: str) -> None:
    """'At EV 0 the input is the ground truth': doing nothing scores (near) infinite PSNR there only."""
    table = evaluate(Identity(), renderings[camera], metrics=("psnr",), progress=False)
    assert table.mean("psnr", 0.0) > 100  # the photo itself, up to float rounding
    assert all(table.mean("psnr", ev) < 40 for ev in table.evs if ev != 0)


def test_no_summary_mixes_ev0_with_the_misexposed_levels(renderings) -> None:
    tables = {n: evaluate(make_baseline(n), renderings["plain"], metrics=("psnr",), progress=False)
              for n in ("identity", "gamma")}
    header = compare(tables, "psnr").header
    assert MISEXPOSED in header and OVERALL not in header
    identity = tables["identity"]
    misexposed = [r["psnr"] for r in identity.records if r["ev"] != 0]
    assert math.isfinite(identity.mean("psnr", "misexposed"))
    assert identity.mean("psnr", "misexposed") == pytest.approx(sum(misexposed) / len(misexposed))


def test_per_scene_has_one_row_per_test_photo_and_a_misexposed_column(renderings) -> None:
    table = evaluate(Identity(), renderings["plain"], metrics=("psnr",), progress=False)
    per_scene = table.per_scene("psnr")
    assert [row[0] for row in per_scene.rows] == sorted(EMBEDDED_SPLIT["test"])
    assert per_scene.header[-1] == MISEXPOSED


def test_photo_corrector_gives_what_correct_gives(renderings) -> None:
    """'PhotoCorrector runs the generator exactly as python -m expolib correct does', in both modes."""
    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(ngf=4, depth=4, residual=True)).eval()
    model.working_side = 32
    item = renderings["plain"][0]
    photo = to_uint8_image(item["input"], normalized=True)
    for mode in ("guided", "direct"):
        ours = PhotoCorrector(model, mode)(item["input"].unsqueeze(0))[0]
        expected = correct(model, photo, mode=mode)
        assert np.array_equal(to_uint8_image(ours, normalized=True), expected), mode
    assert "32 px" in PhotoCorrector(model).name and "direct" in PhotoCorrector(model, "direct").name


def test_the_checkerboard_measure_reads_as_the_chapter_says() -> None:
    """1 for the truth itself, well above 1 for a faint two-pixel pattern, below 1 for a blur (at the
    quick budget's evaluation size, as in the chapter: on a photo of a few dozen pixels the borders weigh
    too much for the blur's share of period-2 energy to mean anything)."""
    item = EmbeddedPairs(split="test", size=None, augment=False, max_side=96)[2]
    truth = denormalize(item["target"]).permute(1, 2, 0).double().numpy()
    yy, xx = np.indices(truth.shape[:2])
    faint = np.clip(truth + 0.02 * (-1.0) ** (yy + xx)[..., None], 0, 1)
    blurred = uniform_filter(truth, size=(3, 3, 1))  # the chapter's 3x3 blur (reflecting borders)
    assert checkerboard(truth, truth) == pytest.approx(1.0)
    assert checkerboard(faint, truth) > 2.0
    assert checkerboard(blurred, truth) < 1.0


def test_the_held_out_camera_is_outside_the_training_family() -> None:
    responses = {DEFAULT_FAMILY.sample(torch.Generator().manual_seed(k)).response for k in range(50)}
    assert HELD_OUT_CAMERA.response not in responses


def test_doing_nothing_is_one_of_the_baselines_the_verdicts_compare_with() -> None:
    assert "identity" in BASELINES and make_baseline("identity").name == "identity"


def test_chapter7_evaluates_the_file_chapter6_exports() -> None:
    """'Chapter 7 evaluates your chapter 6 run': both chapters name the same file, next to the notebooks."""
    ch6, ch7 = _chapter_code("06_training.ipynb"), _chapter_code("07_evaluation.ipynb")
    assert 'RUNS = Path("runs", "chapter06")' in ch6
    assert re.search(r'save_generator\(trainer\.generator, RUNS / "generator\.safetensors"\)', ch6)
    assert 'Path("runs", "chapter06", "generator.safetensors")' in ch7
    assert "PhotoCorrector(model)" in ch7 and 'PhotoCorrector(model, mode="direct")' in ch7


def test_chapter8_evaluates_the_same_generator_by_the_same_rule() -> None:
    """'Chapter 8 uses chapter 7's rule': the chapter 6 file in the full budget (or USE_OWN), else the
    shipped one."""
    ch7, ch8 = _chapter_code("07_evaluation.ipynb"), _chapter_code("08_alternatives.ipynb")
    for code in (ch7, ch8):
        assert 'Path("runs", "chapter06", "generator.safetensors")' in code
        assert 'USE_OWN == "auto" and budget.name == "full"' in code


@pytest.mark.parametrize("chapter", ["01_exposure_and_data.ipynb", "06_training.ipynb", "07_evaluation.ipynb"])
def test_the_training_chapters_take_their_pairs_from_training_pairs(chapter: str) -> None:
    """'Trained on MSEC when it is present': the chapters get their pairs from the one function that
    chooses MSEC or the embedded photos, and print which."""
    code = _chapter_code(chapter)
    assert "training_pairs(" in code and "trained_on" in code
