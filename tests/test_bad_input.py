"""Bad input across the whole public API, table-driven.

Every public function and estimator is fed NaN/inf, wrong dtypes (strings, objects,
complex), wrong ndim, empty arrays, mismatched lengths, torch tensors on a device that
holds no data ("meta"), single-class labels, ids with too few samples, grids larger than
the data, non-positive hyper-parameters and malformed expressions. Each case must raise
the documented exception type with a message naming the parameter or the problem.

Non-contiguous (strided, Fortran-order, transposed tensors) and read-only inputs are not
errors: they must give exactly the result of the contiguous, writable input.

The number of cases is printed at the end of the pytest run ("bad-input suite: N cases",
see ``conftest.py``).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import gridmatch as gm
import gridmatch.plot as gmplot
from gridmatch.exceptions import (
    DataError,
    DeviceError,
    ExpressionError,
    NotFittedError,
    ShapeError,
)
from gridmatch.search import KernelSearch, Space, TransformSearch
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
    if path == str(Path(__file__).resolve()):
        if isinstance(info.value, (gm.GridmatchError, CliError)):
            return "gridmatch"
        return "builtin"
    return frame.f_globals.get("__name__", "?").split(".")[0]


NAN, INF = float("nan"), float("inf")

CASES: list[Case] = [
    # --- gm.set_num_threads ------------------------------------------------------------
    Case("threads/negative", lambda: gm.set_num_threads(-1), ValueError, r"n must be >= 0"),
    Case("threads/huge", lambda: gm.set_num_threads(10**6), ValueError, r"at most 1024"),
    Case("threads/str", lambda: gm.set_num_threads("2"), ValueError, r"n must be an integer"),
    Case("threads/float", lambda: gm.set_num_threads(1.5), ValueError, r"n must be an integer"),
    # --- gm.retrieval.knn -------------------------------------------------------------
    Case("knn/nan", lambda: gm.retrieval.knn(with_value(E, NAN), E, 1), ShapeError, r"NaN"),
    Case(
        "knn/inf", lambda: gm.retrieval.knn(E, with_value(E, INF), 1), ShapeError, r"gallery.*inf"
    ),
    Case(
        "knn/float32-overflow",
        lambda: gm.retrieval.knn(with_value(E.astype(np.float64), 1e39), E, 1),
        ShapeError,
        r"non-finite",
    ),
    Case(
        "knn/strings",
        lambda: gm.retrieval.knn(strings((2, 8)), E, 1),
        ShapeError,
        r"queries.*real numbers",
    ),
    Case(
        "knn/objects",
        lambda: gm.retrieval.knn(objects((2, 8)), E, 1),
        ShapeError,
        r"queries.*dtype object",
    ),
    Case(
        "knn/complex", lambda: gm.retrieval.knn(E + 1j, E, 1), ShapeError, r"queries.*real numbers"
    ),
    Case("knn/1-D", lambda: gm.retrieval.knn(E[0], E, 1), ShapeError, r"queries must be 2-D"),
    Case("knn/3-D", lambda: gm.retrieval.knn(E, E[None], 1), ShapeError, r"gallery must be 2-D"),
    Case(
        "knn/empty queries", lambda: gm.retrieval.knn(E[:0], E, 1), ShapeError, r"queries is empty"
    ),
    Case("knn/no features", lambda: gm.retrieval.knn(E[:, :0], E[:, :0], 1), ShapeError, r"empty"),
    Case(
        "knn/dim mismatch", lambda: gm.retrieval.knn(E[:, :4], E, 1), ShapeError, r"dim|dimension"
    ),
    Case("knn/k=0", lambda: gm.retrieval.knn(E, E, 0), ValueError, r"k must be >= 1"),
    Case(
        "knn/k float",
        lambda: gm.retrieval.knn(E, E, 1.5),
        ValueError,
        r"k must be a positive integer",
    ),
    Case(
        "knn/k bool",
        lambda: gm.retrieval.knn(E, E, True),
        ValueError,
        r"k must be a positive integer",
    ),
    Case(
        "knn/k > gallery", lambda: gm.retrieval.knn(E, E, 11), ShapeError, r"k=11 is out of range"
    ),
    Case(
        "knn/exclude_self k = n",
        lambda: gm.retrieval.knn(E, E, 10, exclude_self=True),
        ShapeError,
        r"k=10.*minus the query",
    ),
    Case(
        "knn/exclude_self lengths",
        lambda: gm.retrieval.knn(E[:3], E, 1, exclude_self=True),
        ShapeError,
        r"exclude_self needs queries and gallery of the same length",
    ),
    Case(
        "knn/metric",
        lambda: gm.retrieval.knn(E, E, 1, metric="euclid"),
        ValueError,
        r"unknown metric 'euclid'",
    ),
    Case(
        "knn/device",
        lambda: gm.retrieval.knn(E, E, 1, device="tpu"),
        ValueError,
        r"unknown device 'tpu'",
    ),
    Case(
        "knn/block_size 0",
        lambda: gm.retrieval.knn(E, E, 1, block_size=0),
        ValueError,
        r"block_size",
    ),
    Case(
        "knn/block_size triple",
        lambda: gm.retrieval.knn(E, E, 1, block_size=(1, 2, 3)),
        ValueError,
        r"block_size",
    ),
    Case("knn/meta queries", lambda: gm.retrieval.knn(META, E, 1), DeviceError, r"queries.*'meta'"),
    Case("knn/meta gallery", lambda: gm.retrieval.knn(E, META, 1), DeviceError, r"gallery.*'meta'"),
    Case(
        "knn/complex tensor",
        lambda: gm.retrieval.knn(torch.zeros((2, 8), dtype=torch.complex64), E, 1),
        ShapeError,
        r"real numbers",
    ),
    # --- gm.retrieval.evaluate --------------------------------------------------------
    Case(
        "evaluate/nan",
        lambda: gm.retrieval.evaluate(with_value(E, NAN), IDS, E, IDS),
        ShapeError,
        r"queries contains a non-finite value \(NaN",
    ),
    Case(
        "evaluate/ids length",
        lambda: gm.retrieval.evaluate(E, IDS[:-1], E, IDS),
        ShapeError,
        r"ids_q has 9 ids",
    ),
    Case(
        "evaluate/ids 2-D",
        lambda: gm.retrieval.evaluate(E, IDS, E, IDS[:, None]),
        ShapeError,
        r"ids_g must be 1-D",
    ),
    Case(
        "evaluate/ids float",
        lambda: gm.retrieval.evaluate(E, IDS + 0.5, E, IDS),
        ShapeError,
        r"ids_q must hold integer ids",
    ),
    Case(
        "evaluate/ids objects",
        lambda: gm.retrieval.evaluate(E, objects(10), E, IDS),
        ShapeError,
        r"ids_q must hold integer ids",
    ),
    Case(
        "evaluate/ks empty",
        lambda: gm.retrieval.evaluate(E, IDS, E, IDS, ks=()),
        ValueError,
        r"ks is empty",
    ),
    Case(
        "evaluate/ks zero",
        lambda: gm.retrieval.evaluate(E, IDS, E, IDS, ks=(1, 0)),
        ValueError,
        r"each k in ks",
    ),
    Case(
        "evaluate/ks float",
        lambda: gm.retrieval.evaluate(E, IDS, E, IDS, ks=1.5),
        ValueError,
        r"ks must be an int",
    ),
    Case(
        "evaluate/ks None",
        lambda: gm.retrieval.evaluate(E, IDS, E, IDS, ks=None),
        ValueError,
        r"ks must be an int",
    ),
    Case(
        "evaluate/ks str",
        lambda: gm.retrieval.evaluate(E, IDS, E, IDS, ks="5"),
        ValueError,
        r"ks must be an int",
    ),
    Case(
        "evaluate/empty",
        lambda: gm.retrieval.evaluate(E[:0], IDS[:0], E, IDS),
        ShapeError,
        r"queries is empty",
    ),
    Case(
        "evaluate/meta",
        lambda: gm.retrieval.evaluate(E, IDS, META, IDS),
        DeviceError,
        r"E_g.*'meta'",
    ),
    Case(
        "evaluate/meta ids",
        lambda: gm.retrieval.evaluate(E, torch.zeros(10, device="meta"), E, IDS),
        DeviceError,
        r"ids_q.*'meta'",
    ),
    Case(
        "evaluate/exclude_self lengths",
        lambda: gm.retrieval.evaluate(E[:3], IDS[:3], E, IDS, exclude_self=True),
        ShapeError,
        r"exclude_self",
    ),
    Case(
        "evaluate/ids with a single sample",
        lambda: gm.retrieval.evaluate(E, np.arange(10), E, np.arange(10), exclude_self=True),
        UserWarning,
        r"10 of 10 queries have no matching id",
    ),
    # --- gm.expr ----------------------------------------------------------------------
    Case("parse/empty", lambda: gm.expr.parse(""), ExpressionError, r"empty expression"),
    Case("parse/unclosed", lambda: gm.expr.parse("sin(x"), ExpressionError, r"position"),
    Case("parse/operator", lambda: gm.expr.parse("x +* y"), ExpressionError, r"position 3"),
    Case(
        "parse/unknown function",
        lambda: gm.expr.parse("foo(x)"),
        ExpressionError,
        r'unknown function "foo"',
    ),
    Case(
        "parse/unknown variable", lambda: gm.expr.parse("z"), ExpressionError, r'unknown name "z"'
    ),
    Case(
        "parse/arity", lambda: gm.expr.parse("sin(x, y)"), ExpressionError, r"sin takes 1 argument"
    ),
    Case("parse/infinite number", lambda: gm.expr.parse("1e999"), ExpressionError, r"not finite"),
    Case("parse/NUL", lambda: gm.expr.parse("x\x00"), ExpressionError, r"unexpected character"),
    Case(
        "parse/None",
        lambda: gm.expr.parse(None),
        ExpressionError,
        r"must be a string, got NoneType",
    ),
    Case(
        "parse/bytes", lambda: gm.expr.parse(b"x"), ExpressionError, r"must be a string, got bytes"
    ),
    Case(
        "parse/deep parentheses",
        lambda: gm.expr.parse("(" * 20000 + "x" + ")" * 20000),
        ExpressionError,
        r"nests deeper than 1000",
    ),
    Case(
        "parse/deep calls",
        lambda: gm.expr.parse("sin(" * 20000 + "x" + ")" * 20000),
        ExpressionError,
        r"nests deeper than 1000",
    ),
    Case(
        "parse/deep unary minus",
        lambda: gm.expr.parse("-" * 20000 + "x"),
        ExpressionError,
        r"nests deeper than 1000",
    ),
    Case("Expr/int", lambda: gm.expr.Expr(5), TypeError, r"'int' object"),
    Case("gram/1-D", lambda: KERNEL.gram(X[0]), ShapeError, r"X must be 2-D"),
    Case(
        "gram/strings",
        lambda: KERNEL.gram(strings((2, 2))),
        ShapeError,
        r"X must hold real numbers",
    ),
    Case("gram/complex", lambda: KERNEL.gram(X + 1j), ShapeError, r"X must hold real numbers"),
    Case(
        "gram/objects",
        lambda: KERNEL.gram(objects((2, 2))),
        ShapeError,
        r"X must hold real numbers",
    ),
    Case("gram/nan", lambda: KERNEL.gram(with_value(X, NAN)), ExpressionError, r"non-finite"),
    Case(
        "gram/overflow",
        lambda: gm.expr.parse("norm1(exp(x * y))").gram(np.full((2, 2), 100.0)),
        ExpressionError,
        r"non-finite",
    ),
    Case(
        "gram/features mismatch",
        lambda: KERNEL.gram(X, X[:, :3]),
        ShapeError,
        r"X has 4 features but Y has 3",
    ),
    Case("gram/no features", lambda: KERNEL.gram(X[:, :0]), ShapeError, r"no features"),
    Case("gram/meta", lambda: KERNEL.gram(META), DeviceError, r"X.*'meta'"),
    Case(
        "gram/vector expression",
        lambda: gm.expr.parse("x * y").gram(X),
        ExpressionError,
        r"kernel must be scalar-valued",
    ),
    Case(
        "apply/uses y",
        lambda: gm.expr.parse("x * y").apply(X),
        ExpressionError,
        r"transform may only use x",
    ),
    Case(
        "apply/division by zero",
        lambda: gm.expr.parse("x / 0").apply(X),
        ExpressionError,
        r"non-finite",
    ),
    Case("apply/3-D", lambda: gm.expr.parse("x").apply(X[None]), ShapeError, r"X must be 2-D"),
    # --- gm.svm.SVC -------------------------------------------------------------------
    Case("SVC/nan", lambda: SVC().fit(with_value(X, NAN), Y), ValueError, r"Input X contains NaN"),
    Case(
        "SVC/inf",
        lambda: SVC().fit(with_value(X, INF), Y),
        ValueError,
        r"Input X contains infinity",
    ),
    Case(
        "SVC/float32 overflow",
        lambda: SVC().fit(with_value(X, 1e300), Y),
        ValueError,
        r"too large for single precision",
    ),
    Case(
        "SVC/strings",
        lambda: SVC().fit(strings((12, 4)), Y),
        ValueError,
        r"could not convert string to float",
    ),
    Case(
        "SVC/objects", lambda: SVC().fit(objects((12, 4)), Y), ValueError, r"Input X contains NaN"
    ),
    Case("SVC/complex", lambda: SVC().fit(X + 1j, Y), ValueError, r"Complex data not supported"),
    Case("SVC/1-D", lambda: SVC().fit(X[:, 0], Y), ValueError, r"Expected 2D array"),
    Case("SVC/3-D", lambda: SVC().fit(X[None], Y[:1]), ValueError, r"dim 3"),
    Case("SVC/empty", lambda: SVC().fit(X[:0], Y[:0]), ValueError, r"0 sample"),
    Case(
        "SVC/lengths", lambda: SVC().fit(X, Y[:-1]), ValueError, r"inconsistent numbers of samples"
    ),
    Case(
        "SVC/single class",
        lambda: SVC().fit(X, np.zeros(12)),
        ValueError,
        r"number of classes has to be greater than one",
    ),
    Case(
        "SVC/continuous y",
        lambda: SVC().fit(X, RNG.normal(size=12)),
        ValueError,
        r"Unknown label type",
    ),
    Case(
        "SVC/nan y",
        lambda: SVC().fit(X, np.where(Y == 0, NAN, 1.0)),
        ValueError,
        r"Input y contains NaN",
    ),
    Case(
        "SVC/meta X",
        lambda: SVC().fit(torch.zeros((12, 4), device="meta"), Y),
        DeviceError,
        r"X.*'meta'",
    ),
    Case("SVC/C=0", lambda: SVC(C=0).fit(X, Y), ValueError, r"C must be > 0"),
    Case("SVC/C<0", lambda: SVC(C=-1.0).fit(X, Y), ValueError, r"C must be > 0"),
    Case("SVC/C nan", lambda: SVC(C=NAN).fit(X, Y), ValueError, r"C must be finite"),
    Case("SVC/C inf", lambda: SVC(C=INF).fit(X, Y), ValueError, r"C must be finite"),
    Case("SVC/gamma=0", lambda: SVC(gamma=0.0).fit(X, Y), ValueError, r"gamma must be > 0"),
    Case("SVC/gamma inf", lambda: SVC(gamma=INF).fit(X, Y), ValueError, r"gamma must be finite"),
    Case(
        "SVC/gamma name",
        lambda: SVC(gamma="big").fit(X, Y),
        ValueError,
        r"gamma must be 'scale', 'auto'",
    ),
    Case("SVC/tol=0", lambda: SVC(tol=0).fit(X, Y), ValueError, r"tol must be > 0"),
    Case("SVC/tol inf", lambda: SVC(tol=INF).fit(X, Y), ValueError, r"tol must be finite"),
    Case(
        "SVC/cache_size=0",
        lambda: SVC(cache_size=0).fit(X, Y),
        ValueError,
        r"cache_size must be > 0",
    ),
    Case(
        "SVC/degree<0",
        lambda: SVC(kernel="poly", degree=-1).fit(X, Y),
        ValueError,
        r"degree must be an integer >= 0",
    ),
    Case(
        "SVC/coef0 nan",
        lambda: SVC(kernel="poly", coef0=NAN).fit(X, Y),
        ValueError,
        r"coef0 must be finite",
    ),
    Case(
        "SVC/max_iter=0",
        lambda: SVC(max_iter=0).fit(X, Y),
        ValueError,
        r"max_iter must be -1 or a positive integer",
    ),
    Case(
        "SVC/n_jobs=0",
        lambda: SVC(n_jobs=0).fit(X, Y),
        ValueError,
        r"n_jobs must be None, -1 or a positive integer",
    ),
    Case(
        "SVC/kernel name",
        lambda: SVC(kernel="foo").fit(X, Y),
        ExpressionError,
        r"kernel='foo' is neither",
    ),
    Case("SVC/kernel int", lambda: SVC(kernel=3).fit(X, Y), ValueError, r"kernel must be one of"),
    Case(
        "SVC/malformed expression",
        lambda: SVC(kernel="norm1(sin(x * y)").fit(X, Y),
        ExpressionError,
        r"position",
    ),
    Case(
        "SVC/vector expression",
        lambda: SVC(kernel="x * y").fit(X, Y),
        ExpressionError,
        r"vector-valued",
    ),
    Case(
        "SVC/expression overflow",
        lambda: SVC(kernel="norm1(exp(exp(x * y)))").fit(X * 100, Y),
        ExpressionError,
        r"non-finite",
    ),
    Case(
        "SVC/shape name",
        lambda: SVC(decision_function_shape="ovx").fit(X, Y),
        ValueError,
        r"decision_function_shape",
    ),
    Case(
        "SVC/class_weight",
        lambda: SVC(class_weight="auto").fit(X, Y),
        ValueError,
        r"class_weight must be",
    ),
    Case(
        "SVC/class_weight classes",
        lambda: SVC(class_weight={5: 1.0}).fit(X, Y),
        ValueError,
        r"not in class_weight",
    ),
    Case(
        "SVC/sample_weight length",
        lambda: SVC().fit(X, Y, sample_weight=np.ones(3)),
        ValueError,
        r"sample_weight and X have incompatible shapes",
    ),
    Case(
        "SVC/sample_weight nan",
        lambda: SVC().fit(X, Y, sample_weight=with_value(np.ones(12), NAN, 0)),
        ValueError,
        r"sample_weight contains NaN",
    ),
    Case(
        "SVC/sample_weight all <= 0",
        lambda: SVC().fit(X, Y, sample_weight=-np.ones(12)),
        ValueError,
        r"zero or negative weights",
    ),
    Case(
        "SVC/callable shape",
        lambda: SVC(kernel=lambda a, b: np.ones((2, 2))).fit(X, Y),
        ValueError,
        r"kernel callable returned shape \(2, 2\)",
    ),
    Case(
        "SVC/callable nan",
        lambda: SVC(kernel=lambda a, b: np.full((len(a), len(b)), NAN)).fit(X, Y),
        ValueError,
        r"kernel callable returned NaN",
    ),
    Case(
        "SVC/precomputed not square",
        lambda: SVC(kernel="precomputed").fit(X, Y),
        ValueError,
        r"square matrix",
    ),
    Case("SVC/predict before fit", lambda: SVC().predict(X), NotFittedError, r"not fitted"),
    Case(
        "SVC/decision before fit", lambda: SVC().decision_function(X), NotFittedError, r"not fitted"
    ),
    Case(
        "SVC/predict features",
        lambda: fitted_svc().predict(X[:, :3]),
        ValueError,
        r"X has 3 features, but SVC is expecting 4",
    ),
    Case(
        "SVC/predict nan",
        lambda: fitted_svc().predict(with_value(X, NAN)),
        ValueError,
        r"Input X contains NaN",
    ),
    Case("SVC/predict empty", lambda: fitted_svc().predict(X[:0]), ValueError, r"0 sample"),
    Case(
        "SVC/predict meta",
        lambda: fitted_svc().predict(torch.zeros((2, 4), device="meta")),
        DeviceError,
        r"X.*'meta'",
    ),
    Case(
        "SVC/predict expression nan",
        lambda: fitted_svc(kernel=KERNEL).predict(with_value(X, NAN)),
        ValueError,
        r"Input X contains NaN",
    ),
    # --- gm.search --------------------------------------------------------------------
    Case(
        "Space/unknown unary",
        lambda: Space(["x"], ["sine"], ["add"]),
        ExpressionError,
        r"unknown unary operation",
    ),
    Case(
        "Space/units=0",
        lambda: Space(["x"], ["sin"], ["add"], units=0),
        ExpressionError,
        r"units must be an integer between 1 and 8",
    ),
    Case(
        "Space/units huge",
        lambda: Space(["x"], ["sin"], ["add"], units=1000),
        ExpressionError,
        r"units must be an integer between 1 and 8",
    ),
    Case(
        "Space/kind",
        lambda: Space(["x"], ["sin"], ["add"], kind="foo"),
        ExpressionError,
        r"space kind must be",
    ),
    Case(
        "Space/malformed template",
        lambda: Space(["x"], ["sin(u"], ["add"]),
        ExpressionError,
        r"template",
    ),
    Case(
        "Space/deep template",
        lambda: Space(["x"], ["(" * 5000 + "u" + ")" * 5000], ["add"]),
        ExpressionError,
        r"template of the space nests deeper",
    ),
    Case(
        "Space/build short",
        lambda: Space.paper().build([0]),
        ExpressionError,
        r"invalid decisions \[0\]",
    ),
    Case(
        "Space/build out of range",
        lambda: Space.paper().build([99] * 10),
        ExpressionError,
        r"invalid decisions",
    ),
    Case(
        "Space/build negative",
        lambda: Space.paper().build([-1] * 10),
        ValueError,
        r"each action must be an integer >= 0",
    ),
    Case(
        "Space/build not a sequence",
        lambda: Space.paper().build(3),
        ExpressionError,
        r"actions must be a sequence",
    ),
    Case(
        "Space/sample negative",
        lambda: Space.paper().sample(-1),
        ValueError,
        r"n must be an integer >= 0",
    ),
    Case(
        "Space/sample seed",
        lambda: Space.paper().sample(1, seed=-1),
        ValueError,
        r"seed must be an integer >= 0",
    ),
    Case(
        "KernelSearch/budget=0",
        lambda: kernel_search(budget=0),
        ValueError,
        r"budget must be a positive integer",
    ),
    Case(
        "KernelSearch/batch_size=0",
        lambda: kernel_search(batch_size=0),
        ValueError,
        r"batch_size must be a positive integer",
    ),
    Case(
        "KernelSearch/seed<0",
        lambda: kernel_search(seed=-1),
        ValueError,
        r"seed must be an integer >= 0",
    ),
    Case(
        "KernelSearch/controller",
        lambda: kernel_search(controller="ppo"),
        ValueError,
        r"controller must be 'rl' or 'random'",
    ),
    Case(
        "KernelSearch/transform space",
        lambda: kernel_search(space="activation"),
        ValueError,
        r"needs a kernel space",
    ),
    Case("KernelSearch/C=0", lambda: kernel_search(C=0), ValueError, r"C must be > 0"),
    Case(
        "KernelSearch/C nan",
        lambda: kernel_search(C=NAN),
        ValueError,
        r"C must be finite",
    ),
    Case("KernelSearch/lr<0", lambda: kernel_search(lr=-1.0), ValueError, r"lr must be > 0"),
    Case(
        "KernelSearch/timeout=0",
        lambda: kernel_search(timeout=0),
        ValueError,
        r"timeout must be > 0 or None",
    ),
    Case(
        "KernelSearch/risk_seeking=0",
        lambda: kernel_search(risk_seeking=0),
        ValueError,
        r"risk_seeking must be a fraction in \(0, 1\] or None, got 0",
    ),
    Case(
        "KernelSearch/risk_seeking nan",
        lambda: kernel_search(risk_seeking=NAN),
        ValueError,
        r"risk_seeking must be a fraction in \(0, 1\]",
    ),
    Case(
        "KernelSearch/baseline_decay",
        lambda: kernel_search(baseline_decay=2.0),
        ValueError,
        r"baseline_decay must be a fraction in \[0, 1\)",
    ),
    Case(
        "KernelSearch/entropy nan",
        lambda: kernel_search(entropy_weight=NAN),
        ValueError,
        r"entropy_weight must be finite",
    ),
    Case(
        "KernelSearch/nan",
        lambda: kernel_search(Xva=with_value(X, NAN)),
        ShapeError,
        r"X_val contains NaN",
    ),
    Case(
        "KernelSearch/strings",
        lambda: kernel_search(Xtr=strings((12, 4))),
        ShapeError,
        r"X_train must hold real numbers",
    ),
    Case(
        "KernelSearch/complex",
        lambda: kernel_search(Xtr=X + 1j),
        ShapeError,
        r"X_train must hold real numbers",
    ),
    Case(
        "KernelSearch/empty",
        lambda: kernel_search(Xtr=X[:0], ytr=Y[:0]),
        ShapeError,
        r"X_train must be a non-empty array",
    ),
    Case(
        "KernelSearch/1-D",
        lambda: kernel_search(Xtr=X[:, 0]),
        ShapeError,
        r"X_train must be a non-empty array of samples",
    ),
    Case(
        "KernelSearch/features",
        lambda: kernel_search(Xva=X[:, :3]),
        ShapeError,
        r"X_train has 4 features but X_val has 3",
    ),
    Case(
        "KernelSearch/labels length",
        lambda: kernel_search(ytr=Y[:-1]),
        ShapeError,
        r"y_train must be 1-D with 12 entries",
    ),
    Case(
        "KernelSearch/single class",
        lambda: kernel_search(ytr=np.zeros(12)),
        ValueError,
        r"y_train needs at least 2 classes",
    ),
    Case(
        "KernelSearch/meta",
        lambda: kernel_search(Xtr=torch.zeros((12, 4), device="meta")),
        DeviceError,
        r"X_train.*'meta'",
    ),
    Case(
        "TransformSearch/top k<1",
        lambda: transform_search().top(-1),
        ValueError,
        r"k must be a positive integer",
    ),
    Case(
        "GSN/diverging lr",
        lambda: gsn_fit(lr=1e30, steps_per_epoch=3, epochs=2),
        gm.BackendError,
        r"training diverged.*lr=1e\+30",
    ),
    Case(
        "KernelSearch/not fitted", lambda: KernelSearch().best_expr, NotFittedError, r"not fitted"
    ),
    Case(
        "TransformSearch/nan",
        lambda: transform_search(Eq=with_value(E, NAN)),
        ShapeError,
        r"E_query contains NaN",
    ),
    Case(
        "TransformSearch/dim",
        lambda: transform_search(Eg=E[:, :4]),
        ShapeError,
        r"E_query has dim 8 but E_gallery has 4",
    ),
    Case(
        "TransformSearch/ids length",
        lambda: transform_search(iq=IDS[:-1]),
        ShapeError,
        r"ids_query must be 1-D with 10 entries",
    ),
    Case(
        "TransformSearch/empty",
        lambda: transform_search(Eq=E[:0], iq=IDS[:0]),
        ShapeError,
        r"E_query must be a non-empty 2-D array",
    ),
    Case(
        "TransformSearch/meta", lambda: transform_search(Eq=META), DeviceError, r"E_query.*'meta'"
    ),
    Case(
        "TransformSearch/kernel space",
        lambda: transform_search(space="paper"),
        ValueError,
        r"needs a transform space",
    ),
    Case(
        "TransformSearch/no shared ids",
        lambda: transform_search(iq=np.arange(10), ig=np.arange(10) + 100),
        ShapeError,
        r"no query id appears in ids_gallery",
    ),
    # --- gm.GridSearchNetwork ---------------------------------------------------------
    Case(
        "GSN/nan",
        lambda: gsn_fit(X_=with_value(IMG, NAN, (0, 0, 0))),
        ShapeError,
        r"X contains NaN",
    ),
    Case(
        "GSN/strings", lambda: gsn_fit(X_=strings((16, 8, 8))), ShapeError, r"X must hold numbers"
    ),
    Case("GSN/complex", lambda: gsn_fit(X_=IMG + 1j), ShapeError, r"X must hold numbers"),
    Case("GSN/2-D", lambda: gsn_fit(X_=IMG[0]), ShapeError, r"X must be \(n, h, w\)"),
    Case("GSN/5-D", lambda: gsn_fit(X_=IMG[:, None, None]), ShapeError, r"got 5 dimensions"),
    Case(
        "GSN/2 channels",
        lambda: gsn_fit(X_=np.zeros((16, 2, 8, 8))),
        ShapeError,
        r"1 or 3 channels",
    ),
    Case(
        "GSN/empty", lambda: gsn_fit(X_=IMG[:0], ids=IMG_IDS[:0]), ShapeError, r"at least one image"
    ),
    Case("GSN/tiny images", lambda: gsn_fit(X_=IMG[:, :3, :3]), ShapeError, r"at least 4x4"),
    Case(
        "GSN/meta",
        lambda: gsn_fit(X_=torch.zeros((16, 28, 28), device="meta")),
        DeviceError,
        r"X.*'meta'",
    ),
    Case(
        "GSN/ids length",
        lambda: gsn_fit(ids=IMG_IDS[:-1]),
        ShapeError,
        r"ids must be 1-D with one value per image \(16\)",
    ),
    Case(
        "GSN/single id",
        lambda: gsn_fit(ids=np.zeros(16)),
        ShapeError,
        r"ids must hold at least 2 distinct values",
    ),
    Case(
        "GSN/grid > images",
        lambda: gsn_fit(X_=IMG[:6], ids=IMG_IDS[:6], grid=(3, 3)),
        ValueError,
        r"grid=\(3, 3\) has 9 cells but X holds only 6",
    ),
    Case(
        "GSN/positives >= cells",
        lambda: gsn_fit(positives=4),
        ValueError,
        r"positives must be in \[1, 4\)",
    ),
    Case(
        "GSN/positives=0",
        lambda: gsn_fit(positives=0),
        ValueError,
        r"positives must be a positive integer",
    ),
    Case(
        "GSN/grid 0 rows", lambda: gsn_fit(grid=(0, 3)), ValueError, r"grid must be \(rows, cols\)"
    ),
    Case("GSN/grid shape", lambda: gsn_fit(grid=(3,)), ValueError, r"grid must be \(rows, cols\)"),
    Case(
        "GSN/batch too small",
        lambda: gsn_fit(batch_size=3),
        ValueError,
        r"batch_size=3 must hold at least 2 ids",
    ),
    Case("GSN/dim=0", lambda: gsn_fit(dim=0), ValueError, r"dim must be a positive integer"),
    Case("GSN/epochs<0", lambda: gsn_fit(epochs=-1), ValueError, r"epochs must be an integer >= 0"),
    Case(
        "GSN/steps_per_epoch=0",
        lambda: gsn_fit(steps_per_epoch=0),
        ValueError,
        r"steps_per_epoch must be None or a positive integer",
    ),
    Case("GSN/lr=0", lambda: gsn_fit(lr=0.0), ValueError, r"lr must be > 0"),
    Case("GSN/lr inf", lambda: gsn_fit(lr=INF), ValueError, r"lr must be finite"),
    Case(
        "GSN/temperature=0",
        lambda: gsn_fit(temperature=0.0),
        ValueError,
        r"temperature must be > 0",
    ),
    Case(
        "GSN/weight_decay<0",
        lambda: gsn_fit(weight_decay=-1.0),
        ValueError,
        r"weight_decay must be >= 0",
    ),
    Case("GSN/augment nan", lambda: gsn_fit(augment=NAN), ValueError, r"augment must be finite"),
    Case(
        "GSN/margin<0",
        lambda: gsn_fit(loss="triplet", margin=-1.0),
        ValueError,
        r"margin must be >= 0",
    ),
    Case(
        "GSN/hi <= lo", lambda: gsn_fit(hi=0.0, lo=0.5), ValueError, r"hi must be greater than lo"
    ),
    Case("GSN/seed<0", lambda: gsn_fit(seed=-1), ValueError, r"seed must be an integer >= 0"),
    Case("GSN/loss", lambda: gsn_fit(loss="hinge"), ValueError, r"loss must be one of"),
    Case("GSN/device", lambda: gsn_fit(device="tpu"), ValueError, r"device must be 'auto', 'cpu'"),
    Case("GSN/balance", lambda: gsn_fit(balance="yes"), ValueError, r"balance must be a bool"),
    Case(
        "GSN/weights missing",
        lambda: gsn_fit(weights="/nonexistent/w.safetensors"),
        DataError,
        r"weights file .* does not exist",
    ),
    Case(
        "GSN/X_val without ids_val",
        lambda: gm.GridSearchNetwork(**GSN_FAST).fit(IMG, IMG_IDS, X_val=IMG),
        ValueError,
        r"give both X_val and ids_val",
    ),
    Case(
        "GSN/X_val image size",
        lambda: gm.GridSearchNetwork(**GSN_FAST).fit(
            IMG, IMG_IDS, X_val=IMG[:, :20, :20], ids_val=IMG_IDS
        ),
        ShapeError,
        r"X_val images",
    ),
    Case(
        "GSN/classes length",
        lambda: gm.GridSearchNetwork(**GSN_FAST).fit(IMG, IMG_IDS, classes=IMG_IDS[:3]),
        ShapeError,
        r"classes must be 1-D",
    ),
    Case(
        "GSN/embed before fit",
        lambda: gm.GridSearchNetwork().embed(IMG),
        NotFittedError,
        r"not fitted",
    ),
    Case(
        "GSN/save before fit",
        lambda: gm.GridSearchNetwork().save("/tmp/never"),
        NotFittedError,
        r"not fitted",
    ),
    Case(
        "GSN/embed channels",
        lambda: fitted_gsn().embed(np.zeros((2, 3, 28, 28), np.float32)),
        ShapeError,
        r"3 channels, the network was built for 1",
    ),
    Case("GSN/embed empty", lambda: fitted_gsn().embed(IMG[:0]), ShapeError, r"at least one image"),
    Case(
        "GSN/embed batch_size=0",
        lambda: fitted_gsn().embed(IMG, batch_size=0),
        ValueError,
        r"batch_size must be a positive integer",
    ),
    Case(
        "GSN/embed batch_size<0",
        lambda: fitted_gsn().embed(IMG, batch_size=-1),
        ValueError,
        r"batch_size must be a positive integer",
    ),
    Case(
        "GSN/embed batch_size float",
        lambda: fitted_gsn().embed(IMG, batch_size=1.5),
        ValueError,
        r"batch_size must be a positive integer",
    ),
    Case(
        "GSN/embed meta",
        lambda: fitted_gsn().embed(torch.zeros((2, 28, 28), device="meta")),
        DeviceError,
        r"X.*'meta'",
    ),
    Case(
        "GSN/load missing",
        lambda: gm.GridSearchNetwork.load("/nonexistent/model"),
        DataError,
        r"cannot read .*config.json",
    ),
    # --- gm.datasets ------------------------------------------------------------------
    Case(
        "datasets/name", lambda: gm.datasets.load("cifar"), ValueError, r"unknown dataset 'cifar'"
    ),
    Case(
        "datasets/split",
        lambda: gm.datasets.load("mnist", "val"),
        ValueError,
        r"split must be 'train' or 'test'",
    ),
    Case(
        "datasets/not found",
        lambda: load_nowhere(),
        DataError,
        r"mnist \(train\) not found. Put the IDX files",
    ),
    Case(
        "datasets/find split",
        lambda: gm.datasets.find("mnist", "val"),
        ValueError,
        r"split must be",
    ),
    Case(
        "datasets/sample name",
        lambda: gm.datasets.load_sample("cifar"),
        ValueError,
        r"unknown dataset",
    ),
    Case(
        "md5_of_idx/range",
        lambda: gm.datasets.md5_of_idx(np.array([300])),
        ValueError,
        r"outside \[0, 255\]",
    ),
    Case(
        "md5_of_idx/float",
        lambda: gm.datasets.md5_of_idx(np.array([0.5])),
        ValueError,
        r"array must hold integers",
    ),
    Case("distort/2-D", lambda: gm.datasets.distort(IMG[0]), ShapeError, r"X must be \(n, h, w\)"),
    Case(
        "distort/floats",
        lambda: gm.datasets.distort(IMG / 255.0),
        ShapeError,
        r"X must hold uint8 pixel values",
    ),
    Case(
        "distort/range",
        lambda: gm.datasets.distort(IMG.astype(np.int64) * 2),
        ShapeError,
        r"\[0, 255\]",
    ),
    Case("distort/strings", lambda: gm.datasets.distort(strings((2, 4, 4))), ShapeError, r"uint8"),
    Case(
        "distort/strength<0",
        lambda: gm.datasets.distort(IMG, strength=-1.0),
        ValueError,
        r"strength must be a finite number >= 0",
    ),
    Case(
        "distort/strength nan",
        lambda: gm.datasets.distort(IMG, strength=NAN),
        ValueError,
        r"strength must be a finite number",
    ),
    Case(
        "distort/seed<0",
        lambda: gm.datasets.distort(IMG, seed=-1),
        ValueError,
        r"seed must be an integer >= 0",
    ),
    Case(
        "fashion_shop/split",
        lambda: gm.datasets.fashion_shop("val"),
        ValueError,
        r"split must be 'train' or 'test'",
    ),
    Case(
        "fashion_shop/views",
        lambda: gm.datasets.fashion_shop("test", views=1),
        ValueError,
        r"views must be >= 2",
    ),
    Case("InShop/missing", lambda: inshop(None), DataError, r"no list_eval_partition.txt"),
    Case("InShop/empty file", lambda: inshop(""), DataError, r"too short"),
    Case(
        "InShop/count",
        lambda: inshop("x\nheader\n"),
        DataError,
        r"first line must be the image count",
    ),
    Case(
        "InShop/rows",
        lambda: inshop("2\nheader\nimg/a.jpg id_00000001 train\n"),
        DataError,
        r"header says 2 images, found 1",
    ),
    Case(
        "InShop/status",
        lambda: inshop("1\nheader\nimg/a.jpg id_00000001 val\n"),
        DataError,
        r":3: expected",
    ),
    Case(
        "InShop/id", lambda: inshop("1\nheader\nimg/a.jpg id_x train\n"), DataError, r"bad item id"
    ),
    Case(
        "InShop/split",
        lambda: inshop("1\nheader\nimg/a.jpg id_00000001 train\n").ids("test"),
        ValueError,
        r"split must be one of",
    ),
    Case(
        "InShop/missing image",
        lambda: inshop("1\nheader\nimg/a.jpg id_00000001 train\n").load("train"),
        DataError,
        r"cannot read image",
    ),
    # --- gm.plot ----------------------------------------------------------------------
    Case(
        "plot/panel k=0",
        lambda: gmplot.retrieval_panel(IMG[:2], IMG, np.zeros((2, 3), int), [0, 1], IMG_IDS, k=0),
        ValueError,
        r"k=0 must be between 1",
    ),
    Case(
        "plot/panel indices range",
        lambda: gmplot.retrieval_panel(IMG[:2], IMG, np.full((2, 5), 99), [0, 1], IMG_IDS),
        ValueError,
        r"indices refer to gallery images that do not exist",
    ),
    Case(
        "plot/panel indices float",
        lambda: gmplot.retrieval_panel(IMG[:2], IMG, np.full((2, 5), 0.5), [0, 1], IMG_IDS),
        ValueError,
        r"indices must hold integer",
    ),
    Case(
        "plot/panel ids",
        lambda: gmplot.retrieval_panel(IMG[:2], IMG, np.zeros((2, 5), int), [0], IMG_IDS),
        ValueError,
        r"query_ids / gallery_ids",
    ),
    Case(
        "plot/panel 1-D",
        lambda: gmplot.retrieval_panel(IMG[0, 0], IMG, np.zeros((2, 5), int), [0, 1], IMG_IDS),
        ValueError,
        r"query_images",
    ),
    Case(
        "plot/training_curves empty",
        lambda: gmplot.training_curves({}),
        ValueError,
        r"histories is empty",
    ),
    Case(
        "plot/training_curves metrics",
        lambda: gmplot.training_curves({"a": []}, metrics=()),
        ValueError,
        r"metrics is empty",
    ),
    Case(
        "plot/search_curves empty",
        lambda: gmplot.search_curves({}),
        ValueError,
        r"histories is empty",
    ),
    Case(
        "plot/embedding nan",
        lambda: gmplot.embedding_2d(with_value(E, NAN), IDS),
        ValueError,
        r"NaN or inf",
    ),
    Case(
        "plot/embedding strings",
        lambda: gmplot.embedding_2d(strings((3, 2)), [0, 1, 0]),
        ValueError,
        r"embeddings must hold real numbers",
    ),
    Case(
        "plot/embedding labels", lambda: gmplot.embedding_2d(E, IDS[:-1]), ValueError, r"n=9 labels"
    ),
    Case(
        "plot/embedding one point",
        lambda: gmplot.embedding_2d(E[:1], IDS[:1]),
        ValueError,
        r"at least 2 points",
    ),
    Case(
        "plot/embedding method",
        lambda: gmplot.embedding_2d(E, IDS, method="umap"),
        ValueError,
        r"method must be",
    ),
    Case(
        "plot/embedding max_points",
        lambda: gmplot.embedding_2d(E, IDS, max_points=0),
        ValueError,
        r"max_points must be an integer >= 2",
    ),
    Case(
        "plot/embedding class_names",
        lambda: gmplot.embedding_2d(E, IDS, class_names=["a"]),
        ValueError,
        r"class_names has 1 names",
    ),
    Case(
        "plot/embedding meta",
        lambda: gmplot.embedding_2d(META, IDS),
        DeviceError,
        r"embeddings.*'meta'",
    ),
    Case(
        "plot/confusion lengths",
        lambda: gmplot.confusion_matrix([1, 2], [1]),
        ValueError,
        r"equal length",
    ),
    Case(
        "plot/confusion empty",
        lambda: gmplot.confusion_matrix([], []),
        ValueError,
        r"y_true is empty",
    ),
    # --- the command line (exit status 2 and one "gridmatch: error:" line) --------------
    Case(
        "cli/unknown command", lambda: cli("fly"), CliError, r"(?s)exit 2: .*invalid choice: 'fly'"
    ),
    Case(
        "cli/search-transform missing file",
        lambda: cli("search-transform", "/nonexistent/e.npz"),
        CliError,
        r"exit 2: gridmatch: error: cannot read /nonexistent/e.npz",
    ),
    Case(
        "cli/search-transform not npz",
        lambda: cli("search-transform", npy_file(E)),
        CliError,
        r"exit 2: gridmatch: error: .* is not an .npz archive",
    ),
    Case(
        "cli/evaluate missing file",
        lambda: cli("evaluate", "/nonexistent/q.npy", npy_file(IDS)),
        CliError,
        r"exit 2: gridmatch: error: cannot read query embeddings",
    ),
    Case(
        "cli/evaluate nan",
        lambda: cli("evaluate", npy_file(with_value(E, NAN)), npy_file(IDS)),
        CliError,
        r"exit 2: gridmatch: error: .*non-finite",
    ),
    Case(
        "cli/evaluate ids length",
        lambda: cli("evaluate", npy_file(E), npy_file(IDS[:3])),
        CliError,
        r"exit 2: gridmatch: error: .*3 ids but its embeddings have 10 rows",
    ),
    Case(
        "cli/search-kernel budget",
        lambda: cli("search-kernel", "--budget", "-1", "--train", "50", "--val", "20"),
        CliError,
        r"exit 2: gridmatch: error: budget must be a positive integer",
    ),
    Case(
        "cli/search-kernel risk-seeking",
        lambda: cli("search-kernel", "--risk-seeking", "2", "--train", "50", "--val", "20"),
        CliError,
        r"exit 2: gridmatch: error: risk_seeking must be a fraction in \(0, 1\]",
    ),
    Case(
        "cli/search-kernel top",
        lambda: cli("search-kernel", "--top", "0", "--train", "50", "--val", "20"),
        CliError,
        r"exit 2: gridmatch: error: --top must be a positive integer, got 0",
    ),
    Case(
        "cli/search-kernel negative train",
        lambda: cli("search-kernel", "--train", "-5", "--val", "20"),
        CliError,
        r"exit 2: gridmatch: error: --train must be an integer >= 2, got -5",
    ),
    Case(
        "cli/search-kernel negative holdout",
        lambda: cli("search-kernel", "--train", "50", "--val", "20", "--holdout", "-1"),
        CliError,
        r"exit 2: gridmatch: error: --holdout must be an integer >= 0, got -1",
    ),
    Case(
        "cli/search-kernel more images than the dataset",
        lambda: cli("search-kernel", "--train", "50000", "--val", "9000", "--holdout", "2000"),
        CliError,
        r"exit 2: gridmatch: error: --train 50000 \+ --val 9000 \+ --holdout 2000 images: "
        r"mnist has only 60000 training images",
    ),
    Case(
        "cli/search-transform out in a missing directory",
        lambda: cli("search-transform", npy_file(E), "--out", "/nonexistent/dir/r.safetensors"),
        CliError,
        r"exit 2: gridmatch: error: --out '/nonexistent/dir/r.safetensors' is not a file path",
    ),
    Case(
        "plot/save not a figure",
        lambda: gmplot.save(None, "/tmp/never.png"),
        TypeError,
        r"fig must be a matplotlib Figure",
    ),
]


#: Errors raised elsewhere by design. SVC validates its arrays with scikit-learn's own
#: checks (``validate_data``; ``check_estimator`` expects its messages); an expression
#: given as a non-string reaches the extension's argument conversion (pyo3's TypeError).
FOREIGN = {
    "SVC/nan": ("sklearn",),
    "SVC/inf": ("sklearn",),
    "SVC/strings": ("sklearn",),
    "SVC/objects": ("sklearn",),
    "SVC/complex": ("sklearn",),
    "SVC/1-D": ("sklearn",),
    "SVC/3-D": ("sklearn",),
    "SVC/empty": ("sklearn",),
    "SVC/lengths": ("sklearn",),
    "SVC/continuous y": ("sklearn",),
    "SVC/nan y": ("sklearn",),
    "SVC/class_weight classes": ("sklearn",),
    "SVC/predict features": ("sklearn",),
    "SVC/predict nan": ("sklearn",),
    "SVC/predict empty": ("sklearn",),
    "SVC/predict expression nan": ("sklearn",),
    "Expr/int": ("builtin",),
}
assert FOREIGN.keys() <= {c.name for c in CASES}
CASES = [replace(c, foreign=FOREIGN.get(c.name, ())) for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
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


def test_case_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


# ------------------------------------------------------- non-contiguous / read-only input
def strided(a: np.ndarray) -> np.ndarray:
    """The same values in a non-contiguous view (every other column of a wider array)."""
    wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
    wide[..., ::2] = a
    out = wide[..., ::2]
    assert not out.flags.c_contiguous
    return out


def fortran(a: np.ndarray) -> np.ndarray:
    out = np.asfortranarray(a)
    if a.ndim > 1 and min(a.shape) > 1:
        assert not out.flags.c_contiguous
    return out


def readonly(a: np.ndarray) -> np.ndarray:
    out = np.array(a)
    out.setflags(write=False)
    return out


def transposed_tensor(a: np.ndarray) -> torch.Tensor:
    """A non-contiguous CPU tensor with the values of ``a`` (2-D)."""
    t = torch.from_numpy(np.ascontiguousarray(a.T)).T
    assert not t.is_contiguous()
    return t


def readonly_strided(a: np.ndarray) -> np.ndarray:
    out = strided(a)
    out.setflags(write=False)
    return out


LAYOUTS = {
    "strided": strided,
    "fortran": fortran,
    "readonly": readonly,
    "readonly-strided": readonly_strided,
}


def as_numpy(r: Any) -> Any:
    if isinstance(r, torch.Tensor):
        return r.numpy()
    if isinstance(r, tuple):
        return tuple(as_numpy(v) for v in r)
    if isinstance(r, dict):
        return {k: as_numpy(v) for k, v in r.items()}
    return r


def _svc(Xa, ya):
    m = SVC().fit(Xa, ya)
    return m.dual_coef_, m.intercept_, m.decision_function(Xa)


def _svc_expr(Xa, ya):
    m = SVC(kernel=KERNEL).fit(Xa, ya)
    return m.dual_coef_, m.intercept_, m.decision_function(Xa)


def _gsn(Xa, ia):
    m = gm.GridSearchNetwork(**GSN_FAST).fit(Xa, ia)
    return m.embed(Xa)


def _ksearch(Xa, ya):
    r = KernelSearch(controller="random", **SEARCH_FAST).fit(Xa, ya, Xa, ya)
    return [(c["expr"], c["reward"]) for c in r.result_.candidates]


def _tsearch(Ea, ia):
    r = TransformSearch(controller="random", **SEARCH_FAST).fit(Ea, ia, Ea, ia)
    return [(c["expr"], c["reward"]) for c in r.result_.candidates]


@dataclass(frozen=True)
class Layout:
    """``call(*arrays)`` must give the same result for any memory layout of ``arrays``."""

    name: str
    call: Callable[..., Any]
    arrays: tuple[np.ndarray, ...]


LAYOUT_CASES = [
    Layout("knn", lambda q, g: gm.retrieval.knn(q, g, 3), (E, E)),
    Layout(
        "evaluate",
        lambda q, i: gm.retrieval.evaluate(q, i, q, i, ks=(1, 3), exclude_self=True),
        (E, IDS),
    ),
    Layout("gram", lambda a: KERNEL.gram(a), (X,)),
    Layout("apply", lambda a: gm.expr.parse("sin(x) * x").apply(a), (X,)),
    Layout("SVC", _svc, (X, Y)),
    Layout("SVC expression", _svc_expr, (X, Y)),
    Layout("KernelSearch", _ksearch, (X, Y)),
    Layout("TransformSearch", _tsearch, (E, IDS)),
    Layout("GSN fit+embed", _gsn, (IMG, IMG_IDS)),
    Layout("distort", lambda a: gm.datasets.distort(a, seed=3), (IMG,)),
    Layout("md5_of_idx", gm.datasets.md5_of_idx, (IMG,)),
    Layout("as_images", gm.gsn.as_images, (IMG,)),
]


def assert_same(a: Any, b: Any) -> None:
    a, b = as_numpy(a), as_numpy(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
@pytest.mark.parametrize("case", LAYOUT_CASES, ids=[c.name for c in LAYOUT_CASES])
def test_layouts_give_the_contiguous_result(case: Layout, layout: str):
    expected = case.call(*case.arrays)
    # 1-D arrays (labels) stay contiguous; only the data arrays change layout.
    args = [LAYOUTS[layout](a) if a.ndim > 1 else readonly(a) for a in case.arrays]
    before = [a.copy() for a in args]
    assert_same(case.call(*args), expected)
    for a, b in zip(args, before):  # inputs are never written to
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "name",
    ["knn", "evaluate", "gram", "SVC", "TransformSearch"],
)
def test_non_contiguous_cpu_tensors_give_the_numpy_result(name: str):
    case = next(c for c in LAYOUT_CASES if c.name == name)
    expected = case.call(*case.arrays)
    args = [transposed_tensor(a) if a.ndim == 2 else torch.from_numpy(a) for a in case.arrays]
    assert_same(case.call(*args), expected)
