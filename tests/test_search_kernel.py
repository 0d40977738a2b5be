"""Kernel search end to end (small MNIST subsets) and expression kernels in gm.svm.SVC."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.svm import SVC

import gridmatch as gm
from gridmatch.search import KernelSearch, Space


@pytest.fixture(scope="module")
def mnist_small(data_root):
    X, y = gm.datasets.load("mnist", "train", root=data_root / "mnist")
    X = X[:260].reshape(260, -1)[:, ::4].astype(np.float64) / 255.0  # 196 features
    y = y[:260]
    return (X[:160], y[:160]), (X[160:], y[160:])


# A small space seeded with good kernels (linear- and distance-based ones score 0.7-0.8 on
# these 100 validation images; chance is about 0.1): the paper's space at a dozen samples
# gives only chance-level kernels, which cannot tell a right reward from a wrong one.
GOOD_SPACE = Space(
    ["prod", "dot", "l2dist", "abs_diff"],
    ["identity", "neg", "exp", "square", "tanh"],
    ["add", "mul", "first", "expdiff"],
    units=1,
)


def sklearn_val_predictions(expr, tr, va, C=1.0):
    K = expr.gram(tr[0])
    clf = SVC(kernel="precomputed", C=C).fit(K, tr[1])
    return clf.predict(expr.gram(va[0], tr[0]))


def sklearn_val_accuracy(expr, tr, va):
    return float((sklearn_val_predictions(expr, tr, va) == va[1]).mean())


def test_kernel_search_rewards_are_svm_validation_accuracy(mnist_small):
    tr, va = mnist_small
    s = KernelSearch(
        space=GOOD_SPACE, controller="random", budget=12, batch_size=6, seed=1, progress=False
    )
    s.fit(*tr, *va)
    assert len(s.history) == 2 and s.history[-1]["sampled"] == 12
    assert s.best_score > 0.6  # well above chance (0.1): the search met good kernels
    checked = 0
    for c in s.result_.candidates:
        if not c["valid"]:
            continue
        e = gm.expr.parse(c["expr"])
        K = e.gram(tr[0])
        if np.abs(K).max() > 1e6:  # badly scaled kernels: solvers may legitimately differ
            continue
        pred = sklearn_val_predictions(e, tr, va)
        if len(np.unique(pred)) == 1:  # a constant predictor: any solver agrees on it
            continue
        assert c["reward"] == pytest.approx(float((pred == va[1]).mean()), abs=0.0126), c
        checked += 1
    assert checked >= 3
    assert s.best_score == max(c["reward"] for c in s.result_.candidates)
    assert s.best_expr_ == s.best_expr and s.best_expr.value_type == "scalar"
    assert s.result_.settings["C"] == 1.0 and s.result_.settings["controller"] == "random"
    assert s.result_.settings["space"]["binary"] == list(GOOD_SPACE.binary)


def test_kernel_search_reproducible_rl(mnist_small):
    tr, va = mnist_small
    space = Space(["prod", "dot", "abs_diff"], ["identity", "sin", "tanh"], ["add", "min"], units=1)
    runs = [
        KernelSearch(space=space, budget=10, batch_size=5, seed=5, progress=False).fit(*tr, *va)
        for _ in range(2)
    ]
    a, b = (r.result_ for r in runs)
    assert [(c["expr"], c["reward"]) for c in a.candidates] == [
        (c["expr"], c["reward"]) for c in b.candidates
    ]
    assert [h["entropy"] for h in a.history] == [h["entropy"] for h in b.history]


def test_kernel_search_bad_inputs(mnist_small):
    tr, va = mnist_small
    with pytest.raises(ValueError, match="budget"):
        KernelSearch(budget=0, progress=False).fit(*tr, *va)
    with pytest.raises(ValueError, match="kernel space"):
        KernelSearch(space="activation", budget=2, progress=False).fit(*tr, *va)
    with pytest.raises(ValueError, match="C must be"):
        KernelSearch(C=0, budget=2, progress=False).fit(*tr, *va)
    with pytest.raises(gm.ShapeError):
        KernelSearch(budget=2, progress=False).fit(tr[0], tr[1][:-1], *va)
    with pytest.raises(gm.ShapeError):
        KernelSearch(budget=2, progress=False).fit(tr[0], tr[1], va[0][:, :5], va[1])
    with pytest.raises(ValueError, match="2 classes"):
        KernelSearch(budget=2, progress=False).fit(tr[0], np.zeros(len(tr[0])), *va)


def test_svc_accepts_expressions(mnist_small):
    tr, va = mnist_small
    paper = gm.expr.parse(gm.expr.PAPER_KERNEL)
    a = gm.svm.SVC(kernel=paper).fit(*tr)
    b = gm.svm.SVC(kernel=gm.expr.PAPER_KERNEL).fit(*tr)
    np.testing.assert_array_equal(a.predict(va[0]), b.predict(va[0]))
    acc = float((a.predict(va[0]) == va[1]).mean())
    assert acc == pytest.approx(sklearn_val_accuracy(paper, tr, va), abs=0.0126)
    with pytest.raises(gm.ExpressionError, match="expression"):
        gm.svm.SVC(kernel="sin(x * ").fit(*tr)
    with pytest.raises(gm.ExpressionError, match="vector-valued"):
        gm.svm.SVC(kernel="sin(x * y)").fit(*tr)


def test_timeout_stops_a_candidate_mid_gram():
    # Data large enough that one training Gram of the paper kernel takes far longer than
    # the timeout: the candidate must stop inside the Gram loop (the deadline is checked
    # per row), not after it, and count as invalid with a "timed out" reason.
    rng = np.random.default_rng(0)
    X = rng.random((1500, 784))
    y = np.arange(1500) % 3
    t0 = time.perf_counter()
    gm.expr.parse(gm.expr.PAPER_KERNEL).gram(X[:300])
    one_fifth_gram = time.perf_counter() - t0  # 300² of 1500² pairs: 1/25 of the work
    space = Space(units=1, operands=["prod"], unary=["sin"], binary=["first"])
    s = KernelSearch(
        space=space, controller="random", budget=2, batch_size=2, timeout=0.05, progress=False
    )
    t0 = time.perf_counter()
    s.fit(X, y, X[:30], y[:30])
    elapsed = time.perf_counter() - t0
    assert s.result_.n_invalid == s.result_.n_unique >= 1
    assert all("timed out" in c["error"] for c in s.result_.candidates)
    # A full candidate would cost ~25x `one_fifth_gram` (training Gram alone).
    assert elapsed < 0.5 + 5 * one_fifth_gram, (elapsed, one_fifth_gram)


@pytest.mark.parametrize("text", [gm.expr.PAPER_KERNEL, "norm1(expdiff(x, y)) - l1dist(x, 2 * y)"])
@pytest.mark.parametrize("cache_size", [200, 0.05])
def test_expression_kernel_rows_on_demand_equal_the_precomputed_gram(mnist_small, text, cache_size):
    # SVC with an expression kernel evaluates kernel rows in Rust on demand (memory
    # bounded by cache_size, even a 50 kB cache that forces recomputation); the model
    # must be the one fitted on the full precomputed Gram matrix (same float32 kernel
    # values for the solver), the second kernel not symmetric.
    tr, va = mnist_small
    e = gm.expr.parse(text)
    a = gm.svm.SVC(kernel=e, cache_size=cache_size).fit(*tr)
    b = gm.svm.SVC(kernel="precomputed", cache_size=cache_size).fit(
        e.gram(tr[0], tr[0].copy()), tr[1]
    )
    np.testing.assert_array_equal(a.support_, b.support_)
    np.testing.assert_array_equal(a.dual_coef_, b.dual_coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
    np.testing.assert_array_equal(
        a.decision_function(va[0]), b.decision_function(e.gram(va[0], tr[0]))
    )
    with pytest.raises(gm.ExpressionError, match="non-finite"):
        gm.svm.SVC(kernel="norm1(x / (x - y))").fit(*tr)


@pytest.fixture(scope="module")
def mnist_holdout(data_root):
    X, y = gm.datasets.load("mnist", "train", root=data_root / "mnist")
    X = X[260:560].reshape(300, -1)[:, ::4].astype(np.float64) / 255.0
    return X, y[260:560]


def test_rerank_scores_the_best_kernels_on_held_out_data(mnist_small, mnist_holdout):
    tr, va = mnist_small
    s = KernelSearch(
        space=GOOD_SPACE, controller="random", budget=12, batch_size=6, seed=1, progress=False
    )
    s.fit(*tr, *va)
    ranked = s.rerank(*tr, *mnist_holdout, k=4)
    valid = [c for c in s.result_.candidates if c["valid"]]
    best4 = sorted(valid, key=lambda c: -c["reward"])[:4]
    assert sorted(str(e) for e, _ in ranked) == sorted(c["expr"] for c in best4)
    accs = [a for _, a in ranked]
    assert accs == sorted(accs, reverse=True)
    assert accs[0] > 0.6  # chance is about 0.1
    checked = 0
    for e, acc in ranked:
        if np.abs(e.gram(tr[0])).max() > 1e6:  # badly scaled: solvers may legitimately differ
            continue
        pred = sklearn_val_predictions(e, tr, mnist_holdout)
        if len(np.unique(pred)) == 1:  # a constant predictor: any solver agrees on it
            continue
        assert acc == pytest.approx(float((pred == mnist_holdout[1]).mean()), abs=0.0101), e
        checked += 1
    assert checked >= 2
    # more than there are valid candidates: all of them
    assert len(s.rerank(*tr, *mnist_holdout, k=1000)) == len(valid)


def test_rerank_scores_a_kernel_that_fails_on_the_holdout_zero(mnist_small, mnist_holdout):
    tr, va = mnist_small
    space = Space(["prod"], ["exp"], ["add"], units=1)  # one kernel: norm1(exp(x∘y) + exp(x∘y))
    s = KernelSearch(space=space, budget=2, batch_size=2, progress=False).fit(*tr, *va)
    assert s.best_score > 0.5
    with pytest.warns(RuntimeWarning, match="scores 0"):
        ranked = s.rerank(*tr, mnist_holdout[0] * 1e4, mnist_holdout[1], k=3)  # exp overflows
    assert [(str(e), a) for e, a in ranked] == [(str(s.best_expr), 0.0)]


def test_rerank_bad_inputs(mnist_small, mnist_holdout):
    tr, va = mnist_small
    Xh, yh = mnist_holdout
    with pytest.raises(gm.NotFittedError):
        KernelSearch(progress=False).rerank(*tr, Xh, yh)
    s = KernelSearch(controller="random", budget=2, batch_size=2, progress=False).fit(*tr, *va)
    assert s.result_.settings["space"]["binary"] == list(gm.search.Space.paper().binary)
    with pytest.raises(ValueError, match="k must be"):
        s.rerank(*tr, Xh, yh, k=0)
    with pytest.raises(gm.ShapeError, match="X_holdout has 5"):
        s.rerank(*tr, Xh[:, :5], yh)
    with pytest.raises(gm.ShapeError, match="y_holdout"):
        s.rerank(*tr, Xh, yh[:-1])
    with pytest.raises(gm.ShapeError, match="X_holdout contains NaN"):
        s.rerank(*tr, np.full_like(Xh, np.nan), yh)
    with pytest.raises(ValueError, match="2 classes"):
        s.rerank(tr[0], np.zeros(len(tr[0])), Xh, yh)


def test_rerank_a_saved_result(tmp_path, mnist_small, mnist_holdout):
    tr, va = mnist_small
    # C=0.01 changes the held-out accuracy of this search's best kernels (C=1 and C=10
    # agree with each other), so a re-ranking that ignored the saved C would fail here.
    s = KernelSearch(
        space=GOOD_SPACE,
        controller="random",
        budget=8,
        batch_size=4,
        seed=2,
        C=0.01,
        progress=False,
    )
    s.fit(*tr, *va)
    path = s.result_.save(tmp_path / "search.safetensors")
    loaded = gm.search.SearchResult.load(path)
    ranked = loaded.rerank(*tr, *mnist_holdout, k=3)
    assert ranked == s.rerank(*tr, *mnist_holdout, k=3)
    e, acc = ranked[0]  # the search's C (0.01), not SVC's default
    pred = gm.svm.SVC(kernel=e, C=0.01).fit(*tr).predict(mnist_holdout[0])
    assert acc == float(np.mean(pred == mnist_holdout[1]))
    default_c = gm.svm.SVC(kernel=e).fit(*tr).predict(mnist_holdout[0])
    assert acc != float(np.mean(default_c == mnist_holdout[1]))
    # a file from before settings were recorded: C must be given
    loaded.settings = {}
    with pytest.raises(ValueError, match="pass C="):
        loaded.rerank(*tr, *mnist_holdout, k=3)
    assert loaded.rerank(*tr, *mnist_holdout, k=3, C=0.01) == ranked
    assert loaded.rerank(*tr, *mnist_holdout, k=3, C=1.0) != ranked
    with pytest.raises(gm.ConfigError, match="C must be finite, got nan"):
        loaded.rerank(*tr, *mnist_holdout, k=3, C=float("nan"))


def test_rerank_refuses_a_transform_search():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(20, 4))
    ids = np.arange(20) % 5
    t = gm.search.TransformSearch(budget=4, batch_size=2, progress=False).fit(E, ids, E, ids)
    with pytest.raises(ValueError, match="transform search"):
        t.result_.rerank(E, ids, E, ids)
    t.result_.settings = {}  # inferred from the expressions
    with pytest.raises(ValueError, match="transform search"):
        t.result_.rerank(E, ids, E, ids)


def test_rerank_a_result_without_valid_candidates_is_empty(mnist_small, mnist_holdout):
    tr, _ = mnist_small
    invalid = {"expr": "norm1(exp(x * y))", "reward": 0.0, "valid": False, "error": "nan"}
    invalid |= {"step": 0, "count": 1, "seconds": 0.1}
    raw = {"candidates": [invalid], "history": [], "interrupted": False, "best": None}
    old_file = gm.search.SearchResult(raw, "random")  # no settings: kind unknown
    assert old_file.rerank(*tr, *mnist_holdout, C=1.0) == []
