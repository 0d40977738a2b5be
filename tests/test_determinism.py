"""Determinism: the same seed gives bit-identical models on CPU.

The SVM (built-in and expression kernels, precomputed-block and LRU-cache solver paths),
the kernel search, exact kNN and the retrieval metrics give bit-identical results with
1, 2, 3, 5 and 8 threads (more threads than this machine's cores included). The Grid Search
Network gives bit-identical embeddings for the same seed and thread count (across torch
thread counts its float reductions may differ in the last bits, so that is not promised).
"""

from __future__ import annotations

import numpy as np
import pytest

import gridmatch as gm
from gridmatch.search import KernelSearch, Space
from gridmatch.svm import SVC

THREAD_COUNTS = (1, 2, 3, 5, 8)


@pytest.fixture(scope="module")
def digits():
    X, y = gm.datasets.load_sample("mnist", "train")
    return X[:600].reshape(600, -1).astype(np.float64) / 255.0, y[:600]


@pytest.fixture
def threads():
    """Set gridmatch's thread count; restored afterwards."""
    before = gm.get_num_threads()["rayon"]
    yield gm.set_num_threads
    gm.set_num_threads(before)


def _svc_state(m: SVC, X) -> list[np.ndarray]:
    return [m.dual_coef_, m.intercept_, m.support_, m.decision_function(X), m.n_iter_]


@pytest.mark.parametrize(
    ("kernel", "n", "cache_size"),
    [
        ("rbf", 600, 200),  # within-class kernel blocks precomputed
        ("rbf", 600, 1),  # kernel rows on demand through a 1 MB LRU cache
        ("poly", 600, 1),
        (gm.expr.PAPER_KERNEL, 250, 200),  # expression kernel: Gram from the evaluator
    ],
    ids=["rbf-blocks", "rbf-lru", "poly-lru", "expression"],
)
def test_svc_is_bit_identical_across_thread_counts(digits, threads, kernel, n, cache_size):
    X, y = digits[0][:n], digits[1][:n]
    states = []
    for t in THREAD_COUNTS:
        threads(t)
        states.append(_svc_state(SVC(kernel=kernel, cache_size=cache_size).fit(X, y), X))
    # n_jobs overrides the pool: the same model again
    states.append(_svc_state(SVC(kernel=kernel, cache_size=cache_size, n_jobs=2).fit(X, y), X))
    for other in states[1:]:
        for a, b in zip(states[0], other):
            np.testing.assert_array_equal(a, b)


def test_kernel_search_history_is_bit_identical_across_thread_counts(digits, threads):
    X, y = digits
    space = Space(["prod", "dot", "abs_diff"], ["identity", "sin", "tanh"], ["add", "min"], units=1)
    runs = []
    for t in THREAD_COUNTS:
        threads(t)
        s = KernelSearch(space=space, budget=8, batch_size=4, seed=5, progress=False)
        s.fit(X[:200], y[:200], X[200:300], y[200:300])
        runs.append(s.result_)
    a = runs[0]
    keys = ("reward", "reward_max", "best_so_far", "entropy", "baseline", "unique")
    for b in runs[1:]:
        assert [(c["expr"], c["reward"], c["valid"]) for c in a.candidates] == [
            (c["expr"], c["reward"], c["valid"]) for c in b.candidates
        ]
        assert [[h[k] for k in keys] for h in a.history] == [
            [h[k] for k in keys] for h in b.history
        ]
        assert a.best_expr == b.best_expr


def test_knn_and_metrics_are_bit_identical_across_thread_counts(threads):
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(300, 32))
    ids = rng.integers(0, 300, 3000)
    E = (centres[ids] + 0.7 * rng.normal(size=(3000, 32))).astype(np.float32)
    E[2000:2100] = E[:100]  # exact ties
    runs = []
    for t in THREAD_COUNTS:
        threads(t)
        s, i = gm.retrieval.knn(E[:700], E, 15, metric="l2")
        m = gm.retrieval.evaluate(E, ids, E, ids, ks=(1, 5, 10), exclude_self=True)
        runs.append((s, i, m))
    for s, i, m in runs[1:]:
        np.testing.assert_array_equal(s, runs[0][0])
        np.testing.assert_array_equal(i, runs[0][1])
        assert m == runs[0][2]


@pytest.mark.parametrize("n_threads", THREAD_COUNTS)
def test_gsn_same_seed_same_embeddings(threads, n_threads):
    X, ids = gm.datasets.load_sample("fashion-mnist", "train")
    X, ids = X[:64], ids[:64]
    threads(n_threads)
    kw = dict(dim=16, batch_size=16, steps_per_epoch=3, epochs=1, progress=False, grid=(2, 2))
    a = gm.GridSearchNetwork(seed=1, **kw).fit(X, ids)
    b = gm.GridSearchNetwork(seed=1, **kw).fit(X, ids)
    np.testing.assert_array_equal(a.embed(X[:20]), b.embed(X[:20]))
    assert a.history_[0]["loss"] == b.history_[0]["loss"]
    c = gm.GridSearchNetwork(seed=2, **kw).fit(X, ids)
    assert not np.array_equal(a.embed(X[:20]), c.embed(X[:20]))
