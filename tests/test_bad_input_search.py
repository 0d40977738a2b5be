"""Bad input to gm.search (Space, KernelSearch, TransformSearch).

See test_bad_input.py for the suite.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from _bad_input import (
    IDS,
    META,
    NAN,
    Case,
    E,
    X,
    Y,
    check_case,
    gsn_fit,
    kernel_search,
    strings,
    transform_search,
    with_value,
)

import gridmatch as gm
from gridmatch.exceptions import (
    ConfigError,
    DeviceError,
    ExpressionError,
    NotFittedError,
    ShapeError,
)
from gridmatch.search import KernelSearch, Space


class NoSubmit:
    """An executor whose ``submit`` is not callable."""

    submit = 3


class NoFuture:
    """An executor whose ``submit`` returns something other than a future."""

    def submit(self, fn, *args) -> int:
        return 3


def shut_down() -> ThreadPoolExecutor:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    return pool


CASES: list[Case] = [
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
    # --- executors ----------------------------------------------------------------------
    Case(
        "search/executor name",
        lambda: kernel_search(executor="dask"),
        ConfigError,
        r"executor must be None, 'ray' or a concurrent.futures.Executor .*got 'dask'",
    ),
    Case(
        "search/executor case",
        lambda: transform_search(executor="Ray"),
        ConfigError,
        r"executor must be None, 'ray' or .*got 'Ray'",
    ),
    Case(
        "search/executor a number",
        lambda: kernel_search(executor=3),
        ConfigError,
        r"executor must be .*an object with submit\), got 3",
    ),
    Case(
        "search/executor submit not callable",
        lambda: kernel_search(executor=NoSubmit()),
        ConfigError,
        r"executor must be .*got <.*NoSubmit",
    ),
    Case(
        "search/executor shut down",
        lambda: kernel_search(executor=shut_down()),
        ConfigError,
        r"the executor cannot take tasks: cannot schedule new futures after shutdown",
    ),
    Case(
        "search/executor submit returns no future",
        lambda: kernel_search(executor=NoFuture()),
        ConfigError,
        r"executor.submit must return a concurrent.futures.Future, got int",
    ),
    Case(
        "search/cpus_per_candidate=0",
        lambda: transform_search(executor=ThreadPoolExecutor(1), cpus_per_candidate=0),
        ConfigError,
        r"cpus_per_candidate must be a positive integer, got 0",
    ),
    Case(
        "search/cpus_per_candidate str",
        lambda: kernel_search(executor=ThreadPoolExecutor(1), cpus_per_candidate="2"),
        ConfigError,
        r"cpus_per_candidate must be a positive integer, got '2'",
    ),
    Case(
        "search/executor timeout<0",
        lambda: kernel_search(executor=ThreadPoolExecutor(1), timeout=-1),
        ConfigError,
        r"timeout must be > 0 or None, got -1",
    ),
    Case(
        "TransformSearch/no shared ids",
        lambda: transform_search(iq=np.arange(10), ig=np.arange(10) + 100),
        ShapeError,
        r"no query id appears in ids_gallery",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
    check_case(case)
