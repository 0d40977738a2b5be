"""SVC on scipy.sparse input, against scikit-learn's SVC on the same sparse data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.svm import SVC as SkSVC

import gridmatch as gm
from gridmatch.svm import SVC


def tfidf_like(n, d, density, n_classes, seed):
    """Non-negative sparse rows (L2-normalised, as TF-IDF) whose classes differ in which
    features they use, with labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = sp.random(n, d, density=density, format="lil", random_state=rng, dtype=np.float64)
    for i in range(n):  # a few class-specific words
        words = rng.choice(40, 4) + 40 * y[i]
        X[i, words] = rng.uniform(0.5, 1.5, 4)
    X = sp.csr_matrix(X)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    X = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X
    return sp.csr_matrix(X), y


KERNELS = [
    dict(kernel="rbf", gamma=1.0),
    dict(kernel="linear"),
    dict(kernel="poly", gamma=1.0, coef0=1.0, degree=3),
    dict(kernel="sigmoid", gamma=0.5, coef0=-0.5),
]


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("params", KERNELS, ids=lambda p: p["kernel"])
def test_sparse_fit_and_predict_match_sklearn(params, n_classes):
    X, y = tfidf_like(600, 3000, 0.005, n_classes, seed=n_classes)
    Xt, yt = tfidf_like(300, 3000, 0.005, n_classes, seed=10 + n_classes)
    ref = SkSVC(C=10, **params).fit(X, y)
    ours = SVC(C=10, **params).fit(X, y)
    assert sp.issparse(ours.support_vectors_) and ours.support_vectors_.shape[1] == 3000
    # same support vectors to a few (the solvers stop at the same tolerance, not the
    # same iterate)
    assert len(np.setxor1d(ours.support_, ref.support_)) <= max(3, len(ref.support_) // 50)
    same = (ours.predict(Xt) == ref.predict(Xt)).mean()
    assert same >= 0.995, same
    d_ref, d_ours = ref.decision_function(Xt), ours.decision_function(Xt)
    scale = np.abs(d_ref).max()
    assert np.abs(d_ours - d_ref).max() <= 2e-3 * scale


def test_sparse_and_dense_paths_give_the_same_model():
    X, y = tfidf_like(400, 500, 0.02, 3, seed=5)
    for params in KERNELS:
        s = SVC(C=5, **params).fit(X, y)
        d = SVC(C=5, **params).fit(X.toarray(), y)
        # kernel values from float64 sparse dot products vs centred float32 rows: the
        # solvers stop at the same tolerance on slightly different numbers
        np.testing.assert_array_equal(s.support_, d.support_)
        np.testing.assert_array_equal(s.support_vectors_.toarray(), d.support_vectors_)
        ds, dd = s.decision_function(X), d.decision_function(X.toarray())
        assert np.abs(ds - dd).max() <= 2e-3 * np.abs(dd).max(), params
        assert (s.predict(X) == d.predict(X.toarray())).mean() >= 0.995


def test_formats_duplicates_and_dense_queries():
    X, y = tfidf_like(300, 800, 0.01, 3, seed=7)
    ref = SVC(C=3).fit(X, y)
    Xq = X[:50]
    want = ref.decision_function(Xq)
    for other in (
        X.tocsc(),
        sp.csr_array(X),
        X.tocoo(),
        sp.csr_matrix(X.toarray()),
    ):
        np.testing.assert_array_equal(SVC(C=3).fit(other, y).decision_function(Xq), want)
    # a CSR matrix with a column stored twice in a row means the sum of the two values
    rows = [slice(a, b) for a, b in zip(X.indptr[:-1], X.indptr[1:])]
    data = np.concatenate([np.r_[X.data[r], X.data[r]] / 2 for r in rows])
    indices = np.concatenate([np.r_[X.indices[r], X.indices[r]] for r in rows])
    dup = sp.csr_matrix((data, indices, 2 * X.indptr), shape=X.shape)
    assert dup.nnz == 2 * X.nnz
    np.testing.assert_allclose(
        SVC(C=3).fit(dup, y).decision_function(Xq), want, rtol=1e-6, atol=1e-6
    )
    # dense rows for a model fitted on sparse input are made sparse (as scikit-learn)
    np.testing.assert_array_equal(ref.decision_function(Xq.toarray()), want)
    np.testing.assert_array_equal(ref.predict(sp.csc_matrix(Xq)), ref.predict(Xq))


def test_probabilities_on_sparse_input_follow_the_dense_model():
    X, y = tfidf_like(300, 400, 0.02, 3, seed=9)
    s = SVC(C=3, probability=True, random_state=0).fit(X, y)
    d = SVC(C=3, probability=True, random_state=0).fit(X.toarray(), y)
    np.testing.assert_allclose(
        s.predict_proba(X[:40]), d.predict_proba(X[:40].toarray()), atol=1e-3
    )


def test_coef_on_sparse_input_is_sklearns_csr():
    X, y = tfidf_like(300, 500, 0.02, 3, seed=17)
    for labels in (y, y % 2):
        ours = SVC(kernel="linear", C=2).fit(X, labels).coef_
        ref = SkSVC(kernel="linear", C=2).fit(X, labels).coef_
        assert sp.issparse(ours) and ours.shape == ref.shape
        ref = ref.copy()  # (scikit-learn's is read-only and unsorted: toarray would sort it)
        np.testing.assert_allclose(ours.toarray(), ref.toarray(), atol=2e-3 * abs(ref).max())
        assert not ours.data.flags.writeable


def test_gamma_scale_is_sklearns_on_sparse_input():
    X, y = tfidf_like(200, 300, 0.03, 2, seed=11)
    ours, ref = SVC().fit(X, y), SkSVC().fit(X, y)
    assert ours._gamma == pytest.approx(ref._gamma, rel=1e-12)


def test_what_sparse_input_cannot_do():
    X, y = tfidf_like(100, 200, 0.05, 2, seed=3)
    dense = SVC().fit(X.toarray(), y)
    with pytest.raises(ValueError, match="cannot use sparse input in 'SVC' trained on dense"):
        dense.predict(X)
    with pytest.raises(TypeError, match="Sparse precomputed kernels are not supported"):
        SVC(kernel="precomputed").fit(sp.csr_matrix(np.eye(100)), y)
    with pytest.raises(TypeError, match="expression kernel.*toarray"):
        SVC(kernel=gm.expr.PAPER_KERNEL).fit(X, y)
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SVC().fit(bad, y)
    fitted = SVC().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(sp.random(5, 199, density=0.1, format="csr", random_state=0))


def test_sparse_models_save_load_and_pickle(tmp_path):
    X, y = tfidf_like(300, 600, 0.02, 3, seed=13)
    m = SVC(C=4, probability=True, random_state=1).fit(X, y)
    want = m.decision_function(X[:30])
    back = SVC.load(m.save(tmp_path / "m.safetensors"))
    assert sp.issparse(back.support_vectors_)
    np.testing.assert_array_equal(back.decision_function(X[:30]), want)
    np.testing.assert_array_equal(back.predict_proba(X[:30]), m.predict_proba(X[:30]))
    np.testing.assert_array_equal(back.support_vectors_.toarray(), m.support_vectors_.toarray())
    again = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(again.decision_function(X[:30]), want)
