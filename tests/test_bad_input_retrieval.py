"""Bad input to gm.retrieval (knn, evaluate); see test_bad_input.py for the suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _bad_input import (
    IDS,
    INF,
    META,
    NAN,
    Case,
    E,
    check_case,
    objects,
    strings,
    with_value,
)

import gridmatch as gm
from gridmatch.exceptions import (
    DeviceError,
    ShapeError,
)

CASES: list[Case] = [
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
        r"ids_q must hold integer ids or string ids",
    ),
    Case(
        "evaluate/ids objects",
        lambda: gm.retrieval.evaluate(E, objects(10), E, IDS),
        ShapeError,
        r"ids_q must hold integer ids or string ids",
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
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
    check_case(case)
