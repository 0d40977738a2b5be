"""Notebooks are committed without outputs and match their generator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_notebooks_have_no_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert len(paths) == 5
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def test_notebooks_match_generator(tmp_path):
    script = NOTEBOOKS / "_make_notebooks.py"
    code = script.read_text().replace(
        "HERE = Path(__file__).resolve().parent", f"HERE = Path({str(tmp_path)!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert (tmp_path / path.name).read_text() == path.read_text(), path.name
