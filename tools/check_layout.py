"""The house rules `make lint` checks beside the linters (run: python tools/check_layout.py).

1. No source file over 600 lines (Rust and Python, the package, tests, benches, tools).
2. No import circles between the modules of the Rust core (``use crate::…`` / ``super::…``
   paths, a file being a module; ``#[cfg(test)]`` code excluded; a module and its own
   ancestors or descendants are one unit) nor between those of the Python package (every
   import statement, lazy ones inside functions included; only ``if TYPE_CHECKING:``
   blocks, which never run, are left out; a module using its own package is no edge, a
   package's ``__init__`` importing its children is).
3. The Python package is layered: a module may import only from its own layer or lower
   ones (``LAYERS``); the foundation (``gridmatch._base``) imports nothing of ours but the
   extension.

Exit status 1 with one line per breach.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600
SIZE_DIRS = ("src", "crates", "python", "tests", "benches", "tools", "examples")

# Python package layers, lowest first: a module may import its own layer and lower ones.
# A top-level name not listed is in the top layer (the applications: cli, demo, plot).
LAYERS: list[set[str]] = [
    {"_core", "_base"},
    {"exceptions", "expr", "data"},
    {"datasets", "retrieval", "losses", "miners", "svm"},
    {"gsn", "search"},
]


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return len(LAYERS)


def check_sizes() -> list[str]:
    errors = []
    for d in SIZE_DIRS:
        for path in sorted((ROOT / d).rglob("*")):
            if path.suffix not in (".rs", ".py") or "target" in path.parts:
                continue
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > MAX_LINES:
                rel = path.relative_to(ROOT)
                errors.append(f"{rel}: {n} lines (at most {MAX_LINES}): split it by concern")
    return errors


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _related(a: str, b: str, sep: str) -> bool:
    """Whether one module is the other or an ancestor of it."""
    return a == b or a.startswith(b + sep) or b.startswith(a + sep)


def _cycle_errors(kind: str, graph: dict[str, set[str]], why: dict) -> list[str]:
    errors = []
    for comp in _cycles(graph):
        members = set(comp)
        edges = [f"{a} -> {b} ({why[a, b]})" for a in comp for b in sorted(graph[a] & members)]
        errors.append(f"{kind} import circle: {', '.join(comp)}; edges: " + "; ".join(edges))
    return errors


# --- Rust -------------------------------------------------------------------------------

_CFG_TEST = re.compile(r"^\s*#\[cfg\(test\)\]\s*$")
_RUST_PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
_RUST_GROUP = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^{}]*)\}")


def _rust_modules(src: Path) -> dict[str, Path]:
    mods = {}
    for path in src.rglob("*.rs"):
        rel = path.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("lib", "main", "mod"):
            parts = parts[:-1]
        mods["::".join(["crate", *parts])] = path
    return mods


def _strip_rust_tests(text: str) -> str:
    """The file less its `#[cfg(test)]` items (a `mod tests;` line or a braced block)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if _CFG_TEST.match(lines[i]):
            i += 1
            if i < len(lines) and lines[i].rstrip().endswith(";"):
                i += 1
                continue
            depth = 0
            started = False
            while i < len(lines):
                depth += lines[i].count("{") - lines[i].count("}")
                started = started or "{" in lines[i]
                i += 1
                if started and depth <= 0:
                    break
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _strip_rust_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def rust_graph(src: Path) -> tuple[dict[str, set[str]], dict]:
    mods = _rust_modules(src)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    why: dict = {}
    for mod, path in mods.items():
        text = _strip_rust_comments(_strip_rust_tests(path.read_text(encoding="utf-8")))
        # A file's own module path, for super:: (the parent) and self::.
        here = mod.split("::")
        parent = here[:-1]
        targets: list[str] = []
        for m in _RUST_GROUP.finditer(text):
            for item in m.group(3).split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self" and re.match(r"^[A-Za-z_][\w:]*$", item):
                    targets.append(f"{m.group(1)}{m.group(2)}::{item}")
        targets += [m.group(0) for m in _RUST_PATH.finditer(text)]
        for t in targets:
            head, *rest = t.split("::")
            if head == "crate":
                base = ["crate"]
            elif head == "super":
                base = list(parent)
                while rest and rest[0] == "super":
                    base = base[:-1]
                    rest = rest[1:]
            else:
                base = list(here)
            parts = base + rest
            # The longest prefix that is a module file.
            for k in range(len(parts), 0, -1):
                cand = "::".join(parts[:k])
                if cand in mods:
                    if not _related(cand, mod, "::"):
                        graph[mod].add(cand)
                        why.setdefault((mod, cand), t)
                    break
    return graph, why


# --- Python -----------------------------------------------------------------------------


def _python_modules(pkg: Path) -> dict[str, Path]:
    mods = {}
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    for path in pkg.rglob("*.pyi"):
        rel = path.relative_to(pkg.parent).with_suffix("")
        mods.setdefault(".".join(rel.parts), path)
    return mods


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every import node, lazy ones included, less those under `if TYPE_CHECKING:`."""
    todo = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                todo.extend(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            todo.append(child)


def python_graph(pkg: Path) -> tuple[dict[str, set[str]], dict]:
    mods = _python_modules(pkg)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    why: dict = {}
    for mod, path in mods.items():
        if path.suffix == ".pyi":
            continue
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _imports(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                if node.level:
                    base = mod.split(".")
                    if not is_pkg:
                        base = base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                names = [origin] + [f"{origin}.{a.name}" for a in node.names]
            for name in names:
                target = name
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                # A module using its own package (or an ancestor) is not an edge: Python
                # runs the ancestors first anyway. A package importing its children is.
                if not target or target == mod or mod.startswith(target + "."):
                    continue
                graph[mod].add(target)
                why.setdefault((mod, target), f"line {node.lineno}")
    return graph, why


def python_layer_errors(graph: dict[str, set[str]], why: dict) -> list[str]:
    errors = []
    for mod in sorted(graph):
        for target in sorted(graph[mod]):
            if mod.startswith("gridmatch._base") and not (
                target.startswith("gridmatch._base") or target == "gridmatch._core"
            ):
                errors.append(
                    f"{mod} ({why[mod, target]}) imports {target}: the foundation "
                    "(gridmatch._base) imports nothing of ours but the extension"
                )
            elif _layer(target) > _layer(mod):
                errors.append(
                    f"{mod} ({why[mod, target]}) imports {target}, a higher layer "
                    f"({_layer(target)} > {_layer(mod)}; LAYERS in {Path(__file__).name})"
                )
    return errors


def main() -> int:
    errors = check_sizes()
    g, why = rust_graph(ROOT / "src")
    errors += _cycle_errors("Rust", g, why)
    g, why = python_graph(ROOT / "python" / "gridmatch")
    errors += _cycle_errors("Python", g, why)
    errors += python_layer_errors(g, why)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} layout rule(s) broken (tools/check_layout.py)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
