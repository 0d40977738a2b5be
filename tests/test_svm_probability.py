"""SVC(probability=True): Platt scaling and pairwise coupling against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets as skdatasets
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC as SkSVC

import gridmatch as gm
from gridmatch import _core
from gridmatch.svm import SVC


def _sk_proba_svc(**kw):
    """scikit-learn's SVC(probability=True) (deprecated in 1.9: silence its warning)."""
    import warnings

    est = SkSVC(probability=True, **kw)
    fit = est.fit

    def quiet_fit(*a, **k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return fit(*a, **k)

    est.fit = quiet_fit
    return est


def _sk_ab(est):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return est.probA_, est.probB_


def _compare_proba(ref, ours, X):
    p_ref, p_ours = ref.predict_proba(X), ours.predict_proba(X)
    assert p_ours.shape == p_ref.shape
    mad = np.abs(p_ref - p_ours).mean()
    agree = np.mean(p_ref.argmax(1) == p_ours.argmax(1))
    np.testing.assert_allclose(p_ours.sum(axis=1), 1.0, atol=1e-9)
    return mad, agree


@pytest.fixture(scope="module", params=["fashion-mnist", "mnist"])
def image_small(request, data_root, image_rows):
    return request.param, image_rows(data_root, request.param, 1500, 600, seed=1)


def test_probabilities_match_sklearn_on_images(image_small):
    name, (Xtr, ytr, Xte, yte) = image_small
    kw = dict(C=10.0, kernel="rbf", gamma="scale", random_state=0)
    ref = _sk_proba_svc(**kw).fit(Xtr, ytr)
    ours = SVC(probability=True, **kw).fit(Xtr, ytr)
    mad, agree = _compare_proba(ref, ours, Xte)
    assert mad < 0.02 and agree >= 0.98, (name, mad, agree)
    a_ref, b_ref = _sk_ab(ref)
    assert ours.probA_.shape == ours.probB_.shape == (45,)
    # Same seed -> same libsvm folds: the sigmoids agree closely, pair by pair.
    np.testing.assert_allclose(ours.probA_, a_ref, rtol=0.05, atol=0.05)
    np.testing.assert_allclose(ours.probB_, b_ref, rtol=0.05, atol=0.05)
    # predict still votes on the decision values (unchanged by the probability model).
    plain = SVC(**kw).fit(Xtr, ytr)
    np.testing.assert_array_equal(ours.predict(Xte), plain.predict(Xte))
    np.testing.assert_array_equal(ours.support_, plain.support_)


@pytest.mark.parametrize("n_classes", [3, 4])
@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly"])
def test_probabilities_match_sklearn_on_synthetic(n_classes, kernel):
    X, y = skdatasets.make_classification(
        n_samples=400,
        n_features=8,
        n_informative=5,
        n_classes=n_classes,
        n_clusters_per_class=1,
        class_sep=0.8,
        random_state=n_classes,
    )
    kw = dict(C=1.0, kernel=kernel, random_state=3, tol=1e-4)
    if kernel == "poly":
        kw.update(degree=2, coef0=1.0)
    ref = _sk_proba_svc(**kw).fit(X[:300], y[:300])
    ours = SVC(probability=True, **kw).fit(X[:300], y[:300])
    mad, agree = _compare_proba(ref, ours, X[300:])
    assert mad < 0.02 and agree >= 0.98, (mad, agree)
    for shape in ("ovr", "ovo"):
        ref.decision_function_shape = ours.decision_function_shape = shape
        np.testing.assert_allclose(
            ours.decision_function(X[300:]), ref.decision_function(X[300:]), atol=5e-3
        )


def test_binary_probabilities_match_sklearn(iris):
    X, y = iris
    mask = y > 0
    Xb, yb = X[mask], np.where(y[mask] == 1, "versicolor", "virginica")
    kw = dict(C=1.0, tol=1e-5, random_state=7)
    ref = _sk_proba_svc(**kw).fit(Xb, yb)
    ours = SVC(probability=True, **kw).fit(Xb, yb)
    mad, agree = _compare_proba(ref, ours, Xb)
    assert mad < 0.01 and agree >= 0.98, (mad, agree)
    a_ref, b_ref = _sk_ab(ref)
    np.testing.assert_allclose(ours.probA_, a_ref, rtol=0.02, atol=1e-3)
    np.testing.assert_allclose(ours.probB_, b_ref, rtol=0.02, atol=1e-3)
    # Binary: r = sigmoid of libsvm's decision value (= -decision_function), coupled by
    # libsvm's iteration as for more classes (it stops at its tolerance, so
    # P(classes_[0]) is close to, not equal to, r).
    d = -ours.decision_function(Xb)
    r = np.clip(1.0 / (1.0 + np.exp(ours.probA_[0] * d + ours.probB_[0])), 1e-7, 1 - 1e-7)
    want = [_libsvm_coupling(np.array([[0.0, v], [1 - v, 0.0]])) for v in r]
    np.testing.assert_allclose(ours.predict_proba(Xb), want, rtol=1e-10, atol=1e-13)
    assert np.abs(ours.predict_proba(Xb)[:, 0] - r).max() < 0.01


def test_probabilities_are_seeded_and_log_is_log(iris):
    X, y = iris
    a = SVC(probability=True, random_state=0).fit(X, y)
    b = SVC(probability=True, random_state=0).fit(X, y)
    c = SVC(probability=True, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.probA_, b.probA_)
    assert not np.array_equal(a.probA_, c.probA_)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))
    np.testing.assert_array_equal(a.predict_log_proba(X), np.log(a.predict_proba(X)))
    # A RandomState instance and the global generator are drawn from as scikit-learn does.
    r1 = SVC(probability=True, random_state=np.random.RandomState(5)).fit(X, y)
    r2 = SVC(probability=True, random_state=np.random.RandomState(5)).fit(X, y)
    np.testing.assert_array_equal(r1.probB_, r2.probB_)
    np.random.seed(11)  # noqa: NPY002 - the global generator is what None draws from
    g1 = SVC(probability=True).fit(X, y)
    np.random.seed(11)  # noqa: NPY002 - the global generator is what None draws from
    g2 = SVC(probability=True).fit(X, y)
    np.testing.assert_array_equal(g1.probA_, g2.probA_)
    # n_jobs does not change the result (the folds run in parallel, deterministically).
    one = SVC(probability=True, random_state=0, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(one.predict_proba(X), a.predict_proba(X))


def _libsvm_coupling(r):
    """Direct numpy transcription of libsvm's multiclass_probability (method 2)."""
    k = r.shape[0]
    Q = np.zeros((k, k))
    for t in range(k):
        for j in range(k):
            if j != t:
                Q[t, t] += r[j, t] ** 2
                Q[t, j] = -r[j, t] * r[t, j]
    p = np.full(k, 1.0 / k)
    for _ in range(max(100, k)):
        Qp = Q @ p
        pQp = p @ Qp
        if np.max(np.abs(Qp - pQp)) < 0.005 / k:
            break
        for t in range(k):
            diff = (-Qp[t] + pQp) / Q[t, t]
            p[t] += diff
            pQp = (pQp + diff * (diff * Q[t, t] + 2 * Qp[t])) / (1 + diff) / (1 + diff)
            Qp = (Qp + diff * Q[t, :]) / (1 + diff)
            p /= 1 + diff
    return p


def test_prediction_is_sigmoid_clipping_and_coupling(iris):
    X, y = iris
    clf = SVC(probability=True, random_state=0, decision_function_shape="ovo").fit(X, y)
    dec = clf.decision_function(X[::7])  # libsvm's sign for 3 classes
    want = []
    for row in dec:
        r = np.zeros((3, 3))
        k = 0
        for i in range(3):
            for j in range(i + 1, 3):
                f = row[k] * clf.probA_[k] + clf.probB_[k]
                s = np.exp(-f) / (1 + np.exp(-f)) if f >= 0 else 1 / (1 + np.exp(f))
                r[i, j] = min(max(s, 1e-7), 1 - 1e-7)
                r[j, i] = 1 - r[i, j]
                k += 1
        want.append(_libsvm_coupling(r))
    np.testing.assert_allclose(clf.predict_proba(X[::7]), np.array(want), rtol=1e-10, atol=1e-13)


def test_sigmoid_train_minimises_platt_objective():
    # Fixed decision values and labels: the core's sigmoid_train against a direct
    # minimisation (scipy) of the same objective with Platt's targets.
    from scipy.optimize import minimize

    rng = np.random.default_rng(4)
    dec = np.concatenate([rng.normal(1.0, 1.0, 60), rng.normal(-1.2, 0.8, 40)])
    pos = np.r_[np.ones(60, bool), np.zeros(40, bool)]
    pos[[3, 17, 70]] = ~pos[[3, 17, 70]]
    a, b = _core.svm_sigmoid_train(dec, pos)
    n1, n0 = pos.sum(), (~pos).sum()
    t = np.where(pos, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))

    def obj(ab):
        f = dec * ab[0] + ab[1]
        return np.sum(t * f + np.logaddexp(0, -f))  # -sum t log q + (1-t) log(1-q)

    res = minimize(obj, x0=[0.0, np.log((n0 + 1) / (n1 + 1))], method="BFGS", tol=1e-12)
    np.testing.assert_allclose([a, b], res.x, rtol=1e-4, atol=1e-5)
    assert obj([a, b]) <= res.fun + 1e-8
    with pytest.raises(ValueError):
        _core.svm_sigmoid_train(dec, pos[:-1])


@pytest.mark.parametrize("kind", ["precomputed", "callable", "expression"])
def test_probabilities_for_other_kernels(iris, kind):
    X, y = iris
    if kind == "expression":
        # The paper's expression kernel (rows evaluated in Rust) against the same
        # kernel as a Python callable (a precomputed Gram matrix).
        k = gm.expr.parse(gm.expr.PAPER_KERNEL)
        ours = SVC(kernel=k, probability=True, random_state=0).fit(X, y)
        via = SVC(kernel=lambda A, B: k.gram(A, B), probability=True, random_state=0)
        via.fit(X, y)
        p, q = ours.predict_proba(X), via.predict_proba(X)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
        assert np.abs(p - q).mean() < 0.01
        return
    K = X @ X.T
    ref = _sk_proba_svc(kernel="precomputed", C=0.5, random_state=2).fit(K, y)
    if kind == "precomputed":
        ours = SVC(kernel="precomputed", C=0.5, probability=True, random_state=2).fit(K, y)
        p = ours.predict_proba(K[::3])
    else:
        ours = SVC(kernel=lambda A, B: A @ B.T, C=0.5, probability=True, random_state=2)
        p = ours.fit(X, y).predict_proba(X[::3])
    mad = np.abs(p - ref.predict_proba(K[::3])).mean()
    assert mad < 0.02, mad


def test_probability_bad_input(iris):
    X, y = iris
    for bad in ("yes", 1, None, 0.0):
        with pytest.raises(ValueError, match="probability must be a bool"):
            SVC(probability=bad).fit(X, y)
    with pytest.raises(ValueError):
        SVC(probability=True, random_state="seed").fit(X, y)
    clf = SVC().fit(X, y)
    assert not hasattr(clf, "predict_proba") and not hasattr(clf, "predict_log_proba")
    with pytest.raises(AttributeError, match="has no attribute 'predict_proba'") as e:
        clf.predict_proba(X)
    assert "not available when probability=False" in str(e.value.__cause__)
    assert clf.probA_.shape == (0,)
    clf.probability = True  # switched on after a fit without it: not fitted for it
    with pytest.raises(NotFittedError, match="fitted with probability=False"):
        clf.predict_proba(X)
    with pytest.raises(NotFittedError):
        SVC(probability=True).predict_proba(X)
    with pytest.raises(gm.NotFittedError):
        SVC(probability=True).predict_log_proba(X)


@pytest.mark.parametrize("per_class", [1, 2, 3, 4])
def test_too_few_samples_for_five_folds_behave_as_sklearn(per_class):
    # Fewer samples than folds: libsvm's special cases (a fold whose training part has
    # one class gives +-1, an empty one 0) apply; no error, as in scikit-learn.
    rng = np.random.default_rng(per_class)
    X = np.r_[rng.normal(0, 1, (per_class, 2)), rng.normal(3, 1, (per_class, 2))]
    X = np.r_[X, rng.normal(-3, 1, (per_class, 2))]
    y = np.repeat([0, 1, 2], per_class)
    ref = _sk_proba_svc(random_state=0).fit(X, y)
    ours = SVC(probability=True, random_state=0).fit(X, y)
    a_ref, b_ref = _sk_ab(ref)
    np.testing.assert_allclose(ours.probA_, a_ref, rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(ours.probB_, b_ref, rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-3)
