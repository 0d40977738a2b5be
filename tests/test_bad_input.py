"""Bad input across the whole public API, table-driven.

Every public function and estimator is fed NaN/inf, wrong dtypes (strings, objects,
complex), wrong ndim, empty arrays, mismatched lengths, torch tensors on a device that
holds no data ("meta"), single-class labels, ids with too few samples, grids larger than
the data, non-positive hyper-parameters and malformed expressions. Each case must raise
the documented exception type with a message naming the parameter or the problem.

The cases live beside this module, one file per area of the API: ``test_bad_input_retrieval.py``
(knn, evaluate, Index), ``..._expr.py``, ``..._svm.py``, ``..._search.py`` (executors
included), ``..._gsn.py`` (precision, image_augment, distributed included), ``..._photos.py``
(ImageCatalogue, ImageLoader) and ``..._io.py`` (datasets, plots, the command line); their
shared data and helpers are in ``_bad_input.py``.
This module holds the cases of ``gm.set_num_threads`` and the checks over the whole suite.

Non-contiguous (strided, Fortran-order, transposed tensors) and read-only inputs are not
errors: they must give exactly the result of the contiguous, writable input (below).

The number of cases is printed at the end of the pytest run ("bad-input suite: N cases",
see ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import test_bad_input_expr
import test_bad_input_gsn
import test_bad_input_io
import test_bad_input_photos
import test_bad_input_retrieval
import test_bad_input_search
import test_bad_input_svm
import torch
from _bad_input import (
    GSN_FAST,
    IDS,
    IMG,
    IMG_IDS,
    KERNEL,
    SEARCH_FAST,
    Case,
    E,
    X,
    Y,
    check_case,
)

import gridmatch as gm
from gridmatch.search import KernelSearch, TransformSearch
from gridmatch.svm import SVC

CASES: list[Case] = [
    # --- gm.set_num_threads ------------------------------------------------------------
    Case("threads/negative", lambda: gm.set_num_threads(-1), ValueError, r"n must be >= 0"),
    Case("threads/huge", lambda: gm.set_num_threads(10**6), ValueError, r"at most 1024"),
    Case("threads/str", lambda: gm.set_num_threads("2"), ValueError, r"n must be an integer"),
    Case("threads/float", lambda: gm.set_num_threads(1.5), ValueError, r"n must be an integer"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
    check_case(case)


def test_case_names_are_unique():
    # across the whole suite (every test_bad_input*.py module)
    names = [
        c.name
        for m in (
            test_bad_input_retrieval,
            test_bad_input_expr,
            test_bad_input_svm,
            test_bad_input_search,
            test_bad_input_gsn,
            test_bad_input_io,
            test_bad_input_photos,
        )
        for c in m.CASES
    ] + [c.name for c in CASES]
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


def _index(Ea, ia):
    index = gm.retrieval.Index(Ea.shape[1], metric="l2")
    index.add(Ea, ids=ia)
    index.remove(ia[:2])
    return index.search(Ea, 3), index.ids, index.recall(Ea, 3)


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
    Layout("Index", _index, (E, np.arange(10) * 3)),
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
    ["knn", "evaluate", "Index", "gram", "SVC", "TransformSearch"],
)
def test_non_contiguous_cpu_tensors_give_the_numpy_result(name: str):
    case = next(c for c in LAYOUT_CASES if c.name == name)
    expected = case.call(*case.arrays)
    args = [transposed_tensor(a) if a.ndim == 2 else torch.from_numpy(a) for a in case.arrays]
    assert_same(case.call(*args), expected)
