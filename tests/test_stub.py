"""The type stub of the extension module lists exactly what the module exports."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from gridmatch import _core

STUB = Path(__file__).resolve().parent.parent / "python" / "gridmatch" / "_core.pyi"


def stub_names() -> dict[str, ast.AST]:
    tree = ast.parse(STUB.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def module_names() -> set[str]:
    return {n for n in dir(_core) if not (n.startswith("__") and n != "__version__")}


def test_stub_lists_every_export():
    assert set(stub_names()) == module_names()


def test_stub_signatures_match():
    for name, node in stub_names().items():
        if not isinstance(node, ast.FunctionDef):
            continue
        sig = inspect.signature(getattr(_core, name))
        stub_params = [a.arg for a in node.args.posonlyargs + node.args.args]
        stub_params += [a.arg for a in node.args.kwonlyargs]
        assert stub_params == list(sig.parameters), name
