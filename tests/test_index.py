"""gm.retrieval.Index: the exact backend against gm.retrieval.knn and numpy brute force,
the faiss backend against faiss called directly (same factory, training sample and
parameters), recall against exact search, save / load, ids, remove, every bad input, and
both import orders of faiss and gridmatch."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gridmatch as gm
from gridmatch.retrieval import Index

DIM = 16


def clustered(n, d=DIM, centers=20, seed=0):
    """Gaussian clusters (float32): what IVF and HNSW are built for."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32) * 4
    return c[rng.integers(0, centers, n)] + rng.standard_normal((n, d)).astype(np.float32)


def brute(Q, E, k, metric):
    """numpy brute force in float64: scores and rows, best first."""
    Q, E = Q.astype(np.float64), E.astype(np.float64)
    if metric == "ip":
        s = Q @ E.T
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    else:
        s = ((Q[:, None, :] - E[None, :, :]) ** 2).sum(-1)
        order = np.argsort(s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), order


@pytest.fixture(scope="module")
def data():
    return clustered(2000, seed=1), clustered(60, seed=2)


@pytest.fixture
def faiss():
    faiss = pytest.importorskip("faiss")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # HNSW builds identically only on one thread
    yield faiss
    faiss.omp_set_num_threads(before)


# ------------------------------------------------------------------------ exact backend


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_equals_knn_and_brute_force(data, metric):
    E, Q = data
    ids = np.arange(len(E)) * 7 + 3
    index = Index(DIM, metric=metric)
    index.add(E, ids)
    scores, got = index.search(Q, k=10)
    ks, kr = gm.retrieval.knn(Q, E, 10, metric=metric)
    np.testing.assert_array_equal(got, ids[kr])
    np.testing.assert_array_equal(scores, ks)
    bs, br = brute(Q, E, 10, metric)
    np.testing.assert_array_equal(got, ids[br])
    np.testing.assert_allclose(scores, bs, rtol=1e-4, atol=1e-3)
    assert scores.dtype == np.float32 and got.dtype == np.int64
    # l2 distances ascend, inner products descend (the way faiss returns them)
    step = np.diff(scores, axis=1)
    assert (step >= 0).all() if metric == "l2" else (step <= 0).all()
    assert index.recall(Q, 10) == 1.0


def test_exact_across_several_adds_and_default_ids(data):
    E, Q = data
    index = Index(DIM, metric="l2")
    index.add(E[:500])
    index.add(E[500:])
    assert len(index) == len(E)
    np.testing.assert_array_equal(index.ids, np.arange(len(E)))
    _, got = index.search(Q, 5)
    np.testing.assert_array_equal(got, brute(Q, E, 5, "l2")[1])


def test_string_ids_and_remove(data):
    E, Q = data
    names = np.array([f"sku-{i:05d}" for i in range(len(E))])
    index = Index(DIM, metric="ip")
    index.add(E, names.tolist())
    gone = names[brute(Q[:3], E, 4, "ip")[1].ravel()]
    gone = np.unique(gone)
    assert index.remove(gone) == len(gone)
    assert len(index) == len(E) - len(gone)
    keep = ~np.isin(names, gone)
    _, got = index.search(Q, 6)
    np.testing.assert_array_equal(got, names[keep][brute(Q, E[keep], 6, "ip")[1]])
    assert not np.isin(got, gone).any()
    # a removed id can be added again
    index.add(E[:1], [gone[0]])
    assert gone[0] in index.ids


def test_single_query_vector_and_torch_input(data):
    import torch

    E, Q = data
    index = Index(DIM)
    index.add(torch.from_numpy(E))
    s1, i1 = index.search(Q[0], 3)
    s2, i2 = index.search(torch.from_numpy(Q[:1]), 3)
    np.testing.assert_array_equal(i1, i2)
    assert i1.shape == (1, 3)


# ------------------------------------------------------------------------ faiss backend


def faiss_direct(faiss, factory, metric, train, E, Q, k, **params):
    """The same search with faiss alone: index_factory, train, add, set params, search."""
    kind = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    index = faiss.index_factory(DIM, factory, kind)
    index.train(train)
    index.add(E)
    for name, value in params.items():
        faiss.ParameterSpace().set_index_parameter(index, name, value)
    return index.search(Q, k)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_faiss_flat_equals_exact(data, faiss, metric):
    E, Q = data
    exact, flat = Index(DIM, metric=metric), Index(DIM, metric=metric, backend="faiss")
    exact.add(E)
    flat.add(E)
    assert flat.factory == "Flat"
    s1, i1 = exact.search(Q, 10)
    s2, i2 = flat.search(Q, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-3)
    assert flat.recall(Q, 10) == 1.0


@pytest.mark.parametrize(
    ("factory", "params", "bound"),
    [
        ("IVF16,Flat", {"nprobe": 4}, 0.9),
        ("IVF16,PQ8x4", {"nprobe": 4}, 0.4),
        ("HNSW16", {"efSearch": 32}, 0.9),
    ],
)
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_faiss_equals_faiss_called_directly(data, faiss, factory, params, bound, metric):
    E, Q = data
    if metric == "ip":  # L2-normalised, as embeddings are (HNSW is poor on raw inner products)
        E, Q = (X / np.linalg.norm(X, axis=1, keepdims=True) for X in data)
    train = E[::2]  # the same training sample on both sides
    index = Index(DIM, metric=metric, backend="faiss", factory=factory)
    index.train(train)
    index.add(E)
    scores, got = index.search(Q, 10, **params)
    D, ref = faiss_direct(faiss, factory, metric, train, E, Q, 10, **params)
    np.testing.assert_array_equal(got, ref)  # ids = 0..n-1: faiss's own row numbers
    np.testing.assert_allclose(scores, D, rtol=1e-6)
    # recall@10 against exact search, computed by hand from gm.retrieval.knn
    truth = gm.retrieval.knn(Q, E, 10, metric=metric)[1]
    by_hand = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert index.recall(Q, 10, **params) == pytest.approx(by_hand)
    assert by_hand >= bound
    # parameters hold for one call only
    again = index.search(Q, 10)[1]
    default = faiss_direct(faiss, factory, metric, train, E, Q, 10)[1]
    np.testing.assert_array_equal(again, default)


def test_faiss_trains_on_a_seeded_sample(data, faiss):
    E, Q = data
    index = Index(DIM, backend="faiss", factory="IVF8,Flat", train_size=300, seed=5)
    index.add(E)
    rows = np.sort(np.random.default_rng(5).choice(len(E), size=300, replace=False))
    _, ref = faiss_direct(faiss, "IVF8,Flat", "ip", E[rows], E, Q, 5, nprobe=2)
    np.testing.assert_array_equal(index.search(Q, 5, nprobe=2)[1], ref)


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "HNSW16", "IVF16,PQ8x4,RFlat"])
def test_faiss_remove(data, faiss, factory):
    E, Q = data
    index = Index(DIM, metric="l2", backend="faiss", factory=factory)
    ids = [f"v{i}" for i in range(len(E))]
    index.add(E, ids)
    nearest = brute(Q, E, 3, "l2")[1]
    gone = np.unique(nearest[:, 0])
    index.remove([ids[i] for i in gone])
    assert len(index) == len(E) - len(gone)
    params = {"nprobe": 16} if "IVF" in factory else {"efSearch": 200} if "HNSW" in factory else {}
    _, got = index.search(Q, 3, **params)
    assert not np.isin(got, [ids[i] for i in gone]).any()
    keep = np.setdiff1d(np.arange(len(E)), gone)
    truth = np.array(ids)[keep][brute(Q, E[keep], 3, "l2")[1]]
    if factory in ("Flat", "IVF16,Flat"):
        # Exact searches (nprobe=16 probes every one of the 16 lists): the ids of the
        # brute force, every one of them.
        np.testing.assert_array_equal(got, truth)
        assert index.recall(Q, 3, **params) == 1.0
    else:  # approximate (a graph walk, compressed codes): nearly exact here
        assert np.mean(got == truth) > 0.9
        assert index.recall(Q, 3, **params) > 0.9


def test_faiss_import_is_lazy_and_missing_faiss_is_explained():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["faiss"] = None  # as if faiss were not installed
        import numpy as np
        import gridmatch as gm
        index = gm.retrieval.Index(4)
        index.add(np.eye(4, dtype=np.float32))
        assert index.search(np.eye(4, dtype=np.float32), 1)[1].ravel().tolist() == [0, 1, 2, 3]
        try:
            gm.retrieval.Index(4, backend="faiss")
        except ImportError as e:
            print(e)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "pip install 'gridmatch[faiss]'" in r.stdout


@pytest.mark.parametrize("first", ["faiss", "gridmatch"])
def test_import_orders(first):
    pytest.importorskip("faiss")
    imports = (
        "import faiss\nimport gridmatch as gm"
        if first == "faiss"
        else ("import gridmatch as gm\nimport faiss")
    )
    code = imports + textwrap.dedent(
        """
        import numpy as np
        import torch
        rng = np.random.default_rng(0)
        E = rng.standard_normal((500, 8)).astype(np.float32)
        torch.set_num_threads(2)
        faiss.omp_set_num_threads(2)
        a = gm.retrieval.Index(8, backend="faiss", factory="IVF4,Flat")
        a.add(E)
        b = gm.retrieval.Index(8)
        b.add(E)
        x = torch.from_numpy(E) @ torch.from_numpy(E).T  # torch's OpenMP after faiss's
        assert (a.search(E[:20], 5, nprobe=4)[1] == b.search(E[:20], 5)[1]).all()
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.parametrize(
    ("factory", "stores"),
    [("Flat", True), ("IVF16,Flat", True), ("HNSW16", True), ("IVF16,SQ8", False)],
)
def test_faiss_keeps_vectors_in_faiss_when_it_stores_them(data, faiss, tmp_path, factory, stores):
    """Index types that store the vectors unchanged keep no copy: recall and save read
    them back from faiss, with the same results as a copy (the others keep one)."""
    E, Q = data
    added = E.copy()  # the caller's arrays, changed after adding below
    index = Index(DIM, metric="l2", backend="faiss", factory=factory, gpu=False)
    index.add(added[:1200], [f"a{i}" for i in range(1200)])
    index.add(added[1200:], [f"a{i}" for i in range(1200, len(E))])
    assert (index._vectors is None) == stores
    gone = np.unique(brute(Q, E, 2, "l2")[1][:, 0])
    index.remove([f"a{i}" for i in gone])
    added[:] = 0  # the index has its own vectors
    live = np.setdiff1d(np.arange(len(E)), gone)
    np.testing.assert_array_equal(index._kept_vectors()[live], E[live])
    params = {"nprobe": 4} if "IVF" in factory else {"efSearch": 32} if "HNSW" in factory else {}
    _, got = index.search(Q, 10, **params)
    truth = np.array([f"a{i}" for i in live])[brute(Q, E[live], 10, "l2")[1]]
    by_hand = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert index.recall(Q, 10, **params) == pytest.approx(by_hand)
    # the file holds the live vectors either way; loading keeps no copy when faiss has them
    path = index.save(tmp_path / "index.safetensors")
    arrays = {name: (shape, data) for name, _, shape, data in gm._core.store_load(path)[0]}
    shape, raw = arrays["vectors"]
    np.testing.assert_array_equal(np.frombuffer(raw, np.float32).reshape(shape)[live], E[live])
    for other in (Index.load(path), pickle.loads(pickle.dumps(index))):
        assert (other._vectors is None) == stores
        assert other.recall(Q, 10, **params) == pytest.approx(by_hand)


@pytest.mark.parametrize("row", [0, 77, 1999])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e39])
def test_non_finite_values_anywhere_are_refused(data, row, value):
    E = data[0].astype(np.float64)  # 1e39 is finite in float64 but not in float32
    E[row, row % DIM] = value
    index = Index(DIM)
    with pytest.raises(gm.ShapeError, match=f"NaN or inf .* in 1 rows, first row {row}$"):
        index.add(E)
    with pytest.raises(gm.ShapeError, match=f"first row {row}$"):
        index.search(E, 1)
    assert len(index) == 0


# --------------------------------------------------------------------------- save / load


@pytest.mark.parametrize(
    ("backend", "factory"), [("exact", None), ("faiss", "IVF16,PQ8x4"), ("faiss", "HNSW16")]
)
@pytest.mark.parametrize("kind", ["int", "str"])
def test_save_load_round_trip(data, tmp_path, backend, factory, kind):
    if backend == "faiss":
        pytest.importorskip("faiss")
    E, Q = data
    index = Index(DIM, metric="l2", backend=backend, factory=factory, train_size=500)
    ids = np.arange(len(E)) * 3 - 100 if kind == "int" else [f"é-{i}" for i in range(len(E))]
    index.add(E, ids)
    index.remove(index.ids[10:40])
    path = index.save(tmp_path / "index.safetensors")
    loaded = Index.load(path)
    for a, b in zip(index.search(Q, 10), loaded.search(Q, 10)):
        np.testing.assert_array_equal(a, b)
    assert len(loaded) == len(index) and repr(loaded) == repr(index)
    np.testing.assert_array_equal(loaded.ids, index.ids)
    # it keeps working: add and remove after loading
    loaded.add(E[:5], [f"n{i}" for i in range(5)] if kind == "str" else None)
    assert len(loaded) == len(index) + 5
    copy = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_array_equal(copy.search(Q, 3)[1], loaded.search(Q, 3)[1])


def test_save_is_atomic_and_loading_checks_everything(data, tmp_path):
    E, _ = data
    index = Index(DIM)
    index.add(E[:100])
    path = tmp_path / "index.safetensors"
    index.save(path)
    good = path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["index.safetensors"]  # no temp left
    # one changed byte anywhere in the data
    bad = bytearray(good)
    bad[-7] ^= 1
    path.write_bytes(bytes(bad))
    with pytest.raises(gm.DataError, match="checksum"):
        Index.load(path)
    path.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(gm.DataError):
        Index.load(path)
    with pytest.raises(gm.DataError):
        Index.load(tmp_path / "missing.safetensors")


def test_load_refuses_other_versions_and_other_models(data, tmp_path):
    import json

    from gridmatch import _core
    from gridmatch.retrieval.index.files import encode

    E, _ = data
    index = Index(DIM)
    index.add(E[:10])
    arrays, meta = encode(index)
    config = json.loads(meta["gridmatch"])
    for change, message in [
        ({"version": 99}, "version 99 is not supported"),
        ({"format": "gridmatch.svm.SVC"}, "not a saved gridmatch Index"),
        ({"dim": DIM + 1}, "vectors"),
        ({"metric": "cosine"}, "invalid config"),
    ]:
        _core.store_save(
            str(tmp_path / "x"), arrays, {"gridmatch": json.dumps({**config, **change})}
        )
        with pytest.raises(gm.DataError, match=message):
            Index.load(tmp_path / "x")
    _core.store_save(str(tmp_path / "y"), arrays[:1], meta)  # the ids are missing
    with pytest.raises(gm.DataError, match="missing"):
        Index.load(tmp_path / "y")


# ------------------------------------------------------------------------------ bad input


def test_bad_constructor_arguments():
    with pytest.raises(gm.ConfigError, match="unknown metric 'cosine'"):
        Index(8, metric="cosine")
    with pytest.raises(gm.ConfigError, match="unknown backend 'annoy'"):
        Index(8, backend="annoy")
    with pytest.raises(gm.ConfigError, match="backend='faiss'"):
        Index(8, factory="HNSW32")
    with pytest.raises(ValueError, match="dim"):
        Index(0)


def test_unknown_factory_string_is_named(faiss):
    with pytest.raises(gm.ConfigError, match="'IVFbogus,Flat'"):
        Index(8, backend="faiss", factory="IVFbogus,Flat")
    with pytest.raises(gm.ConfigError, match="IDMap"):
        Index(8, backend="faiss", factory="IDMap,Flat")


def test_bad_vectors_and_ids(data):
    E, Q = data
    index = Index(DIM)
    with pytest.raises(gm.ShapeError, match="the index is empty"):
        index.search(Q, 1)
    with pytest.raises(gm.ShapeError, match="dimension mismatch"):
        index.add(E[:, :8])
    bad = E[:10].copy()
    bad[3, 2] = np.nan
    with pytest.raises(gm.ShapeError, match="NaN or inf"):
        index.add(bad)
    bad[3, 2] = np.inf
    with pytest.raises(gm.ShapeError, match="NaN or inf"):
        index.add(bad)
    with pytest.raises(gm.ShapeError, match="given more than once: 1"):
        index.add(E[:3], [0, 1, 1])
    with pytest.raises(gm.ShapeError, match="3 ids but E has 2 rows"):
        index.add(E[:2], [0, 1, 2])
    with pytest.raises(gm.ShapeError, match="integers"):
        index.add(E[:2], [0.5, 1.5])
    index.add(E[:10])
    assert len(index) == 10  # the failed adds changed nothing
    with pytest.raises(gm.ShapeError, match="already in the index: 4"):
        index.add(E[:1], [4])
    with pytest.raises(gm.ShapeError, match="integer ids; got str"):
        index.add(E[:1], ["a"])
    with pytest.raises(gm.ShapeError, match="k=11 is larger than the index"):
        index.search(Q, 11)
    with pytest.raises(ValueError, match="k must be"):
        index.search(Q, 0)
    with pytest.raises(gm.ShapeError, match="dimension mismatch"):
        index.search(Q[:, :4], 1)
    badq = Q[:2].copy()
    badq[1, 0] = np.nan
    with pytest.raises(gm.ShapeError, match="NaN or inf"):
        index.search(badq, 1)
    with pytest.raises(gm.ShapeError, match="not in the index: 99"):
        index.remove([3, 99])
    assert len(index) == 10  # nothing removed
    with pytest.raises(gm.ConfigError, match="exact backend has no search parameters"):
        index.search(Q, 1, nprobe=4)


def test_bad_input_faiss(data, faiss):
    E, Q = data
    index = Index(DIM, backend="faiss", factory="IVF64,Flat")
    with pytest.raises(gm.ShapeError, match="at least as large as number of clusters"):
        index.add(E[:10])
    assert len(index) == 0 and not index.is_trained
    index.add(E)
    with pytest.raises(gm.ConfigError, match="unknown search parameter 'efSearch'"):
        index.search(Q, 1, efSearch=10)
    with pytest.raises(gm.ShapeError, match="already holds vectors"):
        index.train(E)
    with pytest.raises(gm.ShapeError, match="not in the index"):
        index.remove([len(E)])
    with pytest.raises(gm.ShapeError, match="NaN or inf"):
        index.search(np.full((1, DIM), np.nan), 1)
    lean = Index(DIM, backend="faiss", keep_vectors=False)
    lean.add(E)
    with pytest.raises(gm.NotFittedError, match="keep_vectors=True"):
        lean.recall(Q, 1)
