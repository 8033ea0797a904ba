"""The book's structure: every chapter is in the table of contents, follows the chapter convention,
is committed without outputs, and the Jupyter Book settings carry what readers rely on."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    files += [chapter["file"] for chapter in toc.get("chapters", [])]
    return files


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _text(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def test_there_are_eight_chapters() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 9)]


def test_toc_lists_intro_every_chapter_and_references() -> None:
    files = _toc_files()
    assert files[0] == "book/intro" and files[-1] == "book/references"
    assert files[1:-1] == [f"book/{p.stem}" for p in NOTEBOOKS]
    for entry in files:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_follows_the_convention(path: Path) -> None:
    cells = _cells(path)
    markdown = "\n".join(_text(c) for c in cells if c["cell_type"] == "markdown")
    headings = re.findall(r"^(#+) (.+)$", markdown, flags=re.MULTILINE)
    titles = [title.strip() for _, title in headings]
    assert [level for level, _ in headings].count("#") == 1, "exactly one H1 title"
    assert headings[0][0] == "#" and headings[0][1].startswith("Chapter ")
    order = ["Overview", "Prerequisites", "Time to learn", "Imports", "Summary", "What's next"]
    positions = [titles.index(name) for name in order]
    assert positions == sorted(positions), f"sections out of order: {titles}"
    levels = [len(level) for level, _ in headings]
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), "a heading level is skipped"
    first_code = next(_text(c) for c in cells if c["cell_type"] == "code")
    assert "google.colab" in first_code and "find_spec(\"expolib\")" in first_code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_committed_without_outputs(path: Path) -> None:
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_reads_the_budget(path: Path) -> None:
    code = "\n".join(_text(c) for c in _cells(path) if c["cell_type"] == "code")
    assert "get_budget(" in code
    assert "/work/" not in code and "/tmp/" not in code


def test_citations_exist_in_the_bibliography() -> None:
    keys = set(re.findall(r"^@\w+\{([^,]+),", (BOOK / "references.bib").read_text(), flags=re.MULTILINE))
    sources = [BOOK / "intro.md", *NOTEBOOKS]
    cited: set[str] = set()
    for source in sources:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", source.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited, "the book cites nothing"
    assert cited <= keys, f"unknown citation keys: {sorted(cited - keys)}"


def test_config_has_launch_buttons_execution_and_bibliography() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["branch"] == "main"
    assert config["launch_buttons"]["colab_url"].startswith("https://colab")
    assert config["execute"]["execute_notebooks"] in ("force", "cache")
    assert config["execute"]["allow_errors"] is False and config["execute"]["timeout"] > 0
    assert config["only_build_toc_files"] is True
    assert config["bibtex_bibfiles"] == ["book/references.bib"]


def test_requirements_end_with_the_package_and_use_ranges() -> None:
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    assert lines[-1] == "-e ."
    assert not any("==" in ln for ln in lines), "exact pins break Colab's preinstalled torch"
    names = {re.split(r"[<>=!~ \[]", ln)[0].lower() for ln in lines[:-1]}
    for needed in ("torch", "torchvision", "jupyter-book", "nbmake", "pytest", "tqdm", "scikit-image"):
        assert needed in names


def _toc_chapters() -> list[Path]:
    """The notebooks that _toc.yml lists, in reading order."""
    return [ROOT / f"{entry}.ipynb" for entry in _toc_files() if (ROOT / f"{entry}.ipynb").exists()]


def _markdown(path: Path) -> str:
    return "\n".join(_text(c) for c in _cells(path) if c["cell_type"] == "markdown")


SOLUTION = re.compile(r"^:::\{admonition\} Solution[ \t]*\n:class: dropdown[ \t]*$", flags=re.MULTILINE)


@pytest.mark.parametrize("path", _toc_chapters(), ids=lambda p: p.stem)
def test_chapter_has_exercises_with_solutions_before_the_summary(path: Path) -> None:
    markdown = _markdown(path)
    found = re.search(r"^## Exercises[ \t]*$(.*?)^## ([^\n]+)$", markdown, flags=re.MULTILINE | re.DOTALL)
    assert found, "no '## Exercises' section followed by another section"
    section, next_heading = found.group(1), found.group(2).strip()
    assert next_heading == "Summary", f"the Exercises section is followed by {next_heading!r}, not Summary"
    exercises = re.findall(r"^### Exercise \d+: \S", section, flags=re.MULTILINE)
    solutions = SOLUTION.findall(section)
    assert len(exercises) >= 3, f"{len(exercises)} exercises"
    assert len(solutions) == len(exercises), f"{len(exercises)} exercises, {len(solutions)} solutions"
    # every dropdown is closed before the next exercise starts, and explains: the code is a cell of its own
    for block in re.split(r"^### Exercise \d+: ", section, flags=re.MULTILINE)[1:]:
        assert len(SOLUTION.findall(block)) == 1 and block.rstrip().endswith(":::"), block[:60]
        assert "```python" not in block, f"{block[:60]!r}: the solution's code belongs in its solution cell"


def _exercises(path: Path) -> list[tuple[str, list[dict]]]:
    """Each exercise's heading, with the cells between its markdown cell and the next markdown cell."""
    cells = _cells(path)
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        heading = re.match(r"### (Exercise \d+: .+)", _text(cell))
        if heading:
            following = []
            for later in cells[i + 1:]:
                if later["cell_type"] == "markdown":
                    break
                following.append(later)
            found.append((heading.group(1), following))
    return found


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", _toc_chapters(), ids=lambda p: p.stem)
def test_every_exercise_has_one_solution_cell_that_checks_its_claims(path: Path) -> None:
    """Each exercise is followed by exactly one code cell tagged "solution" (and "hide-cell", so the built
    book shows it collapsed) whose code asserts something: nbmake and the book build run it, so a
    solution that stops being true fails. No solution cell stands anywhere else."""
    exercises = _exercises(path)
    assert exercises, "no exercises"
    for title, following in exercises:
        assert len(following) == 1, f"{title}: {len(following)} cells before the next text, not one solution"
        (cell,) = following
        assert cell["cell_type"] == "code", f"{title}: the solution is not a code cell"
        assert "solution" in _tags(cell) and "hide-cell" in _tags(cell), f"{title}: tags {_tags(cell)}"
        tree = ast.parse(_text(cell))
        asserts = [node for node in ast.walk(tree) if isinstance(node, ast.Assert)]
        assert asserts, f"{title}: the solution asserts nothing"
    tagged = [cell for cell in _cells(path) if "solution" in _tags(cell)]
    assert len(tagged) == len(exercises), f"{len(tagged)} solution cells for {len(exercises)} exercises"


REPORT_BOX = re.compile(
    r"^:::\{admonition\} What the report gets wrong[ \t]*\n:class: warning[ \t]*\n(.*?)^:::[ \t]*$",
    flags=re.MULTILINE | re.DOTALL,
)

# Each misconception of the design report (shared DESIGN.md): words its box must use (a phrase of the
# report's claim, and a word of the correction), and the chapters whose boxes may hold it.
MISCONCEPTIONS = {
    "flip and jitter on the input only": (("orientation augmentations", "flip"), ("02",)),
    "normalisation is a blur": (("level of blur", "tanh"), ("02",)),
    "six layers take 256 to 1x1": (("six layers down", "8"), ("03",)),
    "max-pooling": (("stride convolution and max-pooling", "no pooling layer"), ("03",)),
    "a fully connected U-Net": (("fully connected", "fully convolutional"), ("03",)),
    "BCE takes a probability from the generator": (("from the generator", "discriminator"), ("04", "05")),
    "fake is anything with too high a loss": (("too high a loss value", "generator"), ("04", "05")),
    "weights change after every epoch": (("after every epoch", "every *batch*"), ("06",)),
    "the learning rate passes over local minima": (("local minima", "seeds"), ("06",)),
    "evaluating with loss curves only": (("loss curve", "psnr"), ("07",)),
}


def _report_boxes() -> dict[str, list[str]]:
    """The text of every 'What the report gets wrong' box, by chapter number."""
    return {path.name[:2]: [" ".join(box.lower().split()) for box in REPORT_BOX.findall(_markdown(path))]
            for path in NOTEBOOKS}


@pytest.mark.parametrize("name", MISCONCEPTIONS)
def test_report_misconception_has_a_box_in_its_chapter(name: str) -> None:
    words, chapters = MISCONCEPTIONS[name]
    boxes = _report_boxes()
    assert any(all(word.lower() in box for word in words) for ch in chapters for box in boxes.get(ch, [])), (
        f"no 'What the report gets wrong' box in chapter {' or '.join(chapters)} mentions {words}"
    )


def test_report_boxes_quote_the_report() -> None:
    boxes = [box for chapter in _report_boxes().values() for box in chapter]
    assert boxes
    for box in boxes:
        assert re.search(r'"[^"]{3,}"', box), f"a box does not quote the report: {box[:80]}"


def test_the_repository_has_one_address_everywhere() -> None:
    import re

    files = [ROOT / "README.md", ROOT / "_config.yml", ROOT / "pyproject.toml", *sorted(BOOK.glob("*.ipynb")),
             *sorted(BOOK.glob("*.md"))]
    found = {m.group(1).removesuffix(".git") for f in files
             for m in re.finditer(r"github\.com/([\w.-]+/[\w.-]+)", f.read_text())}
    found -= {"googlecolab/colabtools"}  # cited, not ours
    config = (ROOT / "_config.yml").read_text()
    ours = re.search(r"url: https://github\.com/([\w.-]+/[\w.-]+)", config).group(1)
    assert found == {ours}, f"more than one repository address: {sorted(found)}"


def _caption_tool():
    """tools/caption_figures.py, which says which cells draw and applies the captions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("caption_figures", ROOT / "tools" / "caption_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_caption_tool_finds_the_cells_that_draw() -> None:
    tool = _caption_tool()

    def code(source: str) -> dict:
        return {"cell_type": "code", "source": source, "metadata": {}}

    notebook = {"cells": [
        code('%pip install x\nimport matplotlib.pyplot as plt\n\n\ndef show(images):\n'
             '    fig, axes = plt.subplots(1, len(images))\n    plt.show()\n\n\ndef twice(images):\n'
             '    show(images)\n    show(images)\n'),                  # 0: defines helpers, draws nothing
        code("twice([1, 2])"),                                           # 1: a helper of a helper
        code("fig = show_grid([[a, b]])\nplt.show()"),                  # 2: expolib's helper
        code("for k in range(3):\n    print(k)"),                       # 3: no figure
        code("if x:\n    draw_unet(config)"),                           # 4: nested in a statement
        {"cell_type": "markdown", "source": "plt.show()", "metadata": {}},
        code("def later():\n    plt.plot([1])"),                        # 6: a definition only
        code('if "colab" in sys.modules:\n    !pip install x'),        # 7: a shell escape
    ]}
    assert tool.drawing_cells(notebook) == [1, 2, 4]
    notebook["cells"][1]["metadata"] = {"mystnb": {"figure": {"caption": "Two figures."}}}
    assert tool.caption_of(notebook["cells"][1]) == "Two figures."
    assert tool.caption_of(notebook["cells"][2]) == ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_a_caption(path: Path) -> None:
    """A code cell that draws a figure carries a caption in its metadata (``mystnb.figure.caption``),
    which the built book shows under the figure; tools/caption_figures.py applies them."""
    tool = _caption_tool()
    notebook = json.loads(path.read_text())
    missing = [f"cell {notebook['cells'][i].get('id')} (index {i})" for i in tool.drawing_cells(notebook)
               if not tool.caption_of(notebook["cells"][i]).strip()]
    assert not missing, f"figures without a caption (add them to tools/figure_captions.json): {missing}"


def test_the_captions_file_matches_the_chapters() -> None:
    """Every caption in tools/figure_captions.json names a code cell that exists and is in its metadata
    (run ``python tools/caption_figures.py`` after a chapter's cells change)."""
    tool = _caption_tool()
    captions = json.loads((ROOT / "tools" / "figure_captions.json").read_text())
    assert captions and all(c.strip() for chapter in captions.values() for c in chapter.values())
    assert tool.apply(captions, check=True) == []


def test_the_build_draws_progress_as_text_and_loads_no_widget_script() -> None:
    """The book build asks its kernels for text progress bars (expolib.book.sphinx_build), collapses a
    bar's redraws to its last state (merged streams), and adds no widget JavaScript from the internet."""
    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert "expolib.book.sphinx_build" in sphinx["extra_extensions"]
    assert sphinx["config"]["nb_merge_streams"] is True
    assert sphinx["config"]["nb_ipywidgets_js"] == {}


def test_chapter_6_says_which_precision_each_kind_of_cpu_gets() -> None:
    """The CPU's precision is decided at run time (bf16 autocast where the processor computes bf16
    natively, float32 elsewhere): chapter 6's summary names both, and the page prints which one ran,
    so the text holds on either kind of machine."""
    cells = _cells(BOOK / "06_training.ipynb")
    summary = next(_text(c) for c in cells if _text(c).startswith("## Summary"))
    cpu_line = next(line for line in summary.split("\n- ") if "on the CPU" in line)
    assert "bf16" in cpu_line and "float32" in cpu_line and "natively" in cpu_line
    code = "\n".join(_text(c) for c in cells if c["cell_type"] == "code")
    assert "native_bf16(model.runtime.device)" in code and "model.runtime.precision" in code
