"""Student copies of the notebooks: the exercises stay, their solutions go.

A notebook's exercise solutions live in cells tagged ``solution``. :func:`student_copy` removes
them and leaves a placeholder in each one's place (a code cell ``# Your solution here``, or a
markdown cell ``*Your answer here.*`` for a written answer), so every exercise keeps a place to
write in; outputs are cleared as well, so a copy made from an executed notebook does not leak the
answers through them either.

    python -m workbench.analysis.teach notebooks/*.ipynb --out teach     # what ``make teach`` runs
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import nbformat

SOLUTION_TAG = "solution"
PLACEHOLDER = "# Your solution here"
WRITTEN_PLACEHOLDER = "*Your answer here.*"


def is_solution(cell: dict) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with every solution cell replaced by a placeholder and without outputs."""
    out = nbformat.from_dict(nb)  # deep copy
    cells = []
    for cell in out.cells:
        if is_solution(cell):
            # keep the exercise's place: code for a code answer, a prompt for a written one
            cells.append(nbformat.v4.new_code_cell(PLACEHOLDER, metadata={"tags": ["exercise"]})
                         if cell.cell_type == "code" else
                         nbformat.v4.new_markdown_cell(WRITTEN_PLACEHOLDER, metadata={"tags": ["exercise"]}))
            continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    out.cells = cells
    if (out.nbformat, out.nbformat_minor) >= (4, 5):
        # Cell ids must be unique: number them, so the placeholders never clash and the copy is
        # the same every time it is made.
        for i, cell in enumerate(out.cells):
            cell["id"] = f"cell-{i:03d}"
    else:
        for cell in out.cells:
            cell.pop("id", None)
    return out


def student_copy(source: str | Path, out_dir: str | Path) -> Path:
    """Write the student version of the notebook ``source`` into ``out_dir`` (same file name)."""
    source, out_dir = Path(source), Path(out_dir)
    if source.suffix != ".ipynb":
        raise ValueError(f"{source} is not a .ipynb notebook (run `make sync` to generate it from the .py)")
    nb = nbformat.read(source, as_version=4)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / source.name
    if target.resolve() == source.resolve():
        raise ValueError(f"the student copy would overwrite {source}: pick another --out directory")
    nbformat.write(student_notebook(nb), target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.analysis.teach", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help=".ipynb files")
    parser.add_argument("--out", default="teach", help="directory for the student copies (default: teach)")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        target = student_copy(path, args.out)
        nb = nbformat.read(path, as_version=4)
        removed = sum(is_solution(c) for c in nb.cells)
        print(f"{target}: {removed} solution cell(s) removed")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
