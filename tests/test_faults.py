"""Faults a user meets on a real machine: a disk that fills up, and a photo library corrected in
several runs.

The full disk is real, not mocked: each command runs in a subprocess whose largest file is capped by
``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored, so that a write past the cap fails in the kernel with
``EFBIG``, as a write to a full disk fails with ``ENOSPC``. Every writer (PyTorch's zip writer,
safetensors, Pillow) meets the failure its own way, as it would on a full disk.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image

from expolib.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _capped(limit: Optional[int]):  # noqa: ANN202 - a preexec function
    """A ``preexec_fn`` that caps the size of any file the command writes at ``limit`` bytes."""

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited across exec: the write fails instead
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return cap


def _expolib(args: list[str], cwd: Path, limit: Optional[int] = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXPOLIB_BUDGET": "quick", "PYTHONDONTWRITEBYTECODE": "1",
           "MPLCONFIGDIR": str(cwd / ".mpl"), "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "expolib", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, preexec_fn=_capped(limit))


def _one_error_naming(done: subprocess.CompletedProcess, name: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert name in errors[0], errors[0]
    return errors[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


TRAIN = ["train", "--budget", "quick", "--epochs", "1", "--steps-per-epoch", "2", "--ngf", "16", "--ndf", "8",
         "--checkpoint-minutes", "0", "--progress", "off"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run: its folder holds last.pt and best.pt."""
    root = tmp_path_factory.mktemp("run")
    done = _expolib([*TRAIN, "--out", "run"], root)
    assert done.returncode == 0, done.stderr
    assert (root / "run" / "last.pt").is_file() and (root / "run" / "best.pt").is_file()
    return root


def _cap_below_checkpoints(run: Path) -> int:
    """A file-size cap below every checkpoint and above every other file the run writes."""
    checkpoints = [p.stat().st_size for p in run.glob("*.pt")]
    others = [p.stat().st_size for p in run.rglob("*") if p.is_file() and p.suffix != ".pt"]
    cap = min(checkpoints) // 2
    assert max(others, default=0) < cap, (others, checkpoints)
    return cap


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_on_the_disk_is_one_error_and_keeps_the_previous(
        finished_run: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path
    shutil.copytree(finished_run / "run", root / "run")
    before = _snapshot(root / "run")
    cap = _cap_below_checkpoints(root / "run")
    done = _expolib([*TRAIN, "--epochs", "2", "--out", "run", "--resume"], root, limit=cap)
    assert done.returncode == 2, done.stderr
    line = _one_error_naming(done, ".pt")
    assert "run" in line and ("space" in line or "too large" in line or "could not write" in line), line
    after = _snapshot(root / "run")
    for name in ("last.pt", "best.pt"):
        assert after[name] == before[name], f"{name} changed"
    assert not [p for p in (root / "run").iterdir() if p.name.startswith(".")], "a temporary file is left"


@pytest.mark.slow
def test_an_export_that_does_not_fit_is_one_error_and_leaves_no_partial_file(
        finished_run: Path, tmp_path: Path) -> None:
    """``train --export`` after a finished run: the export is the only large file written."""
    import shutil

    root = tmp_path
    shutil.copytree(finished_run / "run", root / "run")
    (root / "model.safetensors").write_bytes(b"the previous export")
    done = _expolib([*TRAIN, "--out", "run", "--resume", "--export", "model.safetensors"], root)
    assert done.returncode == 0, done.stderr  # nothing left to train: the export alone is written
    size = (root / "model.safetensors").stat().st_size
    (root / "model.safetensors").write_bytes(b"the previous export")
    done = _expolib([*TRAIN, "--out", "run", "--resume", "--export", "model.safetensors"], root,
                    limit=size // 2)
    assert done.returncode == 2, done.stderr
    _one_error_naming(done, "model.safetensors")
    assert (root / "model.safetensors").read_bytes() == b"the previous export"
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == ["model.safetensors"]


# ----------------------------------------------------------------------------------------------------
# correct: a photo library


def _library(folder: Path, count: int = 3, side: int = 96) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        gradient = np.linspace(0, 255, side, dtype=np.float32)[None, :, None]
        noise = rng.normal(0, 40, (side, side, 3))
        pixels = np.clip(gradient + noise, 0, 255).astype(np.uint8)
        path = folder / f"photo_{i}.jpg"
        Image.fromarray(pixels).save(path, quality=95)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from expolib.networks.factory import build_generator
    from expolib.networks.modelfile import save_generator
    from expolib.networks.unet import UNetConfig

    path = tmp_path_factory.mktemp("weights") / "g.safetensors"
    save_generator(build_generator(UNetConfig(ngf=4, depth=3, residual=True)).eval(), path)
    return path


@pytest.mark.slow
def test_a_corrected_photo_that_does_not_fit_is_one_error_and_keeps_the_previous(
        tiny_weights: Path, tmp_path: Path) -> None:
    _library(tmp_path / "in", count=2)
    common = ["correct", "in", "--out", "out", "--weights", str(tiny_weights), "--device", "cpu"]
    assert _expolib(common, tmp_path).returncode == 0
    before = _snapshot(tmp_path / "out")
    cap = min(len(data) for data in before.values()) // 2
    done = _expolib([*common, "--redo"], tmp_path, limit=cap)
    assert done.returncode == 2, done.stderr
    _one_error_naming(done, str(Path("out") / "photo_0.jpg"))
    assert _snapshot(tmp_path / "out") == before  # both previous photos kept, nothing partial added


def _correct(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_second_run_continues_where_the_first_stopped(tiny_weights: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    photos = _library(tmp_path / "in", count=3)
    out = tmp_path / "out"
    argv = ["correct", str(tmp_path / "in"), "--out", str(out), "--weights", str(tiny_weights),
            "--device", "cpu"]
    # a first run stopped after one photo: the others were never written, one was left half-written
    status, _, _ = _correct([*argv[:1], str(photos[0]), *argv[2:]], capsys)
    assert status == 0
    first = (out / "photo_0.jpg").read_bytes()
    (out / "photo_1.jpg").write_bytes(first[: len(first) // 3])  # as a killed writer of old left it
    status, stdout, stderr = _correct(argv, capsys)
    assert status == 0, stderr
    assert "photo_0.jpg" in stdout and "up to date" in stdout  # named as kept, not redone
    assert (out / "photo_0.jpg").read_bytes() == first
    for name in ("photo_1.jpg", "photo_2.jpg"):  # the truncated one is redone, the missing one written
        Image.open(out / name).load()
    # an input edited after its output was written is corrected again; the others are kept
    later = time.time() + 5
    os.utime(photos[2], (later, later))
    status, stdout, _ = _correct(argv, capsys)
    assert status == 0
    assert f"wrote {out / 'photo_2.jpg'}" in stdout
    assert f"wrote {out / 'photo_0.jpg'}" not in stdout
    # --redo corrects everything again
    status, stdout, _ = _correct([*argv, "--redo"], capsys)
    assert status == 0
    assert all(f"wrote {out / f'photo_{i}.jpg'}" in stdout for i in range(3))


def test_a_dangling_link_in_a_folder_is_named(tiny_weights: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _library(tmp_path / "in", count=1)
    (tmp_path / "in" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    status, _, stderr = _correct(["correct", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                                  "--weights", str(tiny_weights), "--device", "cpu"], capsys)
    assert status == 1  # a partial batch: the good photo is written, the link is reported
    lines = [line for line in stderr.splitlines() if "gone.jpg" in line]
    assert len(lines) == 1 and lines[0].startswith("error:") and "link" in lines[0], stderr
    assert (tmp_path / "out" / "photo_0.jpg").is_file()


def test_correct_picks_its_device_as_train_does() -> None:
    from expolib.cli import build_parser

    args = build_parser().parse_args(["correct", "x.jpg", "--out", "o"])
    assert args.device is None  # None: the best device there is, decided by expolib.config
