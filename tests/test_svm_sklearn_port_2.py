"""scikit-learn 1.9.1's ``sklearn/svm/tests/test_svm.py``, SVC cases, second half.

The first half, tests/test_svm_sklearn_port.py, says how the cases are ported and lists
the dropped ones with the reasons (for both halves). Every case here is kept from
scikit-learn's file in its order, from test_immutable_coef_property on.
"""

from __future__ import annotations

import numpy as np
import pytest
from _svm_port import (
    X,
    Y,
    get_iris_dataset,
    svm,
)
from numpy.testing import (
    assert_allclose,
    assert_almost_equal,
    assert_array_almost_equal,
    assert_array_equal,
)
from sklearn import base
from sklearn.datasets import make_blobs, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.validation import _num_samples


def test_immutable_coef_property(global_random_seed):
    iris = get_iris_dataset(global_random_seed)

    # Check that primal coef modification are not silently ignored
    svms = [svm.SVC(kernel="linear").fit(iris.data, iris.target)]
    for clf in svms:
        with pytest.raises(AttributeError):
            clf.__setattr__("coef_", np.arange(3))
        with pytest.raises((RuntimeError, ValueError)):
            clf.coef_.__setitem__((0, 0), 0)


def test_svc_clone_with_callable_kernel():
    iris = get_iris_dataset(42)

    # create SVM with callable linear kernel, check that results are the same
    # as with built-in linear kernel
    svm_callable = svm.SVC(
        kernel=lambda x, y: np.dot(x, y.T),
        random_state=0,
        decision_function_shape="ovr",
    )
    # clone for checking clonability with lambda functions..
    svm_cloned = base.clone(svm_callable)
    svm_cloned.fit(iris.data, iris.target)

    svm_builtin = svm.SVC(
        kernel="linear",
        random_state=0,
        decision_function_shape="ovr",
    )

    svm_builtin.fit(iris.data, iris.target)

    # Tolerances (scikit-learn: 6 decimals): the built-in linear kernel computes in
    # float32 (SVC Notes), the callable's Gram in float64, so at the default tol=1e-3
    # the fits stop at different points (measured: dual coefficients 2.3e-3 apart,
    # intercepts 2.9e-3, decision values 2.7e-4).
    assert_allclose(svm_cloned.dual_coef_, svm_builtin.dual_coef_, atol=5e-3)
    assert_allclose(svm_cloned.intercept_, svm_builtin.intercept_, atol=5e-3)
    assert_array_equal(svm_cloned.predict(iris.data), svm_builtin.predict(iris.data))

    assert_allclose(
        svm_cloned.decision_function(iris.data),
        svm_builtin.decision_function(iris.data),
        atol=1e-3,
    )


def test_svc_bad_kernel():
    svc = svm.SVC(kernel=lambda x, y: x)
    with pytest.raises(ValueError):
        svc.fit(X, Y)


def test_libsvm_convergence_warnings(global_random_seed):
    a = svm.SVC(
        kernel=lambda x, y: np.dot(x, y.T),
        random_state=global_random_seed,
        max_iter=2,
    )
    warning_msg = (
        r"Solver terminated early \(max_iter=2\).  Consider pre-processing "
        r"your data with StandardScaler or MinMaxScaler."
    )
    with pytest.warns(ConvergenceWarning, match=warning_msg):
        a.fit(np.array(X), Y)
    assert np.all(a.n_iter_ == 2)


def test_unfitted():
    X = "foo!"  # input validation not required when SVM not fitted

    clf = svm.SVC()
    with pytest.raises(Exception, match=r".*\bSVC\b.*\bnot\b.*\bfitted\b"):
        clf.predict(X)


def test_consistent_decision_function(global_random_seed):
    a = svm.SVC(max_iter=1, random_state=global_random_seed)
    proba_1 = a.fit(X, Y).decision_function(X)
    a = svm.SVC(max_iter=1, random_state=global_random_seed)
    proba_2 = a.fit(X, Y).decision_function(X)
    assert_array_almost_equal(proba_1, proba_2)


def test_hasattr_predict_proba(global_random_seed):
    iris = get_iris_dataset(global_random_seed)

    # Method must be (un)available before or after fit, switched by
    # `probability` param

    G = svm.SVC(probability=True)
    assert hasattr(G, "predict_proba")
    G.fit(iris.data, iris.target)
    assert hasattr(G, "predict_proba")

    G = svm.SVC(probability=False)
    assert not hasattr(G, "predict_proba")
    G.fit(iris.data, iris.target)
    assert not hasattr(G, "predict_proba")

    # Switching to `probability=True` after fitting should make
    # predict_proba available, but calling it must not work:
    G.probability = True
    assert hasattr(G, "predict_proba")
    msg = "predict_proba is not available when fitted with probability=False"

    with pytest.raises(NotFittedError, match=msg):
        G.predict_proba(iris.data)


def test_decision_function_shape_two_class(global_random_seed):
    for n_classes in [2, 3]:
        X, y = make_blobs(centers=n_classes, random_state=global_random_seed)
        for estimator in [svm.SVC]:
            clf = OneVsRestClassifier(estimator(decision_function_shape="ovr")).fit(X, y)
            assert len(clf.predict(X)) == len(y)


def test_ovr_decision_function():
    # One point from each quadrant represents one class
    X_train = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    y_train = [0, 1, 2, 3]

    # First point is closer to the decision boundaries than the second point
    base_points = np.array([[5, 5], [10, 10]])

    # For all the quadrants (classes)
    X_test = np.vstack(
        (
            base_points * [1, 1],  # Q1
            base_points * [-1, 1],  # Q2
            base_points * [-1, -1],  # Q3
            base_points * [1, -1],  # Q4
        )
    )

    y_test = [0] * 2 + [1] * 2 + [2] * 2 + [3] * 2

    clf = svm.SVC(kernel="linear", decision_function_shape="ovr")
    clf.fit(X_train, y_train)

    y_pred = clf.predict(X_test)

    # Test if the prediction is the same as y
    assert_array_equal(y_pred, y_test)

    deci_val = clf.decision_function(X_test)

    # Assert that the predicted class has the maximum value
    assert_array_equal(np.argmax(deci_val, axis=1), y_pred)

    # Get decision value at test points for the predicted class
    pred_class_deci_val = deci_val[range(8), y_pred].reshape((4, 2))

    # Assert pred_class_deci_val > 0 here
    assert np.min(pred_class_deci_val) > 0.0

    # Test if the first point has lower decision value on every quadrant
    # compared to the second point
    assert np.all(pred_class_deci_val[:, 0] < pred_class_deci_val[:, 1])


@pytest.mark.parametrize("SVCClass", (svm.SVC,))
def test_svc_invalid_break_ties_param(SVCClass, global_random_seed):
    X, y = make_blobs(random_state=global_random_seed)

    svm = SVCClass(
        kernel="linear",
        decision_function_shape="ovo",
        break_ties=True,
        random_state=global_random_seed,
    ).fit(X, y)

    with pytest.raises(ValueError, match="break_ties must be False"):
        svm.predict(y)


@pytest.mark.parametrize("SVCClass", (svm.SVC,))
def test_svc_ovr_tie_breaking(SVCClass, global_random_seed):
    """Test if predict breaks ties in OVR mode.
    Related issue: https://github.com/scikit-learn/scikit-learn/issues/8277
    """
    X, y = make_blobs(random_state=global_random_seed, n_samples=20, n_features=2)

    xs = np.linspace(X[:, 0].min(), X[:, 0].max(), 100)
    ys = np.linspace(X[:, 1].min(), X[:, 1].max(), 100)
    xx, yy = np.meshgrid(xs, ys)

    common_params = dict(
        kernel="rbf",
        gamma=1e6,
        random_state=global_random_seed,
        decision_function_shape="ovr",
    )
    svm = SVCClass(
        break_ties=False,
        **common_params,
    ).fit(X, y)
    pred = svm.predict(np.c_[xx.ravel(), yy.ravel()])
    dv = svm.decision_function(np.c_[xx.ravel(), yy.ravel()])
    assert not np.all(pred == np.argmax(dv, axis=1))

    svm = SVCClass(
        break_ties=True,
        **common_params,
    ).fit(X, y)
    pred = svm.predict(np.c_[xx.ravel(), yy.ravel()])
    dv = svm.decision_function(np.c_[xx.ravel(), yy.ravel()])
    assert np.all(pred == np.argmax(dv, axis=1))


def test_gamma_scale():
    X, y = [[0.0], [1.0]], [0, 1]

    clf = svm.SVC()
    clf.fit(X, y)
    # scikit-learn's private ``_gamma``: gridmatch's SVC keeps the fitted gamma there too
    assert_almost_equal(clf._gamma, 4)


@pytest.mark.parametrize("Estimator", [svm.SVC])
def test_custom_kernel_not_array_input(Estimator):
    """Test using a custom kernel that is not fed with array-like for floats"""
    data = ["A A", "A", "B", "B B", "A B"]
    X = np.array([[2, 0], [1, 0], [0, 1], [0, 2], [1, 1]])  # count encoding
    y = np.array([1, 1, 2, 2, 1])

    def string_kernel(X1, X2):
        assert isinstance(X1[0], str)
        n_samples1 = _num_samples(X1)
        n_samples2 = _num_samples(X2)
        K = np.zeros((n_samples1, n_samples2))
        for ii in range(n_samples1):
            for jj in range(ii, n_samples2):
                K[ii, jj] = X1[ii].count("A") * X2[jj].count("A")
                K[ii, jj] += X1[ii].count("B") * X2[jj].count("B")
                K[jj, ii] = K[ii, jj]
        return K

    K = string_kernel(data, data)
    assert_array_equal(np.dot(X, X.T), K)

    svc1 = Estimator(kernel=string_kernel).fit(data, y)
    svc2 = Estimator(kernel="linear").fit(X, y)
    svc3 = Estimator(kernel="precomputed").fit(K, y)

    assert svc1.score(data, y) == svc3.score(K, y)
    assert svc1.score(data, y) == svc2.score(X, y)
    if hasattr(svc1, "decision_function"):  # classifier
        # rtol 1e-6 (scikit-learn: 1e-7): svc2's linear kernel computes in float32
        # (SVC Notes), the string kernel's Gram is float64 (measured: 1.3e-7 apart)
        assert_allclose(svc1.decision_function(data), svc2.decision_function(X), rtol=1e-6)
        assert_allclose(svc1.decision_function(data), svc3.decision_function(K))
        assert_array_equal(svc1.predict(data), svc2.predict(X))
        assert_array_equal(svc1.predict(data), svc3.predict(K))
    else:  # regressor
        assert_allclose(svc1.predict(data), svc2.predict(X))
        assert_allclose(svc1.predict(data), svc3.predict(K))


def test_svc_raises_error_internal_representation():
    """Check that SVC raises error when internal representation is altered.

    Non-regression test for #18891 and https://nvd.nist.gov/vuln/detail/CVE-2020-28975
    """
    clf = svm.SVC(kernel="linear").fit(X, Y)
    clf._n_support[0] = 1000000

    msg = "The internal representation of SVC was altered"
    with pytest.raises(ValueError, match=msg):
        clf.predict(X)


@pytest.mark.parametrize(
    "estimator, expected_n_iter_type",
    [(svm.SVC, np.ndarray)],
)
@pytest.mark.parametrize(
    "n_classes",
    [2, 3, 4],
)
def test_n_iter_libsvm(estimator, expected_n_iter_type, n_classes, global_random_seed):
    dataset = make_classification(
        n_classes=n_classes, n_informative=n_classes, random_state=global_random_seed
    )
    # Check that the type of n_iter_ is correct for the classes that inherit
    # from BaseSVC.
    # Note that for SVC, and NuSVC this is an ndarray; while for SVR, NuSVR, and
    # OneClassSVM, it is an int.
    # For SVC and NuSVC also check the shape of n_iter_.
    X, y = dataset
    n_iter = estimator(kernel="linear").fit(X, y).n_iter_
    assert type(n_iter) == expected_n_iter_type  # noqa: E721 (scikit-learn's check)
    if estimator in [svm.SVC]:
        n_classes = len(np.unique(y))
        assert n_iter.shape == (n_classes * (n_classes - 1) // 2,)


@pytest.mark.parametrize(
    "Estimator, make_dataset",
    [(svm.SVC, make_classification)],
)
@pytest.mark.parametrize("C_inf", [np.inf, float("inf")])
def test_svm_with_infinite_C(Estimator, make_dataset, C_inf, global_random_seed):
    """Check that we can pass `C=inf` that is equivalent to a very large C value.

    Non-regression test for
    https://github.com/scikit-learn/scikit-learn/issues/29772
    """
    X, y = make_dataset(random_state=global_random_seed)
    estimator_C_inf = Estimator(C=C_inf).fit(X, y)
    estimator_C_large = Estimator(C=1e10).fit(X, y)

    assert_allclose(estimator_C_large.predict(X), estimator_C_inf.predict(X))
