"""Bad input to gm.retrieval (knn, evaluate, Index); see test_bad_input.py for the suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _bad_input import (
    IDS,
    INF,
    META,
    NAN,
    TMP,
    Case,
    E,
    check_case,
    objects,
    strings,
    with_value,
)

import gridmatch as gm
from gridmatch.exceptions import (
    ConfigError,
    DataError,
    DeviceError,
    NotFittedError,
    ShapeError,
)
from gridmatch.retrieval import Index


def index(backend: str = "exact", **kw) -> Index:
    """An index of ``E`` (8-D) with ids 0, 3, ..., 27."""
    out = Index(8, backend=backend, **kw)
    out.add(E, np.arange(10) * 3)
    return out


def not_an_index() -> str:
    """A file that is not a saved index."""
    path = f"{TMP.name}/not-an-index.safetensors"
    with open(path, "w") as f:
        f.write("plain text")
    return path


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
    # --- gm.retrieval.Index ------------------------------------------------------------
    Case("Index/dim=0", lambda: Index(0), ConfigError, r"dim must be a positive integer, got 0"),
    Case("Index/dim str", lambda: Index("8"), ConfigError, r"dim must be a positive integer"),
    Case("Index/metric", lambda: Index(8, metric="cosine"), ConfigError, r"unknown metric 'cos"),
    Case("Index/backend", lambda: Index(8, backend="annoy"), ConfigError, r"unknown backend"),
    Case(
        "Index/factory exact",
        lambda: Index(8, factory="Flat"),
        ConfigError,
        r"factory= is a faiss index_factory string: use it with backend='faiss'",
    ),
    Case(
        "Index/factory not a str",
        lambda: Index(8, backend="faiss", factory=3),
        ConfigError,
        r"factory must be a faiss index_factory string, got 3",
    ),
    Case(
        "Index/factory unparsable",
        lambda: Index(8, backend="faiss", factory="IVFbogus,Flat"),
        ConfigError,
        r"invalid faiss factory string 'IVFbogus,Flat'",
    ),
    Case(
        "Index/train_size=0",
        lambda: Index(8, train_size=0),
        ConfigError,
        r"train_size must be None or a positive integer, got 0",
    ),
    Case("Index/seed str", lambda: Index(8, seed="1"), ConfigError, r"seed must be .*got '1'"),
    Case("Index/seed float", lambda: Index(8, seed=1.5), ConfigError, r"seed must be .*got 1.5"),
    Case("Index/seed<0", lambda: Index(8, seed=-1), ConfigError, r"seed must be .*got -1"),
    Case("Index/gpu", lambda: Index(8, gpu="yes"), ConfigError, r"gpu must be None, True or"),
    Case(
        "Index/exact without vectors",
        lambda: Index(8, keep_vectors=False),
        ConfigError,
        r"keep_vectors must be True",
    ),
    Case(
        "Index/add nan",
        lambda: Index(8).add(with_value(E, NAN, (3, 1))),
        ShapeError,
        r"E holds NaN or inf .* in 1 rows, first row 3",
    ),
    Case("Index/add inf", lambda: Index(8).add(with_value(E, INF)), ShapeError, r"NaN or inf"),
    Case(
        "Index/add float32 overflow",
        lambda: Index(8).add(with_value(E.astype(np.float64), 1e39)),
        ShapeError,
        r"values beyond float32",
    ),
    Case(
        "Index/add strings",
        lambda: Index(8).add(strings((2, 8))),
        ShapeError,
        r"E must hold real numbers",
    ),
    Case(
        "Index/add objects",
        lambda: Index(8).add(objects((2, 8))),
        ShapeError,
        r"E must hold real numbers, got dtype object",
    ),
    Case("Index/add complex", lambda: Index(8).add(E + 1j), ShapeError, r"real numbers"),
    Case("Index/add 3-D", lambda: Index(8).add(E[None]), ShapeError, r"E must be 2-D"),
    Case(
        "Index/add dim mismatch",
        lambda: Index(8).add(E[:, :4]),
        ShapeError,
        r"dimension mismatch: E has 4 columns but the index has dim 8",
    ),
    Case("Index/add meta", lambda: Index(8).add(META), DeviceError, r"E .*'meta'"),
    Case(
        "Index/add ids length",
        lambda: Index(8).add(E, np.arange(3)),
        ShapeError,
        r"3 ids but E has 10 rows",
    ),
    Case(
        "Index/add ids repeated",
        lambda: Index(8).add(E, IDS),
        ShapeError,
        r"ids must be unique; given more than once: 0",
    ),
    Case(
        "Index/add ids float",
        lambda: Index(8).add(E, np.arange(10) + 0.5),
        ShapeError,
        r"ids must hold integers \(int64\) or strings",
    ),
    Case(
        "Index/add ids nan",
        lambda: Index(8).add(E, np.full(10, NAN)),
        ShapeError,
        r"ids must hold integers",
    ),
    Case(
        "Index/add ids 2-D",
        lambda: Index(8).add(E, np.arange(10)[:, None]),
        ShapeError,
        r"ids must be 1-D",
    ),
    Case(
        "Index/add ids None",
        lambda: Index(8).add(E, [None] * 10),
        ShapeError,
        r"ids must hold only integers or only strings",
    ),
    Case(
        "Index/add ids already in",
        lambda: index().add(E[:1], [3]),
        ShapeError,
        r"ids already in the index: 3",
    ),
    Case(
        "Index/add ids of another kind",
        lambda: index().add(E[:1], ["a"]),
        ShapeError,
        r"this index has integer ids; got str ids",
    ),
    Case(
        "Index/train nan",
        lambda: Index(8, backend="faiss", factory="IVF2,Flat").train(with_value(E, NAN)),
        ShapeError,
        r"E holds NaN",
    ),
    Case(
        "Index/train too few",
        lambda: Index(8, backend="faiss", factory="IVF64,Flat").train(E),
        ShapeError,
        r"faiss could not train the index",
    ),
    Case(
        "Index/search empty index",
        lambda: Index(8).search(E, 1),
        ShapeError,
        r"the index is empty: add vectors before searching",
    ),
    Case("Index/search k=0", lambda: index().search(E, 0), ConfigError, r"k must be a positive"),
    Case("Index/search k float", lambda: index().search(E, 1.5), ConfigError, r"k must be a pos"),
    Case(
        "Index/search k > len",
        lambda: index().search(E, 11),
        ShapeError,
        r"k=11 is larger than the index \(10 vectors\)",
    ),
    Case(
        "Index/search nan",
        lambda: index().search(with_value(E, NAN), 1),
        ShapeError,
        r"Q holds NaN",
    ),
    Case(
        "Index/search dim mismatch",
        lambda: index().search(E[:, :3], 1),
        ShapeError,
        r"Q has 3 columns but the index has dim 8",
    ),
    Case("Index/search no queries", lambda: index().search(E[:0], 1), ShapeError, r"Q is empty"),
    Case(
        "Index/search meta",
        lambda: index().search(META, 1),
        DeviceError,
        r"Q .*'meta'",
    ),
    Case(
        "Index/search parameters for the exact backend",
        lambda: index().search(E, 1, nprobe=4),
        ConfigError,
        r"the exact backend has no search parameters \(got nprobe\)",
    ),
    Case(
        "Index/search unknown faiss parameter",
        lambda: index("faiss").search(E, 1, bogus=4),
        ConfigError,
        r"unknown search parameter 'bogus'",
    ),
    Case(
        "Index/remove unknown id",
        lambda: index().remove([1]),
        ShapeError,
        r"ids not in the index: 1",
    ),
    Case(
        "Index/remove repeated id",
        lambda: index().remove([3, 3]),
        ShapeError,
        r"given more than once: 3",
    ),
    Case(
        "Index/remove str ids",
        lambda: index().remove(["3"]),
        ShapeError,
        r"integer ids; cannot remove str ids",
    ),
    Case(
        "Index/recall without vectors",
        lambda: index("faiss", keep_vectors=False).recall(E, 1),
        NotFittedError,
        r"recall needs the index's vectors",
    ),
    Case(
        "Index/load missing",
        lambda: Index.load(f"{TMP.name}/no-such-index.safetensors"),
        DataError,
        r"cannot read .*no-such-index.safetensors",
    ),
    Case(
        "Index/load not an index",
        lambda: Index.load(not_an_index()),
        DataError,
        r"not-an-index.safetensors: not a valid safetensors",
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
