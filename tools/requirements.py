"""Write requirements-dev.txt from pyproject.toml: what ``make dev`` installs into .venv.

The list is derived, never edited by hand: the build requirements ([build-system]),
the package's dependencies and its ``test`` and ``bench`` extras, in that order, each
requirement once. ``make`` regenerates the file when pyproject.toml changes, and
tests/test_plumbing.py checks that the committed file is this script's output.

Usage: ``python tools/requirements.py [pyproject.toml] > requirements-dev.txt``
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib

EXTRAS = ("test", "bench")


def requirements(pyproject: Path) -> str:
    meta = tomllib.loads(pyproject.read_text())
    groups = [
        ("build", meta["build-system"]["requires"]),
        ("package", meta["project"]["dependencies"]),
        *((f"extra: {e}", meta["project"]["optional-dependencies"][e]) for e in EXTRAS),
    ]
    lines = [
        "# Generated from pyproject.toml by tools/requirements.py (make regenerates it):",
        "# the build requirements, the dependencies and the extras " + ", ".join(EXTRAS) + ".",
    ]
    seen: set[str] = set()
    for title, reqs in groups:
        fresh = [r for r in reqs if r not in seen]
        seen.update(fresh)
        if fresh:
            lines += [f"# {title}", *fresh]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    path = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "pyproject.toml"
    )
    sys.stdout.write(requirements(path))
