"""No executed chapter saves an unfinished progress bar.

The notebooks are committed without outputs, so the outputs checked are those of an executed copy:
the book build's (``_build/jupyter_execute/book/*.ipynb``, written by ``jupyter-book build``) when it
exists, otherwise chapter 6 (the chapter that trains, interrupts and resumes runs) in the quick budget:
as nbmake left it when it executed the chapter earlier in this process (``pytest`` runs this file
after chapter 6, see conftest.py), or else executed here with nbclient, in a copy of the book folder so
that nothing lands in ``book/runs``.

A bar is unfinished when its text says ``n/total`` with ``n < total``, or its saved widget state has
``value < max``. A bar drawn red (``bar_style == "danger"``) must be explained next to it: the
markdown cell before or after the cell that shows it mentions "red".

The book draws its progress bars as text (``EXPOLIB_PROGRESS=text``, see expolib/progress.py): a bar
saved as a widget would need JavaScript from the internet on the built page, so none may be saved,
and the built pages (``_build/html``, when the book was built) load no widget script. Every figure
an executed chapter shows sits in a cell with a caption, and a caption is given to figures only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "_build" / "jupyter_execute" / "book"
FALLBACK_CHAPTER = "06_training.ipynb"

# tqdm's text bar: "training:  80%|########  | 8/10 [00:01<00:00, ...]" (the last refresh of a line)
TEXT_BAR = re.compile(r"(\d+)%\|[^|\n\r]*\|\s*(\d+)/(\d+)")
PROGRESS_MODELS = ("FloatProgressModel", "IntProgressModel")


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _last_refresh(text: str) -> list[str]:
    """Each line as it was last drawn: tqdm redraws a line after a carriage return."""
    return [line.split("\r")[-1] for line in text.split("\n")]


def unfinished_text_bars(text: str) -> list[str]:
    """The text bars in ``text`` whose count stopped short of their total."""
    found = []
    for line in _last_refresh(text):
        for match in TEXT_BAR.finditer(line):
            n, total = int(match.group(2)), int(match.group(3))
            if n < total:
                found.append(match.group(0))
    return found


def _widget_children(state: dict[str, Any], model_id: str) -> list[str]:
    """Every model reachable from ``model_id`` (a tqdm bar is an HBox of HTML, progress, HTML)."""
    seen, todo = [], [model_id]
    while todo:
        current = todo.pop()
        if current in seen or current not in state:
            continue
        seen.append(current)
        for child in state[current].get("state", {}).get("children", []):
            todo.append(child.removeprefix("IPY_MODEL_"))
    return seen


def _widget_state(notebook: dict[str, Any]) -> dict[str, Any]:
    """The widget models an executed notebook saved, by model id (empty when it saved none)."""
    return notebook.get("metadata", {}).get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})


def problems(notebook: dict[str, Any]) -> list[str]:
    """What is wrong with the saved progress bars of an executed notebook, one line per problem."""
    cells, state = notebook["cells"], _widget_state(notebook)
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        near = " ".join(_text(cells[k]["source"]) for k in (index - 1, index + 1)
                        if 0 <= k < len(cells) and cells[k]["cell_type"] == "markdown")
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            texts = [_text(output.get("text", ""))] if output.get("output_type") == "stream" else []
            view = data.get("application/vnd.jupyter.widget-view+json")
            if view is None:  # a widget's text/plain is its first drawing, not what the page shows
                texts += [_text(data.get("text/plain", ""))]
            for text in texts:
                found += [f"cell {index}: unfinished text bar {bar!r}" for bar in unfinished_text_bars(text)]
            if view is None:
                continue
            for model_id in _widget_children(state, view["model_id"]):
                model = state[model_id]
                if model.get("model_name") not in PROGRESS_MODELS:
                    continue
                values = model.get("state", {})
                value, top = values.get("value", 0), values.get("max", 100)
                if value < top:
                    found.append(f"cell {index}: progress widget saved at {value} of {top}")
                if values.get("bar_style") == "danger" and "red" not in near.lower():
                    found.append(f"cell {index}: a red (danger) bar without a word about it next to it")
    return found


def widget_bars(notebook: dict[str, Any]) -> list[str]:
    """The progress bars ``notebook`` saved as widgets, one line each."""
    cells, state = notebook["cells"], _widget_state(notebook)
    found = []
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view is None:
                continue
            models = [state[m].get("model_name") for m in _widget_children(state, view["model_id"])]
            text = _text(output["data"].get("text/plain", ""))
            if any(name in PROGRESS_MODELS for name in models) or TEXT_BAR.search(text):
                found.append(f"cell {index}: a progress bar saved as a widget ({text.strip()[:60]!r})")
    return found


FIGURE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


def uncaptioned_figures(notebook: dict[str, Any]) -> list[str]:
    """The figures an executed notebook shows without a caption, and the captioned cells that show
    something else too (myst-nb would put the caption under that as well), one line each."""
    found = []
    for index, cell in enumerate(notebook["cells"]):
        shown = [output.get("data", {}) for output in cell.get("outputs", [])
                 if output.get("output_type") in ("display_data", "execute_result")]
        figures = [data for data in shown if any(kind in data for kind in FIGURE_TYPES)]
        caption = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption", "")
        if figures and not caption:
            found.append(f"cell {index} ({cell.get('id')}): {len(figures)} figure(s) without a caption")
        if caption and len(figures) < len(shown):
            found.append(f"cell {index} ({cell.get('id')}): captioned, but shows something that is not "
                         "a figure")
    return found


# The widget JavaScript that myst-nb loads from the internet into a page that saved widget state
# (unless nb_ipywidgets_js is empty), and the saved state of a progress widget.
WIDGET_SCRIPTS = ("@jupyter-widgets/html-manager", "require.min.js", "FloatProgressModel", "IntProgressModel")


def widget_scripts(page: str) -> list[str]:
    """Which of :data:`WIDGET_SCRIPTS` a built HTML page holds: widget scripts from the internet, or
    a progress bar's saved widget state."""
    return [script for script in WIDGET_SCRIPTS if script in page]


# ------------------------------------------------------------------------------------------------
# The checker itself, on small notebooks made here


def _bar_notebook(value: float, top: float, style: str = "success", text: str = "", prose: str = "") -> dict:
    views = {"hbox": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_html", "IPY_MODEL_bar"]}},
             "html": {"model_name": "HTMLModel", "state": {"value": "training: "}},
             "bar": {"model_name": "FloatProgressModel",
                     "state": {"value": value, "max": top, "bar_style": style}}}
    widget = {"output_type": "display_data", "metadata": {},
              "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "hbox", "version_major": 2},
                       "text/plain": "training:   0%|          | 0/10 [00:00<?, ?step/s]"}}
    outputs = [widget] + ([{"output_type": "stream", "name": "stderr", "text": text}] if text else [])
    return {"cells": [{"cell_type": "code", "source": "fit()", "outputs": outputs},
                      {"cell_type": "markdown", "source": prose}],
            "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": views}}}}


def test_the_checker_accepts_closed_bars_and_ignores_a_widgets_first_drawing() -> None:
    assert problems(_bar_notebook(10, 10)) == []
    done = "training: 100%|##########| 10/10 [00:01<00:00]\n"
    assert problems(_bar_notebook(10, 10, text="training:  50%|#####     | 5/10\r" + done)) == []


def test_the_checker_finds_unfinished_and_unexplained_bars() -> None:
    assert problems(_bar_notebook(8, 10)) == ["cell 0: progress widget saved at 8 of 10"]
    eighty = "training:  80%|########  | 8/10 [00:01<00:00, 5.0step/s]"
    assert problems(_bar_notebook(10, 10, text="epoch 1\n" + eighty + "\n")) == [
        "cell 0: unfinished text bar '80%|########  | 8/10'"]
    assert problems(_bar_notebook(10, 10, style="danger")) == [
        "cell 0: a red (danger) bar without a word about it next to it"]
    explained = _bar_notebook(10, 10, style="danger", prose="The bar is red because we stopped it.")
    assert problems(explained) == []


def test_the_checker_finds_a_bar_saved_as_a_widget() -> None:
    assert widget_bars(_bar_notebook(10, 10)) == [
        "cell 0: a progress bar saved as a widget ('training:   0%|          | 0/10 [00:00<?, ?step/s]')"]
    done = "training: 100%|##########| 10/10 [00:01<00:00]\n"
    text_only = {"cells": [{"cell_type": "code", "source": "fit()",
                            "outputs": [{"output_type": "stream", "name": "stderr", "text": done}]}]}
    assert widget_bars(text_only) == []


def test_the_checker_finds_figures_without_captions() -> None:
    figure = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    table = {"output_type": "display_data", "data": {"text/html": "<table></table>", "text/plain": "table"}}
    captioned = {"mystnb": {"figure": {"caption": "A plot."}}}
    notebook = {"cells": [
        {"cell_type": "code", "id": "a", "metadata": {}, "outputs": [figure]},
        {"cell_type": "code", "id": "b", "metadata": captioned, "outputs": [figure, figure]},
        {"cell_type": "code", "id": "c", "metadata": captioned, "outputs": [figure, table]},
        {"cell_type": "code", "id": "d", "metadata": {}, "outputs": [table]},
    ]}
    assert uncaptioned_figures(notebook) == [
        "cell 0 (a): 1 figure(s) without a caption",
        "cell 2 (c): captioned, but shows something that is not a figure"]


def test_the_checker_finds_widget_scripts_in_a_page() -> None:
    page = ('<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js"></script>'
            '<script type="application/vnd.jupyter.widget-state+json">'
            '{"state": {"a": {"model_name": "FloatProgressModel"}}}</script>')
    assert widget_scripts(page) == ["require.min.js", "FloatProgressModel"]
    assert widget_scripts("<p>training: 100%|##########| 10/10</p>") == []


# ------------------------------------------------------------------------------------------------
# The book's executed notebooks


def _execute_fallback(tmp: Path) -> list[Path]:
    import nbformat
    from nbclient import NotebookClient

    book = tmp / "book"
    skip = shutil.ignore_patterns("runs", "_build", ".ipynb_checkpoints")
    shutil.copytree(ROOT / "book", book, ignore=skip)
    path = book / FALLBACK_CHAPTER
    notebook = nbformat.read(path, as_version=4)
    env = {"EXPOLIB_BUDGET": "quick", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(notebook, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(book)}}, store_widget_state=True).execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    nbformat.write(notebook, path)
    return [path]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory, executed_chapters: dict[str, Any]) -> dict[str, Any]:
    """The executed chapters to check, by file name."""
    built = sorted(BUILT.glob("[0-9][0-9]_*.ipynb"))
    if built:
        return {path.name: json.loads(path.read_text()) for path in built}
    if FALLBACK_CHAPTER in executed_chapters:  # nbmake's run of it, earlier in this process
        return {FALLBACK_CHAPTER: executed_chapters[FALLBACK_CHAPTER]}
    fallback = _execute_fallback(tmp_path_factory.mktemp("executed"))
    return {path.name: json.loads(path.read_text()) for path in fallback}


@pytest.mark.slow
def test_no_saved_output_holds_an_unfinished_progress_bar(executed: dict[str, Any]) -> None:
    found = []
    for name, notebook in executed.items():
        found += [f"{name}: {line}" for line in problems(notebook)]
    assert not found, "\n".join(found)


@pytest.mark.slow
def test_no_executed_chapter_saves_a_progress_bar_as_a_widget(executed: dict[str, Any]) -> None:
    found = [f"{name}: {line}" for name, notebook in executed.items() for line in widget_bars(notebook)]
    assert not found, "\n".join(found)


@pytest.mark.slow
def test_every_figure_an_executed_chapter_shows_has_a_caption(executed: dict[str, Any]) -> None:
    found = [f"{name}: {line}" for name, notebook in executed.items()
             for line in uncaptioned_figures(notebook)]
    assert not found, "\n".join(found)


def test_the_built_pages_load_no_widget_script_and_hold_no_progress_widget() -> None:
    pages = sorted((ROOT / "_build" / "html" / "book").glob("[0-9][0-9]_*.html"))
    if not pages:
        pytest.skip("the book is not built here (jupyter-book build .)")
    found = {page.name: widget_scripts(page.read_text()) for page in pages}
    assert not any(found.values()), found
