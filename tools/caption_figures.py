"""Give every figure of the book its caption: apply ``tools/figure_captions.json`` to the chapters.

The captions are kept apart from the notebooks, keyed by chapter file and cell id, so that they can
be applied again after a chapter's code changes. Each one goes into its cell's metadata as
``{"mystnb": {"figure": {"caption": ...}}}``, which the book build (myst-nb) turns into a captioned
figure around the cell's output; nothing else in a notebook changes. A figure has no ``name`` (a
label): a cell that draws more than one figure would give the same label twice.

    python tools/caption_figures.py           # apply the captions
    python tools/caption_figures.py --check   # only report what is missing or out of date (exit 1)

:func:`drawing_cells` says which code cells draw a figure (``tests/test_book.py`` uses it too): a
cell that calls matplotlib's ``plt.show``, ``plt.subplots``, ``plt.figure``, ``plt.imshow`` or
``plt.plot``, a drawing helper of ``expolib.book`` (:data:`DRAWING_HELPERS`), or a function defined in
the same chapter whose body does one of these.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CAPTIONS = Path(__file__).with_name("figure_captions.json")

PYPLOT_DRAWING = {"show", "subplots", "figure", "imshow", "plot"}
DRAWING_HELPERS = {"show_grid", "draw_unet", "draw_patch"}  # expolib.book's functions that draw a figure


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    text = "".join(source) if isinstance(source, list) else source
    # IPython's magics and shell escapes are not Python: leave them out of the parse
    lines = text.splitlines()
    return "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                     else line for line in lines)


def _calls(nodes: list[ast.stmt], skip_defs: bool) -> list[ast.Call]:
    """The calls in ``nodes``, without those inside function definitions when ``skip_defs``."""
    found, todo = [], list(nodes)
    while todo:
        node = todo.pop()
        if skip_defs and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _draws(call: ast.Call, drawers: set[str]) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "plt":
        return func.attr in PYPLOT_DRAWING
    return isinstance(func, ast.Name) and func.id in drawers


def drawing_cells(notebook: dict[str, Any]) -> list[int]:
    """The indices of the code cells of ``notebook`` that draw a figure when they run."""
    trees = {index: ast.parse(_source(cell)) for index, cell in enumerate(notebook["cells"])
             if cell["cell_type"] == "code"}
    definitions = [node for tree in trees.values() for node in ast.walk(tree)
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    drawers = set(DRAWING_HELPERS)
    while True:  # a function that calls a function that draws, draws
        more = {d.name for d in definitions if d.name not in drawers
                and any(_draws(call, drawers) for call in _calls(d.body, skip_defs=False))}
        if not more:
            break
        drawers |= more
    return [index for index, tree in trees.items()
            if any(_draws(call, drawers) for call in _calls(tree.body, skip_defs=True))]


def caption_of(cell: dict[str, Any]) -> str:
    """The caption a cell's metadata gives its figure ("" when none)."""
    return str(cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption", ""))


def apply(captions: dict[str, dict[str, str]], check: bool = False) -> list[str]:
    """Write ``captions`` (chapter file -> cell id -> caption) into the chapters' cell metadata (or,
    with ``check``, only compare); return one line per problem: an unknown chapter or cell id, a
    caption that differs (with ``check``), a drawing cell left without a caption."""
    problems = []
    for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb")):
        notebook = json.loads(path.read_text())
        wanted = captions.get(path.name, {})
        by_id = {cell.get("id"): cell for cell in notebook["cells"]}
        changed = False
        for cell_id, caption in wanted.items():
            cell = by_id.get(cell_id)
            if cell is None or cell["cell_type"] != "code":
                problems.append(f"{path.name}: no code cell with id {cell_id!r}")
                continue
            if caption_of(cell) == caption:
                continue
            if check:
                problems.append(f"{path.name}: cell {cell_id} does not have its caption")
                continue
            cell.setdefault("metadata", {}).setdefault("mystnb", {})["figure"] = {"caption": caption}
            changed = True
        for index in drawing_cells(notebook):
            cell = notebook["cells"][index]
            if not caption_of(cell):
                problems.append(f"{path.name}: cell {cell.get('id')} (index {index}) draws a figure "
                                "without a caption")
        if changed:
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    problems += [f"{name}: no such chapter" for name in captions if not (BOOK / name).is_file()]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    args = parser.parse_args(argv)
    problems = apply(json.loads(CAPTIONS.read_text()), check=args.check)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
