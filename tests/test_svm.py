"""gridmatch.svm.SVC against scikit-learn's libsvm-based SVC, and its error paths."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC as SkSVC

import gridmatch as gm
from gridmatch import _core
from gridmatch.svm import SVC

# ----------------------------------------------------------------------------- data


@pytest.fixture(scope="module", params=["fashion-mnist", "mnist"])
def image_subset(request, data_root, image_rows):
    return request.param, image_rows(data_root, request.param, 2500, 1000, seed=0)


# ------------------------------------------------------------------ parity (images)


@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly", "sigmoid", "sigmoid-small-gamma"])
def test_parity_with_sklearn_on_images(image_subset, kernel):
    name, (Xtr, ytr, Xte, yte) = image_subset
    params = dict(C=10.0, kernel=kernel, gamma="scale")
    if kernel == "sigmoid-small-gamma":
        # gamma="scale" saturates tanh on raw pixels (accuracy ~40-60%, identical on
        # both sides); a small gamma is the regime where sigmoid is a useful kernel.
        params.update(kernel="sigmoid", gamma=1e-3, coef0=0.0)
    ref = SkSVC(**params).fit(Xtr, ytr)
    ours = SVC(**params).fit(Xtr, ytr)
    p_ref, p_ours = ref.predict(Xte), ours.predict(Xte)
    agree = np.mean(p_ref == p_ours)
    assert agree >= 0.995, (name, kernel, agree)
    acc_ref, acc_ours = np.mean(p_ref == yte), np.mean(p_ours == yte)
    assert abs(acc_ref - acc_ours) <= 0.003, (acc_ref, acc_ours)
    n_ref, n_ours = len(ref.support_), len(ours.support_)
    assert abs(n_ref - n_ours) <= 0.02 * n_ref, (n_ref, n_ours)
    ref.decision_function_shape = ours.decision_function_shape = "ovo"
    d_ref, d_ours = ref.decision_function(Xte), ours.decision_function(Xte)
    assert d_ref.shape == d_ours.shape == (len(Xte), 45)
    corr = np.corrcoef(d_ref.ravel(), d_ours.ravel())[0, 1]
    assert corr > 0.999, corr
    # The fitted attributes have scikit-learn's layout.
    assert ours.dual_coef_.shape == (9, n_ours)
    assert ours.intercept_.shape == (45,)
    assert ours.n_support_.sum() == n_ours
    np.testing.assert_array_equal(ours.classes_, ref.classes_)


# -------------------------------------------------------------- exact, small problems


def test_two_points_hard_margin_by_hand():
    # x = 0 (class a), x = 2 (class b), linear kernel: w = 1, b = 1, alpha = 1/2.
    X = np.array([[0.0], [2.0]])
    clf = SVC(kernel="linear", C=10.0, tol=1e-6).fit(X, ["a", "b"])
    np.testing.assert_allclose(clf.dual_coef_, [[-0.5, 0.5]], atol=1e-6)
    np.testing.assert_allclose(clf.intercept_, [-1.0], atol=1e-6)
    np.testing.assert_allclose(clf.decision_function([[0.0], [1.0], [3.0]]), [-1, 0, 2], atol=1e-5)
    assert clf.predict([[0.4], [1.6]]).tolist() == ["a", "b"]
    np.testing.assert_array_equal(clf.support_, [0, 1])


def test_two_points_box_bound_by_hand():
    # C = 0.1 < 1/2: both alphas at the bound; rho is the midpoint (ub + lb) / 2.
    X = np.array([[0.0], [2.0]])
    clf = SVC(kernel="linear", C=0.1).fit(X, [0, 1])
    np.testing.assert_allclose(clf.dual_coef_, [[-0.1, 0.1]], atol=1e-9)
    np.testing.assert_allclose(clf.decision_function([[1.0], [0.0]]), [0.0, -0.2], atol=1e-6)


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly", "sigmoid"])
@pytest.mark.parametrize("shape", ["ovr", "ovo"])
def test_matches_sklearn_attributes_on_iris(iris, kernel, shape):
    X, y = iris
    kw = dict(kernel=kernel, C=3.0, tol=1e-5, decision_function_shape=shape)
    if kernel == "sigmoid":
        kw.update(gamma=0.01, coef0=-1.0)
    ref = SkSVC(**kw).fit(X, y)
    ours = SVC(**kw).fit(X, y)
    np.testing.assert_array_equal(ours.support_, ref.support_)
    np.testing.assert_array_equal(ours.n_support_, ref.n_support_)
    np.testing.assert_allclose(ours.support_vectors_, ref.support_vectors_)
    np.testing.assert_allclose(ours.dual_coef_, ref.dual_coef_, atol=2e-3 * kw["C"])
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=5e-3)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=5e-3)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


def test_binary_signs_follow_sklearn(iris):
    X, y = iris
    mask = y > 0
    Xb, yb = X[mask], np.where(y[mask] == 1, "versicolor", "virginica")
    ref = SkSVC(kernel="rbf", C=1.0, tol=1e-5).fit(Xb, yb)
    ours = SVC(kernel="rbf", C=1.0, tol=1e-5).fit(Xb, yb)
    assert ours.decision_function(Xb).shape == (len(Xb),)
    np.testing.assert_allclose(ours.decision_function(Xb), ref.decision_function(Xb), atol=2e-3)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=2e-3)
    np.testing.assert_allclose(ours.dual_coef_, ref.dual_coef_, atol=2e-3)
    np.testing.assert_array_equal(ours.predict(Xb), ref.predict(Xb))


@pytest.mark.parametrize(
    "class_weight,weights",
    [({0: 0.5, 1: 3.0, 2: 1.0}, None), ("balanced", None), (None, "random")],
)
def test_class_and_sample_weights_match_sklearn(iris, class_weight, weights):
    X, y = iris
    X, y = X[20:], y[20:]  # unbalanced classes
    sw = None
    if weights == "random":
        sw = np.random.default_rng(0).uniform(0.0, 2.0, len(y))
        sw[:5] = 0.0  # zero weight: left out, as in libsvm
    ref = SkSVC(kernel="rbf", C=2.0, class_weight=class_weight, tol=1e-5).fit(X, y, sw)
    ours = SVC(kernel="rbf", C=2.0, class_weight=class_weight, tol=1e-5).fit(X, y, sw)
    # scikit-learn's support_ counts positions after dropping zero-weight samples; ours
    # index the training set as given, so compare the vectors they point at.
    np.testing.assert_array_equal(X[ours.support_], ref.support_vectors_)
    np.testing.assert_array_equal(ours.support_vectors_, ref.support_vectors_)
    np.testing.assert_allclose(ours.dual_coef_, ref.dual_coef_, atol=5e-3)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=5e-3)


def test_precomputed_and_callable_kernels_match_sklearn(iris):
    X, y = iris
    K = X @ X.T
    ref = SkSVC(kernel="precomputed", C=0.5).fit(K, y)
    ours = SVC(kernel="precomputed", C=0.5).fit(K, y)
    np.testing.assert_array_equal(ours.support_, ref.support_)
    Kt = X[::3] @ X.T
    np.testing.assert_allclose(ours.decision_function(Kt), ref.decision_function(Kt), atol=2e-3)
    lin = SVC(kernel=lambda A, B: A @ B.T, C=0.5).fit(X, y)
    np.testing.assert_allclose(lin.decision_function(X[::3]), ref.decision_function(Kt), atol=2e-3)
    np.testing.assert_array_equal(lin.predict(X), ref.predict(K))


def test_objects_with_a_gram_method_are_kernels(iris):
    # The route expression kernels (gridmatch.expr) take: any object with .gram(X, Y).
    class Poly2:
        def gram(self, A, B):
            return (A @ B.T + 1.0) ** 2

    X, y = iris
    ours = SVC(kernel=Poly2(), C=0.5).fit(X, y)
    ref = SkSVC(kernel="poly", degree=2, gamma=1.0, coef0=1.0, C=0.5).fit(X, y)
    np.testing.assert_array_equal(ours.support_, ref.support_)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=5e-3)


def test_gamma_scale_and_auto_are_sklearns(iris):
    X, y = iris
    for gamma in ("scale", "auto", 0.3):
        ref = SkSVC(gamma=gamma).fit(X, y)
        ours = SVC(gamma=gamma).fit(X, y)
        assert ours._gamma == pytest.approx(ref._gamma)


def test_non_psd_kernel_terminates():
    # A random symmetric indefinite "kernel": libsvm's tau rule keeps SMO finite.
    rng = np.random.default_rng(1)
    A = rng.normal(size=(60, 60))
    K = (A + A.T) / 2
    y = rng.integers(0, 3, 60)
    ours = SVC(kernel="precomputed", C=1.0).fit(K, y)
    ref = SkSVC(kernel="precomputed", C=1.0).fit(K, y)
    assert ours.fit_status_ == 0
    np.testing.assert_array_equal(ours.predict(K), ref.predict(K))


def test_shared_blocks_and_on_demand_rows_give_the_same_model(iris):
    # The default cache holds the kernel blocks shared between the one-vs-one problems;
    # a tiny cache forces on-demand kernel rows with LRU eviction instead.
    X, y = iris
    big = SVC(C=5.0, tol=1e-6).fit(X, y)
    tiny = SVC(C=5.0, tol=1e-6, cache_size=0.001).fit(X, y)
    np.testing.assert_array_equal(tiny.support_, big.support_)
    np.testing.assert_allclose(tiny.dual_coef_, big.dual_coef_, atol=1e-4)
    np.testing.assert_allclose(tiny.intercept_, big.intercept_, atol=1e-4)


def test_pickle_round_trip(iris):
    X, y = iris
    clf = SVC(C=2.0).fit(X, y)
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.decision_function(X), clf.decision_function(X))
    assert clone.get_params() == clf.get_params()


def test_max_iter_warns_convergence(iris):
    X, y = iris
    with pytest.warns(gm.ConvergenceWarning, match="max_iter=2"):
        clf = SVC(max_iter=2).fit(X, y)
    assert clf.fit_status_ == 1
    assert (clf.n_iter_ <= 2).all()


def test_n_jobs_gives_same_model(iris):
    X, y = iris
    a = SVC(n_jobs=1).fit(X, y)
    b = SVC(n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(a.dual_coef_, b.dual_coef_)


def test_callback_false_stops_with_keyboard_interrupt(iris):
    X, y = iris
    seen = []

    def stop(step, total, metrics):
        seen.append((step, total))
        return False

    c = np.ones(len(y))
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    yi = y.astype(np.int64)
    with pytest.raises(KeyboardInterrupt):
        _core.svm_fit(Xf, yi, c, _spec({"kind": "rbf", "gamma": 0.1}, n_jobs=1), stop)
    assert seen and seen[0][1] == 3


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(C=0.0), "C must be"),
        (dict(C=-1.0), "C must be"),
        (dict(gamma=0.0), "gamma must be"),
        (dict(gamma=-2.0), "gamma must be"),
        (dict(gamma="wide"), "gamma must be"),
        (dict(kernel="cubic"), "expression"),
        (dict(kernel=3), "kernel must be"),
        (dict(tol=0), "tol must be"),
        (dict(max_iter=0), "max_iter"),
        (dict(decision_function_shape="ova"), "decision_function_shape"),
        (dict(n_jobs=0), "n_jobs"),
    ],
)
def test_bad_parameters_raise_value_error(iris, params, match):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        SVC(**params).fit(X, y)


def test_bad_inputs_raise_value_error(iris):
    X, y = iris
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SVC().fit(Xn, y)
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        SVC().fit(Xi, y)
    with pytest.raises(ValueError, match="2D array"):
        SVC().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        SVC().fit(X, y[:-1])
    with pytest.raises(ValueError, match="greater than one"):
        SVC().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="Unknown label type"):
        SVC().fit(X, np.linspace(0, 1, len(y)))
    with pytest.raises(ValueError, match="square"):
        SVC(kernel="precomputed").fit(X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        SVC().fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="zero or negative"):
        SVC().fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="too large for single precision"):
        SVC(kernel="linear").fit(X * 1e200, y)
    with pytest.raises(ValueError, match="not finite"):
        SVC(kernel="linear").fit(X * 1e25, y)  # finite in float32, the kernel overflows
    clf = SVC().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(Xn)
    pre = SVC(kernel="precomputed").fit(X @ X.T, y)
    with pytest.raises(ValueError, match="expecting 150 features"):
        pre.predict(X @ X[:10].T)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        SVC().predict(np.zeros((2, 2)))
    with pytest.raises(gm.NotFittedError.__mro__[2]):
        SVC().decision_function(np.zeros((2, 2)))


def _spec(kernel, **settings):
    """An SVM spec (the JSON the core reads)."""
    return json.dumps({"kernel": kernel, "tol": 1e-3, "cache_size": 10.0, **settings})


def test_core_rejects_inconsistent_arrays():
    X = np.zeros((4, 2), dtype=np.float32)
    y = np.array([0, 0, 1, 1], dtype=np.int64)
    rbf = _spec({"kind": "rbf", "gamma": 1.0})
    with pytest.raises(ValueError):
        _core.svm_fit(X, y[:3], np.ones(4), rbf)
    with pytest.raises(gm.ConfigError, match="unknown variant `nope`"):
        _core.svm_fit(X, y, np.ones(4), _spec({"kind": "nope"}))
    with pytest.raises(gm.ConfigError, match="missing field `gamma`"):
        _core.svm_fit(X, y, np.ones(4), _spec({"kind": "rbf"}))
    with pytest.raises(gm.ConfigError, match="tol must be > 0"):
        _core.svm_fit(X, y, np.ones(4), _spec({"kind": "linear"}, tol=0.0))
    with pytest.raises(ValueError, match="square"):
        _core.svm_fit(np.zeros((4, 3)), y, np.ones(4), _spec({"kind": "precomputed"}))
    with pytest.raises(ValueError, match="class 0 has no sample"):
        _core.svm_fit(X, y + 5, np.ones(4), rbf)
    # A model whose arrays disagree is rejected, not read out of bounds.
    model = {
        "support": np.array([0, 1]),
        "n_support": np.array([1, 5]),
        "dual_coef": np.zeros((1, 2)),
        "rho": np.zeros(1),
    }
    with pytest.raises(ValueError, match="inconsistent model"):
        _core.svm_decision(X, X[:2], model, rbf)
    with pytest.raises(KeyError):
        _core.svm_decision(X, X[:2], {k: v for k, v in model.items() if k != "rho"}, rbf)


def test_expression_kernel_predicts_in_rust_like_its_gram_matrix(iris):
    """An expression kernel's decision values are computed in Rust against the support
    vectors; they equal those of the same model fitted on the precomputed Gram matrices
    (scikit-learn's SVC with kernel="precomputed" on the expression's Gram as the
    independent reference for the predictions)."""
    from sklearn.svm import SVC as SkSVC

    X, y = iris
    k = gm.expr.parse("norm1(min(sin(x * y), sin(dot(x, y))))")
    Xtr, ytr, Xte = X[::2], y[::2], X[1::2]
    ours = SVC(kernel=k, C=10.0).fit(Xtr, ytr)
    pre = SVC(kernel="precomputed", C=10.0).fit(k.gram(Xtr), ytr)
    np.testing.assert_allclose(
        ours.decision_function(Xte), pre.decision_function(k.gram(Xte, Xtr)), atol=1e-6
    )
    sk = SkSVC(kernel="precomputed", C=10.0).fit(k.gram(Xtr), ytr)
    agree = (ours.predict(Xte) == sk.predict(k.gram(Xte, Xtr))).mean()
    assert agree >= 0.98, agree
    # bigger than one block of rows (256), in any order of rows
    big = np.repeat(Xte, 7, axis=0)[::-1]
    np.testing.assert_allclose(
        ours.decision_function(big), pre.decision_function(k.gram(big, Xtr)), atol=1e-6
    )


def test_expression_kernel_prediction_rejects_non_finite_values(iris):
    X, y = iris
    X = X / 10  # exp(x * y) stays finite on the training data
    clf = SVC(kernel="norm1(exp(x * y))").fit(X, y)
    bad = np.repeat(X, 3, axis=0)  # 450 rows: two blocks
    bad[280] = 1000.0  # exp(1000 * x) overflows against every support vector
    with pytest.raises(gm.ExpressionError, match=r"non-finite.*first at row 280"):
        clf.predict(bad)
    assert clf.predict(bad[:280]).shape == (280,)


# ------------------------------------------------------------ probabilities (issue 18)
