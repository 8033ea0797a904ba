"""Full-resolution correction: guided vs direct, no seams between bands, the `correct` command."""

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from expolib.benchmarks import fullres
from expolib.benchmarks.fullres import benchmark_fullres
from expolib.cli.correct import add_cli
from expolib.evaluation.baselines import GlobalGamma, Identity
from expolib.evaluation.infer import apply_affine, correct, fit_local_affine
from expolib.evaluation.metrics import psnr
from expolib.imaging.exposure import render_exposure
from expolib.networks import modelfile
from expolib.networks.modelfile import save_generator
from expolib.networks.unet import UNetConfig, UNetGenerator


@pytest.fixture(scope="module")
def dark_photo() -> np.ndarray:
    return render_exposure(data.chelsea(), -1.5)  # 300 x 451


def test_guided_and_direct_agree_closely_for_a_colour_transform(dark_photo: np.ndarray) -> None:
    gamma = GlobalGamma()
    direct = correct(gamma, dark_photo, mode="direct")
    # In guided mode the corrector sees about an eighth of the pixels.
    guided = correct(gamma, dark_photo, mode="guided", working_side=160)
    assert guided.shape == direct.shape == dark_photo.shape and guided.dtype == np.uint8
    assert psnr(guided, direct) > 35
    assert psnr(guided, dark_photo) < 20  # and the correction really happened


@pytest.mark.skipif(not modelfile.pretrained_available(), reason="the shipped generator weights are missing")
def test_guided_and_direct_agree_for_the_shipped_generator(dark_photo: np.ndarray) -> None:
    model = modelfile.load_pretrained()
    direct = correct(model, dark_photo, mode="direct")
    guided = correct(model, dark_photo, mode="guided", working_side=256)
    assert psnr(guided, direct) > 27


def test_guided_mode_has_no_seams_between_bands(dark_photo: np.ndarray) -> None:
    gamma = GlobalGamma()
    whole = correct(gamma, dark_photo, mode="guided", working_side=96, tile_rows=None)
    for rows in (7, 64, 299):
        banded = correct(gamma, dark_photo, mode="guided", working_side=96, tile_rows=rows)
        assert np.array_equal(banded, whole), rows


def test_the_local_affine_fit_reproduces_an_affine_colour_change() -> None:
    guide = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    matrix = torch.tensor([[0.8, 0.1, 0.0], [0.05, 0.9, 0.1], [0.0, 0.1, 0.7]])
    output = torch.einsum("ij,nihw->njhw", matrix, guide) + 0.05
    coeffs = fit_local_affine(guide, output, radius=2, eps=1e-6)
    assert torch.allclose(apply_affine(coeffs, guide), output, atol=2e-3)


def test_identity_is_kept_in_both_modes(dark_photo: np.ndarray) -> None:
    assert np.array_equal(correct(Identity(), dark_photo, mode="direct"), dark_photo)
    # Guided: the fitted colour model reproduces "no change" up to rounding and the small eps shrinkage.
    assert psnr(correct(Identity(), dark_photo, working_side=128), dark_photo) > 42


def test_bad_arguments_are_refused(dark_photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        correct(Identity(), dark_photo.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="unknown mode"):
        correct(Identity(), dark_photo, mode="fast")


def test_load_pretrained_names_the_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.safetensors"
    monkeypatch.setattr(modelfile, "PRETRAINED_PATH", missing)
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        modelfile.load_pretrained()


@pytest.mark.slow
def test_direct_mode_needs_more_memory_than_guided_mode_for_a_large_photo(tmp_path: Path) -> None:
    weights = tmp_path / "small.safetensors"
    save_generator(UNetGenerator(UNetConfig(ngf=16, depth=5)).eval(), weights)
    result = benchmark_fullres(2.0, weights=weights, working_side=64, measure_psnr=False, verbose=False)
    guided, direct = result["modes"]["guided"], result["modes"]["direct"]
    assert guided["megapixels"] == pytest.approx(2.0, rel=0.05) and guided["size"] == direct["size"]
    # Direct mode holds the network's activations at full resolution (16 channels at half the photo's
    # size alone are 61 MiB at 2 megapixels); guided mode runs the network on a 64-pixel copy and then
    # works in bands of 256 rows (measured on one Linux machine: about 360 MiB against 80).
    assert direct["extra_peak_mib"] > 2 * guided["extra_peak_mib"], (guided, direct)
    assert direct["extra_peak_mib"] - guided["extra_peak_mib"] > 100, (guided, direct)


def test_peak_memory_from_getrusage_is_converted_from_bytes_on_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = type("Usage", (), {"ru_maxrss": 3 * 1024 * 1024 * 1024})()  # 3 GiB, in bytes as macOS reports
    monkeypatch.setattr(fullres.resource, "getrusage", lambda who: usage)
    monkeypatch.setattr(fullres.sys, "platform", "darwin")
    assert fullres._maxrss_kib() == 3 * 1024 * 1024
    monkeypatch.setattr(fullres.sys, "platform", "linux")  # Linux reports KiB already
    assert fullres._maxrss_kib() == 3 * 1024 * 1024 * 1024


# ------------------------------------------------------------------------------------ the command


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def _digest(folder: Path) -> dict[str, str]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture()
def photo_folder(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    small = data.astronaut()[::8, ::8]
    Image.fromarray(render_exposure(small, -1.0)).save(folder / "a.png")
    Image.fromarray(render_exposure(small, 1.0)).save(folder / "b.jpg", quality=95)
    Image.fromarray(small).save(folder / "trip" / "c.png")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG at all")
    (folder / "notes.txt").write_text("not a photo, ignored")
    weights = tmp_path / "tiny.safetensors"
    save_generator(UNetGenerator(UNetConfig(ngf=4, depth=3)).eval(), weights)
    return folder, weights


def test_correct_skips_a_bad_file_writes_the_others_and_fails(
    photo_folder: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, weights = photo_folder
    before = _digest(folder)
    out = tmp_path / "out"
    status = _cli(
        ["correct", str(folder), "--out", str(out), "--weights", str(weights), "--recursive", "--quiet"]
    )
    printed = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(printed) == 1 and printed[0].startswith(f"error: {folder / 'broken.jpg'}: ")
    assert printed[0].count("broken.jpg") == 1 and "not an image" in printed[0]
    assert sorted(_digest(out)) == ["a.png", "b.jpg", "trip/c.png"]  # names and sub-folders kept
    assert Image.open(out / "a.png").size == Image.open(folder / "a.png").size
    assert _digest(folder) == before  # inputs untouched


def test_correct_succeeds_on_good_files_and_never_overwrites_an_input(
    photo_folder: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, weights = photo_folder
    before = _digest(folder)
    good = [str(folder / "a.png"), str(folder / "b.jpg")]
    argv = ["correct", *good, "--out", str(tmp_path / "ok"), "--weights", str(weights), "--mode", "direct"]
    assert _cli(argv) == 0
    assert sorted(_digest(tmp_path / "ok")) == ["a.png", "b.jpg"]
    capsys.readouterr()
    assert _cli(["correct", *good, "--out", str(folder), "--weights", str(weights)]) == 1
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == 2 and all("would overwrite an input" in line for line in printed)
    assert _digest(folder) == before


def test_correct_ignores_hidden_files_such_as_macos_companions(
    photo_folder: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, weights = photo_folder
    (folder / "broken.jpg").unlink()
    # macOS writes "._NAME" files (resource forks, not images) next to photos on shared drives.
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not a PNG")
    (folder / "trip" / "._c.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not a PNG")
    out = tmp_path / "out"
    argv = ["correct", str(folder), "--out", str(out), "--weights", str(weights), "--recursive", "--quiet"]
    status = _cli(argv)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert status == 0
    assert sorted(_digest(out)) == ["a.png", "b.jpg", "trip/c.png"]


def test_correct_takes_a_pixel_limit_and_names_the_option(
    photo_folder: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, weights = photo_folder
    photo = str(folder / "a.png")  # 64 x 64 = 4,096 pixels
    base = ["correct", photo, "--out", str(tmp_path / "out"), "--weights", str(weights), "--quiet"]
    assert _cli([*base, "--max-pixels", "4000"]) == 1
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == 1 and "4,096 pixels" in printed[0] and "--max-pixels" in printed[0]
    assert _cli([*base, "--max-pixels", "4096"]) == 0
    assert (tmp_path / "out" / "a.png").is_file()


@pytest.mark.slow
def test_correct_leaves_the_well_exposed_test_photos_alone(tmp_path: Path) -> None:
    """Do no harm, as a photographer meets it: `correct` (shipped model, defaults) on a folder of the
    held-out test photos, well exposed, saved losslessly. Most come back above 30 dB, the median one
    bit for bit, and none is wrecked."""
    from expolib.data.photos import embedded_codes, embedded_photos

    folder = tmp_path / "library"
    folder.mkdir()
    originals = {}
    for _scene, name in embedded_photos("test"):
        photo = embedded_codes(name, 384).permute(1, 2, 0).numpy()
        Image.fromarray(photo).save(folder / f"{name}.png")
        originals[name] = photo
    out = tmp_path / "corrected"
    assert _cli(["correct", str(folder), "--out", str(out), "--quiet"]) == 0
    scores = sorted(
        psnr(np.asarray(Image.open(out / f"{name}.png")), photo) for name, photo in originals.items()
    )
    median = scores[len(scores) // 2]
    assert sum(score > 30.0 for score in scores) > len(scores) / 2, scores
    assert median == float("inf"), scores  # the median photo is returned unchanged
    assert scores[0] > 12.0, scores  # no photo is wrecked (the worst misjudged one is moved ~1 EV)
