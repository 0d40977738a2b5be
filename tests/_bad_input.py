"""Shared data and helpers of the bad-input suite (tests/test_bad_input*.py).

Each ``test_bad_input*.py`` module holds the cases of one area of the public API as a
list of :class:`Case` and runs them through :func:`check_case`; the layout tests
(non-contiguous and read-only input) are in ``test_bad_input.py``.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import gridmatch as gm
from gridmatch.search import KernelSearch, TransformSearch
from gridmatch.svm import SVC

# ----------------------------------------------------------------------------- data
#: Files the cases write (removed when the interpreter exits).
TMP = tempfile.TemporaryDirectory(prefix="gm-bad-input-")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 4))  # SVM / kernel data, float64
Y = np.arange(12) % 2
E = RNG.normal(size=(10, 8)).astype(np.float32)  # embeddings
IDS = np.arange(10) % 5
IMG = RNG.integers(0, 256, size=(16, 28, 28), dtype=np.uint8)  # images
IMG_IDS = np.arange(16) // 2
META = torch.zeros((10, 8), device="meta")
GSN_FAST = dict(dim=8, batch_size=8, steps_per_epoch=1, epochs=1, progress=False, grid=(2, 2))
SEARCH_FAST = dict(budget=2, batch_size=2, progress=False)
KERNEL = gm.expr.parse(gm.expr.PAPER_KERNEL)


def with_value(a: np.ndarray, value: Any, at=(0, 0)) -> np.ndarray:
    """A float copy of ``a`` with ``value`` at position ``at``."""
    out = np.array(a, dtype=np.float64 if a.dtype != np.float32 else np.float32)
    out[at] = value
    return out


def strings(shape) -> np.ndarray:
    return np.full(shape, "a")


def objects(shape) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    out[...] = None
    return out


def fitted_svc(**kw) -> SVC:
    return SVC(**kw).fit(X, Y)


_GSN: dict[str, Any] = {}


def fitted_gsn() -> gm.GridSearchNetwork:
    if "m" not in _GSN:
        _GSN["m"] = gm.GridSearchNetwork(**{**GSN_FAST, "epochs": 0}).fit(IMG, IMG_IDS)
    return _GSN["m"]


def gsn_fit(X_=IMG, ids=IMG_IDS, **kw):
    return gm.GridSearchNetwork(**{**GSN_FAST, **kw}).fit(X_, ids)


def kernel_search(Xtr=X, ytr=Y, Xva=X, yva=Y, **kw):
    return KernelSearch(**{**SEARCH_FAST, **kw}).fit(Xtr, ytr, Xva, yva)


def transform_search(Eq=E, iq=IDS, Eg=E, ig=IDS, **kw):
    return TransformSearch(**{**SEARCH_FAST, **kw}).fit(Eq, iq, Eg, ig)


def inshop(tmp_text: str | None):
    """An In-shop folder whose list_eval_partition.txt holds ``tmp_text``."""
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="inshop", dir=TMP.name))
    if tmp_text is not None:
        (root / "list_eval_partition.txt").write_text(tmp_text)
    return gm.datasets.InShop(root)


class CliError(Exception):
    """``gridmatch ...`` exited with an error; the message is what it printed."""


def cli(*argv: str):
    """Run the command line in-process; raise CliError(stderr) on a non-zero exit."""
    import contextlib
    import io

    from gridmatch.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(list(argv))
        except SystemExit as e:  # argparse
            rc = e.code
    if rc:
        raise CliError(f"exit {rc}: {err.getvalue()}")
    return rc


def npy_file(a) -> str:
    fd, path = tempfile.mkstemp(suffix=".npy", dir=TMP.name)
    with open(fd, "wb") as f:
        np.save(f, a)
    return path


def load_nowhere():
    """``datasets.load`` with no local copy anywhere and downloads off."""
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, {"XDG_CACHE_HOME": tempfile.mkdtemp(dir=TMP.name)}):
        os.environ.pop("GRIDMATCH_DATA", None)
        return gm.datasets.load("mnist", root=tempfile.mkdtemp(dir=TMP.name), download=False)


# ---------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """One bad input: ``call()`` must raise ``exc`` with a message matching ``match``."""

    name: str
    call: Callable[[], Any]
    exc: type[BaseException] | tuple[type[BaseException], ...]
    match: str
    #: Where else the error may come from (see :func:`_raised_in`), by design.
    foreign: tuple[str, ...] = ()


#: gridmatch's installed Python package (its own code and the extension it calls).
_GM_DIR = str(Path(gm.__file__).resolve().parent)
#: The files that hold the cases and their helpers: this module and the test modules
#: beside it (tests/test_bad_input*.py). An error whose innermost frame is in one of them
#: was raised by a C-level callable a case calls directly (or by :func:`cli`).
_HERE = Path(__file__).resolve().parent
_CASE_FILES = {str(_HERE / "_bad_input.py")} | {str(p) for p in _HERE.glob("test_bad_input*.py")}


def _raised_in(info: Any) -> str:
    """Which code raised the error in ``info`` (a ``pytest.raises`` result).

    "gridmatch" for gridmatch's Python code, the extension's own exceptions (the
    :class:`gm.GridmatchError` hierarchy, raised from Rust with no Python frame of
    their own) and the command line's error exits (:class:`CliError`); "builtin" for
    another error raised by a C-level callable the case calls directly; otherwise the
    top-level package of the innermost frame (numpy, sklearn, torch, ...).
    """
    tb = info.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    path = str(Path(frame.f_code.co_filename).resolve())
    if path.startswith(_GM_DIR):
        return "gridmatch"
    if path in _CASE_FILES:
        if isinstance(info.value, (gm.GridmatchError, CliError)):
            return "gridmatch"
        return "builtin"
    return frame.f_globals.get("__name__", "?").split(".")[0]


NAN, INF = float("nan"), float("inf")


def with_foreign(cases: Iterable[Case], foreign: Mapping[str, tuple[str, ...]]) -> list[Case]:
    """``cases`` with :attr:`Case.foreign` set from ``foreign`` (keyed by case name)."""
    cases = list(cases)
    assert foreign.keys() <= {c.name for c in cases}
    return [replace(c, foreign=foreign.get(c.name, ())) for c in cases]


def check_case(case: Case) -> None:
    """Run one case: it must raise (or warn) as the case says, from gridmatch's own checks."""
    if isinstance(case.exc, type) and issubclass(case.exc, Warning):
        with pytest.warns(case.exc, match=case.match):
            case.call()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.exc, match=case.match) as info:
            case.call()
    # A documented error, not an accident of the implementation: raised by gridmatch's
    # own checks (its Python code or the extension it calls), not by numpy, torch or
    # scikit-learn failing deeper down with a message that happens to match.
    origin = _raised_in(info)
    assert origin == "gridmatch" or origin in case.foreign, (origin, info.value)
