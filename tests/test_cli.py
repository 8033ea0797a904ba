"""The command line: one entry point, every subcommand with its own help, and one error policy.

Every subcommand reports a problem the same way: one line on stderr that starts with ``error:`` and
names the file or option, exit status 2 for the user's mistake (a bad option, a missing or unreadable
input), 1 when some photos of a batch failed and the others were written, and never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import expolib
from expolib.cli import SUBCOMMANDS, build_parser, main
from expolib.networks.modelfile import save_generator
from expolib.networks.unet import UNetConfig, UNetGenerator

COMMANDS = ("train", "evaluate", "correct", "bench")


def test_every_subcommand_is_registered() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)
    assert len(SUBCOMMANDS) == len(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m expolib {command}")
    assert len(out.splitlines()) > 3


def test_missing_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_reports_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "expolib", "--version"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"expolib {expolib.__version__}"


# ----------------------------------------------------------------------------------------------------
# The error policy, subcommand by subcommand


def _status_and_stderr(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``main(argv)``; a parser error (SystemExit) counts as its exit status."""
    try:
        status = main(argv)
    except SystemExit as stop:
        status = int(stop.code or 0)
    return status, capsys.readouterr().err


def _one_error(err: str, *names: str) -> str:
    """The stderr of a refused command: one ``error:`` line naming ``names``, and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, lines
    assert all(name in errors[0] for name in names), errors[0]
    return errors[0]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """A tiny generator, a corrupt generator file, a corrupt checkpoint, a corrupt photo, a good photo."""
    weights = tmp_path / "tiny.safetensors"
    save_generator(UNetGenerator(UNetConfig(ngf=4, depth=3)).eval(), weights)
    bad_weights = tmp_path / "broken.safetensors"
    bad_weights.write_bytes(b"not a safetensors file")
    bad_checkpoint = tmp_path / "broken.pt"
    bad_checkpoint.write_bytes(b"not a checkpoint")
    bad_photo = tmp_path / "broken.jpg"
    bad_photo.write_bytes(b"this is not a JPEG at all")
    photo = tmp_path / "good.png"
    Image.new("RGB", (40, 30), (90, 120, 60)).save(photo)
    return {"weights": weights, "bad_weights": bad_weights, "bad_checkpoint": bad_checkpoint,
            "bad_photo": bad_photo, "photo": photo, "missing": tmp_path / "missing.safetensors"}


TINY_TRAIN = ["train", "--budget", "quick", "--image-size", "32", "--ngf", "4", "--ndf", "4", "--depth", "4",
              "--n-layers", "2", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
              "--device", "cpu", "--progress", "off"]


@pytest.mark.parametrize("argv, names", [
    (["train", "--lr", "fast"], ["--lr"]),
    (["evaluate", "--side", "big"], ["--side"]),
    (["correct", "--mode", "sideways"], ["--mode"]),
    (["bench", "--batch-sizes", "0,x"], ["--batch-sizes"]),
    (["bench", "--no-such-option"], ["--no-such-option"]),
])
def test_a_bad_option_is_one_line_and_exit_2(argv: list[str], names: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _status_and_stderr(argv, capsys)
    assert status == 2
    _one_error(err, *names)


def test_train_refuses_missing_and_corrupt_inputs(files: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path / "run")]
    status, err = _status_and_stderr([*TINY_TRAIN, *out, "--photos", str(tmp_path / "no_photos")], capsys)
    assert status == 2
    _one_error(err, "no_photos")
    status, err = _status_and_stderr([*TINY_TRAIN, *out, "--resume", str(tmp_path / "missing.pt")], capsys)
    assert status == 2
    assert _one_error(err, "missing.pt").startswith(f"error: {tmp_path / 'missing.pt'}: ")
    status, err = _status_and_stderr([*TINY_TRAIN, *out, "--resume", str(files["bad_checkpoint"])], capsys)
    assert status == 2
    _one_error(err, "broken.pt")
    status, err = _status_and_stderr([*TINY_TRAIN, *out, "--export-half"], capsys)
    assert status == 2
    _one_error(err, "--export-half")


def test_evaluate_refuses_missing_and_corrupt_weights_and_a_wrong_layout(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["evaluate", "--baselines", "", "--side", "48", "--quiet"]
    status, err = _status_and_stderr([*base, "--weights", str(files["missing"])], capsys)
    assert status == 2
    assert _one_error(err, "missing.safetensors").startswith(f"error: {files['missing']}: ")
    status, err = _status_and_stderr([*base, "--weights", str(files["bad_weights"])], capsys)
    assert status == 2
    _one_error(err, "broken.safetensors")
    status, err = _status_and_stderr([*base, "--weights", str(files["weights"]), "--msec", str(tmp_path)],
                                     capsys)
    assert status == 2  # a folder that is not in the MSEC layout
    _one_error(err, str(tmp_path), "MSEC")
    status, err = _status_and_stderr(["evaluate", "--no-model", "--baselines", "nonsense"], capsys)
    assert status == 2
    _one_error(err, "--baselines", "nonsense")


def test_correct_refuses_missing_inputs_and_weights_with_exit_2(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path / "out")]
    missing_photo = tmp_path / "missing.jpg"
    weights = ["--weights", str(files["weights"])]
    status, err = _status_and_stderr(["correct", str(missing_photo), *out, *weights], capsys)
    assert status == 2
    assert _one_error(err, "missing.jpg").startswith(f"error: {missing_photo}: ")
    photo = str(files["photo"])
    for bad, name in ((files["missing"], "missing.safetensors"),
                      (files["bad_weights"], "broken.safetensors")):
        status, err = _status_and_stderr(["correct", photo, *out, "--weights", str(bad)], capsys)
        assert status == 2
        _one_error(err, name)
    assert not (tmp_path / "out").exists()  # refused before writing anything
    status, err = _status_and_stderr(["correct", photo, *weights], capsys)
    assert status == 2
    _one_error(err, "--out")


def test_correct_reports_an_unreadable_photo_writes_the_others_and_exits_1(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["correct", str(files["bad_photo"]), str(files["photo"]), "--out", str(out),
            "--weights", str(files["weights"]), "--quiet"]
    status, err = _status_and_stderr(argv, capsys)
    assert status == 1
    assert _one_error(err, "broken.jpg").startswith(f"error: {files['bad_photo']}: ")
    assert (out / "good.png").is_file() and not (out / "broken.jpg").exists()


def test_bench_refuses_a_device_that_is_not_one(capsys: pytest.CaptureFixture[str]) -> None:
    # bench reads no files: its user input is options, and a device is the one checked at run time
    status, err = _status_and_stderr(["bench", "--quick", "--device", "nonsense"], capsys)
    assert status == 2
    _one_error(err, "--device", "nonsense")


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["correct", "missing.jpg", "--out", "out"],
    ["evaluate", "--weights", "missing.safetensors"],
    ["train", "--pairs", "no_inputs", "no_targets"],
    ["bench", "--precision", "fp64"],
])
def test_the_real_entry_point_never_shows_a_traceback(argv: list[str], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "expolib", *argv], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1
