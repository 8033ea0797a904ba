"""The command line: one entry point, every subcommand with its own help."""

from __future__ import annotations

import subprocess
import sys

import pytest

import expolib
from expolib.cli import SUBCOMMANDS, build_parser, main

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


def test_module_entry_point_reports_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "expolib", "--version"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"expolib {expolib.__version__}"
