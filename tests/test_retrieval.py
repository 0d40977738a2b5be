"""gm.retrieval: exact kNN against a brute-force numpy reference, metrics against
pytorch-metric-learning's AccuracyCalculator and a numpy reference, every error path,
and the ``gridmatch evaluate`` command."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import gridmatch as gm
from gridmatch import _core, cli

METRICS = ("cosine", "ip", "l2")


# ----------------------------------------------------------------------------- references


def ref_scores(q, g, metric):
    """Score matrix in float64, oriented so that larger is better (L2: negated)."""
    q = np.asarray(q, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if metric == "cosine":
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        gn = np.linalg.norm(g, axis=1, keepdims=True)
        return (q / np.where(qn > 0, qn, 1)) @ (g / np.where(gn > 0, gn, 1)).T
    if metric == "ip":
        return q @ g.T
    d = (q**2).sum(1)[:, None] + (g**2).sum(1)[None, :] - 2 * q @ g.T
    return -d


def ref_knn(q, g, k, metric, exclude_self=False):
    """Brute force: sort every row by (-score, index)."""
    s = ref_scores(q, g, metric)
    if exclude_self:
        np.fill_diagonal(s, -np.inf)
    idx = np.array([np.lexsort((np.arange(s.shape[1]), -row))[:k] for row in s])
    out = np.take_along_axis(s, idx, 1)
    return (-out if metric == "l2" else out), idx


def ref_metrics(q, ids_q, g, ids_g, ks, metric, exclude_self=False):
    """recall@k, P@1, MAP@R, R-precision from the full brute-force ranking."""
    _, idx = ref_knn(q, g, g.shape[0] - int(exclude_self), metric, exclude_self)
    ids_q, ids_g = np.asarray(ids_q), np.asarray(ids_g)
    rec = {k: [] for k in ks}
    p1, ap, rp = [], [], []
    for i, row in enumerate(idx):
        rel = ids_g[row] == ids_q[i]
        r = int(rel.sum())
        if r == 0:
            continue
        for k in ks:
            rec[k].append(rel[:k].any())
        p1.append(rel[0])
        top = rel[:r]
        prec = np.cumsum(top) / np.arange(1, r + 1)
        ap.append((prec * top).sum() / r)
        rp.append(top.sum() / r)
    out = {f"recall@{k}": float(np.mean(v)) for k, v in rec.items()}
    out.update({"precision@1": np.mean(p1), "map@r": np.mean(ap), "r_precision": np.mean(rp)})
    return out


def assert_same_ranking(q, g, k, metric, scores, indices, exclude_self=False, tol=1e-4):
    """Exact where scores are well separated; near-ties (float32 rounding) may swap."""
    ref_s, ref_i = ref_knn(q, g, k, metric, exclude_self)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-4, atol=tol)
    full = ref_scores(q, g, metric)
    got = np.take_along_axis(full, indices, 1)
    want = np.take_along_axis(full, ref_i, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=tol)
    assert (indices == ref_i).mean() > 0.99


def tie_data(metric, seed=0):
    """Data whose scores are exact in float32, with many exact ties and duplicate rows."""
    rng = np.random.default_rng(seed)
    if metric == "cosine":
        # Unit vectors with four entries of +-0.5: dot products are multiples of 1/4.
        def units(n):
            x = np.zeros((n, 16), np.float32)
            for row in x:
                pos = rng.choice(16, 4, replace=False)
                row[pos] = rng.choice([-0.5, 0.5], 4)
            return x

        q, g = units(60), units(400)
    else:
        q = rng.integers(-2, 3, size=(60, 6)).astype(np.float32)
        g = rng.integers(-2, 3, size=(400, 6)).astype(np.float32)
    g[200:300] = g[:100]  # duplicates: exact ties between lower and higher indices
    return q, g


def clustered(n, d, n_ids, noise, seed):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, d))
    ids = rng.integers(0, n_ids, n)
    return (centers[ids] + noise * rng.normal(size=(n, d))).astype(np.float32), ids


# ----------------------------------------------------------------------------------- knn


@pytest.mark.parametrize("metric", METRICS)
def test_knn_random_matches_brute_force(metric):
    rng = np.random.default_rng(1)
    q = rng.normal(size=(150, 24)).astype(np.float32)
    g = rng.normal(size=(2500, 24)).astype(np.float32)
    s, i = gm.retrieval.knn(q, g, 10, metric=metric)
    assert s.dtype == np.float32 and i.dtype == np.int64 and s.shape == i.shape == (150, 10)
    assert_same_ranking(q, g, 10, metric, s, i)
    step = np.diff(s, axis=1)
    assert (step >= 0).all() if metric == "l2" else (step <= 0).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("block_size", [None, 1, 7, (3, 50), (64, 1000)])
def test_knn_ties_go_to_lower_index_exactly(metric, block_size):
    q, g = tie_data(metric)
    for k in (1, 5, 33):
        s, i = gm.retrieval.knn(q, g, k, metric=metric, block_size=block_size)
        ref_s, ref_i = ref_knn(q, g, k, metric)
        np.testing.assert_array_equal(i, ref_i)
        np.testing.assert_array_equal(s, ref_s.astype(np.float32))


def test_knn_clustered_with_duplicates_and_threads():
    E, _ = clustered(1200, 16, 40, 0.3, seed=2)
    E = np.round(E * 4) / 4  # coarse values: many exact ties
    E[600:700] = E[:100]
    results = []
    for threads in (1, 2):
        gm.set_num_threads(threads)
        try:
            results.append(gm.retrieval.knn(E[:300], E, 20, metric="l2"))
        finally:
            gm.set_num_threads(0)
    np.testing.assert_array_equal(results[0][1], results[1][1])
    ref_s, ref_i = ref_knn(E[:300], E, 20, "l2")
    np.testing.assert_array_equal(results[0][1], ref_i)
    np.testing.assert_allclose(results[0][0], ref_s, atol=1e-3)


def test_knn_few_queries_large_gallery_shards_the_gallery():
    q, g = tie_data("ip", seed=3)
    s, i = gm.retrieval.knn(q[:2], np.tile(g, (10, 1)), 25, metric="ip", block_size=(2, 64))
    ref_s, ref_i = ref_knn(q[:2], np.tile(g, (10, 1)), 25, "ip")
    np.testing.assert_array_equal(i, ref_i)


@pytest.mark.parametrize("metric", METRICS)
def test_knn_exclude_self(metric):
    q, g = tie_data(metric, seed=4)
    s, i = gm.retrieval.knn(g, g, 7, metric=metric, exclude_self=True, block_size=(32, 100))
    ref_s, ref_i = ref_knn(g, g, 7, metric, exclude_self=True)
    np.testing.assert_array_equal(i, ref_i)
    assert not (i == np.arange(len(g))[:, None]).any()


def test_knn_accepts_float64_lists_noncontiguous_and_tensors():
    rng = np.random.default_rng(5)
    g64 = rng.normal(size=(300, 12))
    q64 = rng.normal(size=(12, 40))[:, ::2].T  # non-contiguous (20, 12) view
    s, i = gm.retrieval.knn(q64, g64, 5)
    assert_same_ranking(q64, g64, 5, "cosine", s, i)
    s2, i2 = gm.retrieval.knn(q64.tolist(), g64, 5)
    np.testing.assert_array_equal(i2, i)
    ts, ti = gm.retrieval.knn(torch.from_numpy(q64), torch.from_numpy(g64).float(), 5)
    assert isinstance(ts, torch.Tensor) and ti.dtype == torch.int64
    np.testing.assert_array_equal(ti.numpy(), i)
    np.testing.assert_allclose(ts.numpy(), s, rtol=1e-6)
    # requires_grad tensors are fine (no autograd through the search)
    gs, gi = gm.retrieval.knn(torch.from_numpy(q64).requires_grad_(), g64, 5)
    np.testing.assert_array_equal(gi.numpy(), i)


def test_knn_cosine_zero_vector_scores_zero():
    g = np.array([[0, 0], [1, 0], [-1, 0]], np.float32)
    s, i = gm.retrieval.knn(np.array([[0, 0]], np.float32), g, 3)
    np.testing.assert_array_equal(s, [[0, 0, 0]])
    np.testing.assert_array_equal(i, [[0, 1, 2]])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("exclude_self", [False, True])
def test_torch_backend_same_results(metric, exclude_self):
    """The libtorch path used for device="cuda", run on the CPU: same rankings, ties too."""
    q, g = tie_data(metric, seed=6)
    q = g if exclude_self else q
    s, i = gm.retrieval.knn(q, g, 9, metric=metric, exclude_self=exclude_self)
    spec = {"metric": metric, "block_size": [16, 70], "exclude_self": exclude_self}
    spec["backend"] = "torch"
    ts, ti = _core.knn(torch.from_numpy(q), torch.from_numpy(g), 9, json.dumps(spec))
    np.testing.assert_array_equal(ti.numpy(), i)
    np.testing.assert_allclose(ts.numpy(), s, atol=1e-6)
    ids = np.arange(len(g)) % 37
    want = gm.retrieval.evaluate(q, ids[: len(q)], g, ids, metric=metric, exclude_self=exclude_self)
    spec = {"metric": metric, "exclude_self": exclude_self, "backend": "torch"}
    pairs = _core.evaluate(
        q, ids[: len(q)].astype(np.int64), g, ids.astype(np.int64), [1, 5, 10, 20, 50],
        json.dumps(spec),
    )  # fmt: skip
    assert dict(pairs) == pytest.approx(want, abs=1e-12)


def test_cuda_device():
    q = np.eye(4, dtype=np.float32)
    if torch.cuda.is_available():
        s, i = gm.retrieval.knn(torch.from_numpy(q).cuda(), q, 1, device="cuda")
        assert i.is_cuda and i.cpu().ravel().tolist() == [0, 1, 2, 3]
    else:
        with pytest.raises(gm.DeviceError, match="CUDA is not available"):
            gm.retrieval.knn(q, q, 1, device="cuda")
        with pytest.raises(gm.DeviceError):
            gm.retrieval.evaluate(q, [0, 0, 1, 1], q, [0, 0, 1, 1], device="cuda:0")


# ------------------------------------------------------------------------------ metrics


def accuracy_calculator(metric, **kw):
    from pytorch_metric_learning.distances import CosineSimilarity, DotProductSimilarity, LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    dist = {
        "cosine": CosineSimilarity(),
        "ip": DotProductSimilarity(normalize_embeddings=False),
        "l2": LpDistance(power=2, normalize_embeddings=False),
    }[metric]
    return AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
        knn_func=CustomKNN(dist),
        **kw,
    )


def check_against_pml(res, pml):
    assert res["precision@1"] == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert res["map@r"] == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)
    assert res["r_precision"] == pytest.approx(pml["r_precision"], abs=1e-6)


@pytest.mark.parametrize("metric", METRICS)
def test_evaluate_matches_pytorch_metric_learning(metric):
    E, ids = clustered(2500, 32, 300, 0.9, seed=7)
    Eq, iq, Eg, ig = E[:800], ids[:800], E[800:], ids[800:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few queries have no match: excluded by both
        res = gm.retrieval.evaluate(Eq, iq, Eg, ig, metric=metric)
    calc = accuracy_calculator(metric, k="max_bin_count")
    pml = calc.get_accuracy(*map(torch.from_numpy, (Eq, iq, Eg, ig)))
    check_against_pml(res, pml)
    assert res["map@r"] < res["r_precision"] < res["precision@1"] < 1  # not a trivial case
    assert res["precision@1"] == res["recall@1"]
    ref = ref_metrics(Eq, iq, Eg, ig, (1, 5, 10, 20, 50), metric)
    assert {k: res[k] for k in ref} == pytest.approx(ref, abs=1e-12)


def test_evaluate_leave_one_out_matches_pytorch_metric_learning():
    E, ids = clustered(2000, 16, 400, 0.8, seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gm.retrieval.evaluate(E, ids, E, ids, exclude_self=True)
    pml = accuracy_calculator("cosine").get_accuracy(torch.from_numpy(E), torch.from_numpy(ids))
    check_against_pml(res, pml)
    lone = np.unique(ids, return_counts=True)[1] == 1
    assert res["n_queries_without_match"] == int(lone.sum()) > 0
    ref = ref_metrics(E, ids, E, ids, (1, 5, 10, 20, 50), "cosine", exclude_self=True)
    assert {k: res[k] for k in ref} == pytest.approx(ref, abs=1e-12)


def test_evaluate_ties_match_reference():
    q, g = tie_data("l2", seed=9)
    ids_g = np.arange(len(g)) % 50
    ids_q = np.arange(len(q)) % 60
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gm.retrieval.evaluate(q, ids_q, g, ids_g, ks=(1, 3, 500), metric="l2")
    ref = ref_metrics(q, ids_q, g, ids_g, (1, 3, 500), "l2")
    assert {k: res[k] for k in ref} == pytest.approx(ref, abs=1e-12)
    assert res["recall@500"] == 1.0  # k beyond the gallery counts the whole gallery
    assert res["n_queries_without_match"] == 10


def test_evaluate_unmatched_queries_reported_and_excluded():
    E = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 1]], np.float32)
    ids_g = [0, 0, 1, 1, 2]
    with pytest.warns(UserWarning, match="1 of 3 queries have no matching id"):
        res = gm.retrieval.evaluate(E[[0, 2, 4]], [0, 1, 7], E, ids_g, ks=(1, 2))
    assert res["n_queries"] == 3 and res["n_queries_without_match"] == 1
    assert res["recall@1"] == 1.0 and res["map@r"] == 1.0
    with pytest.warns(UserWarning):
        none = gm.retrieval.evaluate(E, [5, 6, 7, 8, 9], E, ids_g)
    assert np.isnan(none["map@r"]) and none["n_queries_without_match"] == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all matched: no warning
        gm.retrieval.evaluate(E[:4], ids_g[:4], E, ids_g)


def test_evaluate_ids_any_integers():
    E, ids = clustered(400, 8, 40, 0.5, seed=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = gm.retrieval.evaluate(E[:100], ids[:100], E[100:], ids[100:])
        big = ids.astype(np.int64) * (2**40) - 2**62  # huge and negative
        res = gm.retrieval.evaluate(E[:100], big[:100], E[100:], big[100:])
        u = ids.astype(np.uint64) + np.uint64(2**63)  # beyond int64
        res_u = gm.retrieval.evaluate(E[:100], u[:100], E[100:], u[100:])
        res_t = gm.retrieval.evaluate(
            torch.from_numpy(E[:100]), torch.from_numpy(ids[:100]), E[100:], list(ids[100:])
        )
    assert res == base == res_u == res_t


def test_evaluate_string_ids_as_python_objects():
    # An ImageCatalogue's string SKUs come as an object array: same metrics as the
    # integer ids they stand for; a mix of kinds is refused.
    E, ids = clustered(300, 8, 30, 0.5, seed=12)
    skus = np.array([f"id_{i:08d}" for i in ids], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = gm.retrieval.evaluate(E[:100], ids[:100], E[100:], ids[100:])
        res = gm.retrieval.evaluate(E[:100], skus[:100], E[100:], skus[100:])
        res_o = gm.retrieval.evaluate(E[:100], ids[:100].astype(object), E[100:], ids[100:])
    assert res == base == res_o
    mixed = skus[:100].copy()
    mixed[0] = 7
    with pytest.raises(gm.ShapeError, match="ids_q must hold integer ids or string ids"):
        gm.retrieval.evaluate(E[:100], mixed, E[100:], skus[100:])


def test_evaluate_scalar_k_and_dedup():
    E, ids = clustered(200, 8, 20, 0.3, seed=11)
    res = gm.retrieval.evaluate(E, ids, E, ids, ks=5, exclude_self=True)
    assert [k for k in res if k.startswith("recall")] == ["recall@5"]
    res2 = gm.retrieval.evaluate(E, ids, E, ids, ks=(5, 1, 5), exclude_self=True)
    assert [k for k in res2 if k.startswith("recall")] == ["recall@1", "recall@5"]


# ------------------------------------------------------------------------------- errors

GOOD = np.ones((4, 3), np.float32)


@pytest.mark.parametrize(
    ("queries", "gallery", "k", "match"),
    [
        (np.ones(3, np.float32), GOOD, 1, "queries must be 2-D"),
        (GOOD, np.ones((2, 3, 4), np.float32), 1, "gallery must be 2-D"),
        (GOOD, np.ones((4, 5), np.float32), 1, "dimension mismatch"),
        (GOOD, GOOD, 5, "k=5 is out of range"),
        (np.zeros((0, 3), np.float32), GOOD, 1, "queries is empty"),
        (GOOD, np.zeros((4, 0), np.float32), 1, "gallery is empty"),
        (np.array([[1, np.nan, 0]], np.float32), GOOD, 1, "queries contains a non-finite"),
        (GOOD, np.array([[0, 0, 1], [0, np.inf, 0]]), 1, r"gallery .* row 1, column 1"),
        (np.array([[1e300, 0, 0]]), GOOD, 1, "non-finite"),  # overflows float32
        (np.array([["a", "b", "c"]]), GOOD, 1, "real numbers"),
        (np.ones((1, 3), np.complex64), GOOD, 1, "real numbers"),
    ],
)
def test_knn_shape_and_value_errors(queries, gallery, k, match):
    with pytest.raises(gm.ShapeError, match=match) as e:
        gm.retrieval.knn(queries, gallery, k)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k must be >= 1"),
        ({"k": 2.5}, "k must be a positive integer"),
        ({"k": True}, "k must be a positive integer"),
        ({"metric": "euclid"}, "unknown metric"),
        ({"device": "tpu"}, "unknown device"),
        ({"block_size": 0}, "block_size must be >= 1"),
        ({"block_size": (1, 2, 3)}, "block_size must be an int or a"),
    ],
)
def test_knn_parameter_errors(kwargs, match):
    args = {"k": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        gm.retrieval.knn(GOOD, GOOD, **args)


def test_knn_exclude_self_errors():
    with pytest.raises(gm.ShapeError, match="exclude_self needs queries and gallery"):
        gm.retrieval.knn(GOOD[:2], GOOD, 1, exclude_self=True)
    with pytest.raises(gm.ShapeError, match="minus the query itself"):
        gm.retrieval.knn(GOOD, GOOD, 4, exclude_self=True)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((GOOD, [0, 1, 2], GOOD, [0, 1, 2, 3]), {}, "ids_q has 3 ids but its embeddings have 4"),
        ((GOOD, [0, 1, 2, 3], GOOD, [[0, 1, 2, 3]]), {}, "ids_g must be 1-D"),
        ((GOOD, [0.5, 1, 2, 3], GOOD, [0, 1, 2, 3]), {}, "ids_q must hold integer ids"),
        ((GOOD, [0, 1, 2, 3], GOOD[:, :2], [0, 1, 2, 3]), {}, "dimension mismatch"),
        ((GOOD * np.nan, [0, 1, 2, 3], GOOD, [0, 1, 2, 3]), {}, "non-finite"),
        ((GOOD, [0, 1, 2, 3], GOOD[:0], []), {}, "gallery is empty"),
        ((GOOD[:2], [0, 1], GOOD, [0, 1, 2, 3]), {"exclude_self": True}, "exclude_self needs"),
    ],
)
def test_evaluate_shape_errors(args, kwargs, match):
    with pytest.raises(gm.ShapeError, match=match):
        gm.retrieval.evaluate(*args, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"ks": ()}, "ks is empty"), ({"ks": (1, 0)}, "must be >= 1"), ({"metric": "x"}, "metric")],
)
def test_evaluate_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gm.retrieval.evaluate(GOOD, [0, 0, 1, 1], GOOD, [0, 0, 1, 1], **kwargs)


# ---------------------------------------------------------------------------------- CLI


def test_cli_evaluate(tmp_path, capsys):
    E, ids = clustered(300, 8, 30, 0.4, seed=12)
    for name, arr in {"q": E[:100], "qi": ids[:100], "g": E[100:], "gi": ids[100:]}.items():
        np.save(tmp_path / f"{name}.npy", arr)
    p = [str(tmp_path / f"{n}.npy") for n in ("q", "qi", "g", "gi")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["evaluate", *p, "--ks", "1", "10", "--metric", "l2", "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        want = gm.retrieval.evaluate(
            E[:100], ids[:100], E[100:], ids[100:], ks=(1, 10), metric="l2"
        )
        assert got == pytest.approx(want)
        # Without a gallery: leave-one-out on the queries.
        assert cli.main(["evaluate", p[0], p[1]]) == 0
        out = capsys.readouterr().out
        loo = gm.retrieval.evaluate(E[:100], ids[:100], E[:100], ids[:100], exclude_self=True)
    assert "leave-one-out" in out and f"{loo['map@r']:.4f}" in out
    assert cli.main(["evaluate", p[0], str(tmp_path / "missing.npy")]) == 2
    assert "cannot read query ids" in capsys.readouterr().err
    assert cli.main(["evaluate", p[0], p[3], p[2], p[3]]) == 2  # 100 queries, 200 ids
    assert "ids_q has 200 ids" in capsys.readouterr().err


# ------------------------------------------------- score kernels and rank counting


KERNELS = ("default", "avx2", "portable")


def with_kernel(monkeypatch, kernel):
    """Cap the engine's score kernel (GRIDMATCH_KNN_KERNEL, read at every search)."""
    if kernel == "default":
        monkeypatch.delenv("GRIDMATCH_KNN_KERNEL", raising=False)
    else:
        monkeypatch.setenv("GRIDMATCH_KNN_KERNEL", kernel)


@pytest.mark.parametrize("metric", METRICS)
def test_knn_kernels_agree_bit_for_bit(monkeypatch, metric):
    # float data (no exact arithmetic): AVX-512 and AVX2 compute the same FMA chain.
    rng = np.random.default_rng(11)
    q = rng.normal(size=(301, 37)).astype(np.float32)
    g = rng.normal(size=(1003, 37)).astype(np.float32)
    out = {}
    for kernel in KERNELS:
        with_kernel(monkeypatch, kernel)
        out[kernel] = gm.retrieval.knn(q, g, 20, metric=metric, block_size=(64, 100))
    np.testing.assert_array_equal(out["default"][0], out["avx2"][0])
    np.testing.assert_array_equal(out["default"][1], out["avx2"][1])
    # The gemm crate fallback: same ranking up to float32 rounding.
    assert_same_ranking(q, g, 20, metric, *out["portable"])
    assert_same_ranking(q, g, 20, metric, *out["default"])


def many_ties(metric, n_q, n_g, seed):
    """Exact-score data (see tie_data) of any size, with duplicate gallery rows."""
    rng = np.random.default_rng(seed)
    if metric == "cosine":

        def units(n):
            x = np.zeros((n, 16), np.float32)
            pos = np.argsort(rng.random((n, 16)), axis=1)[:, :4]
            np.put_along_axis(x, pos, rng.choice([-0.5, 0.5], (n, 4)).astype(np.float32), 1)
            return x

        q, g = units(n_q), units(n_g)
    else:
        q = rng.integers(-2, 3, size=(n_q, 6)).astype(np.float32)
        g = rng.integers(-2, 3, size=(n_g, 6)).astype(np.float32)
    half = n_g // 2
    g[half : half + n_g // 4] = g[: n_g // 4]
    return q, g


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("metric", METRICS)
def test_evaluate_small_r_ties_exact_every_kernel(monkeypatch, kernel, metric):
    # Few relevant items per query (R <= 5): evaluate counts the rank of the first hit
    # instead of keeping a top-max(ks) list (portable kernel: the list path). Ties
    # everywhere, a relevant item often tied with irrelevant ones of lower index.
    q, g = many_ties(metric, 120, 1500, seed=12)
    rng = np.random.default_rng(13)
    ids_g = rng.integers(0, 400, len(g))
    ids_q = rng.integers(0, 420, len(q))  # some ids have no gallery item
    ks = (1, 2, 7, 50, 1499, 1500, 4000)
    with_kernel(monkeypatch, kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gm.retrieval.evaluate(q, ids_q, g, ids_g, ks=ks, metric=metric)
        tiled = gm.retrieval.evaluate(q, ids_q, g, ids_g, ks=ks, metric=metric, block_size=(7, 50))
    ref = ref_metrics(q, ids_q, g, ids_g, ks, metric)
    assert {k: res[k] for k in ref} == pytest.approx(ref, abs=1e-12)
    assert {k: tiled[k] for k in ref} == pytest.approx(ref, abs=1e-12)
    assert res["recall@1"] <= res["recall@7"] <= res["recall@50"] <= res["recall@1500"] == 1.0
    assert 0 < res["recall@50"] < 1
    assert res["n_queries_without_match"] > 0


@pytest.mark.parametrize("kernel", KERNELS)
def test_evaluate_leave_one_out_ties_and_sharding(monkeypatch, kernel):
    # exclude_self with duplicate rows (a query's twin scores like itself), and 3 queries
    # only, so that the gallery is split into shards whose counts are summed.
    _, E = many_ties("l2", 0, 2000, seed=14)
    ids = np.random.default_rng(15).integers(0, 700, len(E))
    with_kernel(monkeypatch, kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gm.retrieval.evaluate(E, ids, E, ids, ks=(1, 3, 30), metric="l2", exclude_self=True)
        few = gm.retrieval.evaluate(
            E[:3], ids[:3], E, ids, ks=(1, 3, 30), metric="ip", block_size=(2, 64)
        )
    ref = ref_metrics(E, ids, E, ids, (1, 3, 30), "l2", exclude_self=True)
    assert {k: res[k] for k in ref} == pytest.approx(ref, abs=1e-12)
    ref_few = ref_metrics(E[:3], ids[:3], E, ids, (1, 3, 30), "ip")
    assert {k: few[k] for k in ref_few} == pytest.approx(ref_few, abs=1e-12)


def test_evaluate_float_data_same_with_every_kernel(monkeypatch):
    # Clustered float embeddings (near-ties by rounding only): the rank-counting path
    # (default, avx2) and the list path (portable) give the same metrics, and match
    # AccuracyCalculator.
    E, ids = clustered(6000, 24, 1200, 0.9, seed=16)
    Eq, iq, Eg, ig = E[:2000], ids[:2000], E[2000:], ids[2000:]
    out = {}
    for kernel in KERNELS:
        with_kernel(monkeypatch, kernel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[kernel] = gm.retrieval.evaluate(Eq, iq, Eg, ig, metric="l2")
    assert out["default"] == out["avx2"]
    assert out["portable"] == pytest.approx(out["default"], abs=1e-12)
    pml = accuracy_calculator("l2", k="max_bin_count").get_accuracy(
        *map(torch.from_numpy, (Eq, iq, Eg, ig))
    )
    check_against_pml(out["default"], pml)
