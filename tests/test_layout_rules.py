"""tools/check_layout.py, the house rules `make lint` checks, on small made-up trees."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_layout", ROOT / "tools" / "check_layout.py")
assert spec is not None and spec.loader is not None
layout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layout)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_python_circles_through_lazy_imports_are_found(tmp_path):
    write(
        tmp_path / "gridmatch",
        {
            "__init__.py": "",
            "_core.pyi": "",
            "data/__init__.py": "",
            "data/a.py": "from .b import x\n",
            "data/b.py": "def f():\n    from .a import y  # lazy\n",
            "data/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n"
            ),
        },
    )
    graph, why = layout.python_graph(tmp_path / "gridmatch")
    assert layout._cycles(graph) == [["gridmatch.data.a", "gridmatch.data.b"]]
    # an import under TYPE_CHECKING never runs: no edge; a child using its package: none
    assert graph["gridmatch.data.c"] == set()


def test_python_layers_and_the_foundation(tmp_path):
    write(
        tmp_path / "gridmatch",
        {
            "__init__.py": "",
            "_core.pyi": "",
            "_base/__init__.py": "",
            "_base/params.py": "from .. import _core\n",
            "_base/validate.py": "from ..data import loader\n",
            "data/__init__.py": "",
            "data/loader.py": "from .._base import params\n",
            "svm/__init__.py": "",
            "svm/fit.py": "from ..data.loader import x\n",
            "expr.py": "from .svm.fit import y\n",
        },
    )
    graph, why = layout.python_graph(tmp_path / "gridmatch")
    errors = layout.python_layer_errors(graph, why)
    # `from ..data import loader` runs gridmatch.data and gridmatch.data.loader: two edges
    assert len(errors) == 3, errors
    assert all(e.startswith("gridmatch._base.validate") for e in errors[:2])
    assert all("foundation" in e for e in errors[:2])
    assert errors[2].startswith("gridmatch.expr") and "higher layer" in errors[2]


def test_rust_circles_ignore_tests_and_parents(tmp_path):
    write(
        tmp_path / "src",
        {
            "lib.rs": "pub mod retrieval;\n",
            "retrieval/mod.rs": "mod engine;\nmod prefilter;\npub use engine::knn;\n",
            "retrieval/engine.rs": "use super::prefilter::lists;\npub fn knn() {}\n",
            "retrieval/prefilter.rs": (
                "use crate::retrieval::{engine::Target, topk};\n"
                "#[cfg(test)]\nmod tests {\n    use super::super::engine::knn;\n}\n"
            ),
            "retrieval/topk.rs": "use super::Prepared;\n",
        },
    )
    graph, why = layout.rust_graph(tmp_path / "src")
    assert layout._cycles(graph) == [["crate::retrieval::engine", "crate::retrieval::prefilter"]]
    assert graph["crate::retrieval::topk"] == set()  # its parent module is no edge
    # without the grouped `use` of engine::Target, the test module's use is no circle
    p = tmp_path / "src" / "retrieval" / "prefilter.rs"
    p.write_text(p.read_text().replace("{engine::Target, topk}", "topk"))
    graph, _ = layout.rust_graph(tmp_path / "src")
    assert layout._cycles(graph) == []


def test_the_repository_keeps_the_rules():
    assert layout.main() == 0
