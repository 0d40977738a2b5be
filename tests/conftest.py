"""Shared fixtures of the gridmatch test suite."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


@functools.cache
def _shared_datasets() -> Path | None:
    env = os.environ.get("GRIDMATCH_DATA")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared" / "datasets"]:
        if (candidate / "fashion-mnist").is_dir() and (candidate / "mnist").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding ``mnist/`` and ``fashion-mnist/`` (the project's shared data)."""
    root = _shared_datasets()
    if root is None:
        pytest.fail(
            "MNIST / Fashion-MNIST not found: set GRIDMATCH_DATA to the folder holding "
            "mnist/ and fashion-mnist/ (CI uses ../shared/datasets)"
        )
    return root


@pytest.fixture(autouse=True)
def _no_network_downloads(monkeypatch):
    """Tests never reach the internet: dataset downloads are off unless a test opts in.

    Code under test that looks datasets up by itself (the command line) finds the
    project's copy, also where ``GRIDMATCH_DATA`` is unset (``../shared/datasets``).
    """
    monkeypatch.setenv("GRIDMATCH_OFFLINE", "1")
    root = _shared_datasets()
    if root is not None:
        monkeypatch.setenv("GRIDMATCH_DATA", str(root))


def pytest_terminal_summary(terminalreporter):
    """Print the size of the bad-input suite (tests/test_bad_input*.py) after a run."""
    counts = {}
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if re.search(r"test_bad_input\w*\.py::", getattr(report, "nodeid", "")) and (
                report.when == "call" or outcome == "skipped"
            ):
                counts[outcome] = counts.get(outcome, 0) + 1
    total = sum(counts.values())
    if total:
        detail = ", ".join(f"{v} {k}" for k, v in counts.items())
        terminalreporter.write_line(f"bad-input suite: {total} cases ({detail})")


@pytest.fixture
def iris():
    """scikit-learn's iris data ``(X, y)``."""
    from sklearn import datasets as skdatasets

    return skdatasets.load_iris(return_X_y=True)


@pytest.fixture(scope="session")
def image_rows():
    """``image_rows(root, name, n_train, n_test, seed)``: seeded train and test samples of
    MNIST / Fashion-MNIST as flattened float64 rows in [0, 1], ``(Xtr, ytr, Xte, yte)``."""

    def load(root, name, n_train, n_test, seed):
        import gridmatch as gm

        Xtr, ytr = gm.datasets.load(name, split="train", root=root / name)
        Xte, yte = gm.datasets.load(name, split="test", root=root / name)
        rng = np.random.default_rng(seed)
        itr = rng.choice(len(Xtr), n_train, replace=False)
        ite = rng.choice(len(Xte), n_test, replace=False)

        def rows(a):
            return a.reshape(len(a), -1).astype(np.float64) / 255.0

        return rows(Xtr[itr]), ytr[itr], rows(Xte[ite]), yte[ite]

    return load


@pytest.fixture
def global_random_seed():
    """scikit-learn's test fixture (its default, SKLEARN_TESTS_GLOBAL_RANDOM_SEED unset),
    for the ported SVC tests."""
    return 42
