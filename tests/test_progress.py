"""The one progress-bar factory: a widget or terminal bar by default, plain text drawn once, when the
bar closes, with ``EXPOLIB_PROGRESS=text`` (the book build), and the Sphinx extension that asks for text."""

from __future__ import annotations

import io
import os
import re

import pytest
import tqdm.auto
import tqdm.std

from expolib.progress import PROGRESS_ENV, bar_class, progress_bar, progress_style, progress_write


def test_the_default_is_tqdm_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert progress_style() == "auto" and bar_class() is tqdm.auto.tqdm
    monkeypatch.setenv(PROGRESS_ENV, " AUTO ")
    assert progress_style() == "auto"


def test_an_unknown_style_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "widgets")
    with pytest.raises(ValueError, match="EXPOLIB_PROGRESS='widgets'"):
        progress_style()


def test_text_bars_keep_one_line_their_last_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "text")
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    assert issubclass(bar_class(), tqdm.std.tqdm) and bar_class() is not tqdm.auto.tqdm
    out = io.StringIO()
    bar = progress_bar(range(500), desc="steps", file=out, dynamic_ncols=True, mininterval=0)
    for k in bar:
        if k == 250:
            bar.set_postfix(loss=0.5)
            assert out.getvalue() == ""  # nothing while it runs
    text = out.getvalue()
    # drawn once, when it ends: a carriage return, the last state, a newline
    assert re.fullmatch(r"\rsteps: 100%\|[^\r\n]*\| 500/500 \[[^\r\n]*loss=0\.5\]\n", text), repr(text)


def test_a_text_bar_stopped_early_shows_where_it_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "text")
    out = io.StringIO()
    with progress_bar(total=10, desc="training", file=out) as bar:
        bar.update(4)
    assert re.fullmatch(r"\rtraining:  40%\|[^\r\n]*\| 4/10 [^\r\n]*\n", out.getvalue()), repr(out.getvalue())


def test_text_bars_that_would_vanish_are_not_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "text")
    out = io.StringIO()
    bar = progress_bar(range(3), desc="evaluating", leave=False, file=out)
    assert list(bar) == [0, 1, 2] and out.getvalue() == ""


def test_a_line_written_between_bars_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "text")
    out = io.StringIO()
    bar = progress_bar(total=2, desc="training", file=out)
    bar.update(1)
    progress_write("epoch 1/2: done", file=out)
    bar.update(1)
    bar.close()
    lines = [line.split("\r")[-1] for line in out.getvalue().split("\n")]
    assert lines[0] == "epoch 1/2: done" and re.match(r"training: 100%.*2/2", lines[1]), lines
    assert lines[2:] == [""]


def test_the_book_build_asks_for_text_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    from expolib.book import sphinx_build

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert sphinx_build.setup(object())["parallel_read_safe"] is True
    assert os.environ[PROGRESS_ENV] == "text"
    monkeypatch.setenv(PROGRESS_ENV, "auto")  # a reader's own choice stays
    sphinx_build.setup(object())
    assert os.environ[PROGRESS_ENV] == "auto"


def test_only_the_factory_imports_tqdm() -> None:
    """Every progress bar of the library goes through expolib.progress, so that the style applies to it."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "expolib"
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name == "tqdm" or name.startswith("tqdm.") for name in names):
                found.append(str(path.relative_to(package)))
    assert sorted(set(found)) == ["progress.py"], found
