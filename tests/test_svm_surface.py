"""SVC's scikit-learn surface: coef_, break_ties, shrinking, verbose, C=inf, callables."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_blobs
from sklearn.svm import SVC as SkSVC

from gridmatch import ConfigError, _core
from gridmatch.svm import SVC
from gridmatch.svm._spec import svm_spec


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


def _binary():
    X, y = make_blobs(n_samples=60, centers=2, n_features=3, cluster_std=2.5, random_state=3)
    return X, y


# --------------------------------------------------------------------------- coef_


@pytest.mark.parametrize("problem", ["iris", "binary"])
def test_coef_matches_sklearn(iris, problem):
    X, y = iris if problem == "iris" else _binary()
    ref = SkSVC(kernel="linear", C=0.5, tol=1e-6).fit(X, y)
    ours = SVC(kernel="linear", C=0.5, tol=1e-6).fit(X, y)
    n_pairs = len(ref.classes_) * (len(ref.classes_) - 1) // 2
    assert ours.coef_.shape == ref.coef_.shape == (n_pairs, X.shape[1])
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-4, atol=1e-4)
    # coef_ reproduces the decision function (binary: positive means classes_[1])
    if problem == "binary":
        np.testing.assert_allclose(
            X @ ours.coef_.ravel() + ours.intercept_, ours.decision_function(X), atol=1e-5
        )


def test_coef_is_read_only_and_linear_only(iris):
    X, y = iris
    m = SVC(kernel="linear").fit(X, y)
    with pytest.raises(ValueError, match="read-only"):
        m.coef_[0, 0] = 1.0
    with pytest.raises(AttributeError):
        m.coef_ = np.zeros((3, 4))
    rbf = SVC().fit(X, y)
    with pytest.raises(AttributeError, match="coef_ is only available when using a linear"):
        rbf.coef_  # noqa: B018
    assert not hasattr(rbf, "coef_") and not hasattr(SVC(kernel="linear"), "coef_")


# ---------------------------------------------------------------------- break_ties


def test_break_ties_predicts_the_argmax_of_the_ovr_scores():
    # gamma=1e6: far from every sample the scores are the intercepts alone, and votes
    # tie; break_ties=True picks argmax(decision_function) as scikit-learn does.
    X, y = make_blobs(random_state=0, n_samples=30, n_features=2)
    g = np.c_[np.linspace(X[:, 0].min(), X[:, 0].max(), 40), np.linspace(-5, 5, 40)]
    for bt in (False, True):
        params = dict(kernel="rbf", gamma=1e6, break_ties=bt)
        ours, ref = SVC(**params).fit(X, y), SkSVC(**params).fit(X, y)
        np.testing.assert_array_equal(ours.predict(g), ref.predict(g))
        if bt:
            np.testing.assert_array_equal(ours.predict(g), ours.decision_function(g).argmax(1))
    with pytest.raises(ValueError, match="break_ties must be False when"):
        SVC(decision_function_shape="ovo", break_ties=True).fit(X, y).predict(X)
    with pytest.raises(ConfigError, match="break_ties must be a bool"):
        SVC(break_ties=1).fit(X, y)


def test_break_ties_does_not_change_binary_predictions():
    X, y = _binary()
    a, b = SVC(break_ties=True).fit(X, y), SVC().fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


# ----------------------------------------------------------------- shrinking, verbose


def test_shrinking_off_gives_the_same_model(iris):
    X, y = iris
    on = SVC(kernel="rbf", C=10.0, tol=1e-6).fit(X, y)
    off = SVC(kernel="rbf", C=10.0, tol=1e-6, shrinking=False).fit(X, y)
    assert svm_spec(off)["shrinking"] is False and svm_spec(on)["shrinking"] is True
    ref = SkSVC(kernel="rbf", C=10.0, tol=1e-6, shrinking=False).fit(X, y)
    np.testing.assert_array_equal(off.support_, on.support_)
    np.testing.assert_allclose(off.dual_coef_, on.dual_coef_, atol=1e-5)
    np.testing.assert_allclose(off.decision_function(X), on.decision_function(X), atol=1e-5)
    np.testing.assert_allclose(off.decision_function(X), ref.decision_function(X), atol=1e-4)
    with pytest.raises(ConfigError, match="shrinking must be a bool"):
        SVC(shrinking="no").fit(X, y)


def test_shrinking_reaches_the_solver():
    # the spec crossing into Rust carries it (an unknown field would be refused)
    X, y = _binary()
    spec = svm_spec(SVC(kernel="linear", shrinking=False).fit(X, y))
    out = _core.svm_fit(
        np.ascontiguousarray(X, dtype=np.float32),
        y.astype(np.int64),
        np.ones(len(y)),
        json.dumps(spec),
    )
    assert out["converged"]


def test_verbose_prints_a_summary_per_pair(iris, capsys):
    X, y = iris
    SVC().fit(X, y)
    assert capsys.readouterr().out == ""
    m = SVC(verbose=True).fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "SVC fit: 3 classes, 3 one-vs-one pairs"
    assert out[1:] == [
        f"pair ({a}, {b}): {k} iterations, converged"
        for (a, b), k in zip([(0, 1), (0, 2), (1, 2)], m.n_iter_)
    ]
    with pytest.warns(Warning, match="terminated early"):
        SVC(verbose=1, max_iter=2).fit(X, y)
    assert "2 iterations, stopped at the limit (2)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="verbose must be an integer >= 0"):
        SVC(verbose=-1).fit(X, y)


# ----------------------------------------------------------------------------- C=inf


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_infinite_C_is_the_hard_margin(kernel):
    X, y = make_blobs(n_samples=40, centers=2, n_features=2, cluster_std=1.0, random_state=1)
    ref = SkSVC(kernel=kernel, C=np.inf, tol=1e-8).fit(X, y)
    ours = SVC(kernel=kernel, C=float("inf"), tol=1e-8).fit(X, y)
    np.testing.assert_array_equal(ours.support_, ref.support_)
    d_ref, d = ref.decision_function(X), ours.decision_function(X)
    np.testing.assert_allclose(d, d_ref, rtol=1e-6, atol=1e-6 * np.abs(d_ref).max())
    # the hard margin: every sample on or outside it
    assert (np.where(y == ours.classes_[1], 1, -1) * d).min() > 1 - 1e-6


def test_infinite_C_with_zero_weights_leaves_those_samples_out():
    X, y = make_blobs(n_samples=40, centers=2, n_features=2, cluster_std=1.0, random_state=1)
    sw = np.ones(len(y))
    sw[::5] = 0.0
    ref = SkSVC(kernel="linear", C=np.inf).fit(X, y, sample_weight=sw)
    ours = SVC(kernel="linear", C=np.inf).fit(X, y, sample_weight=sw)
    # (scikit-learn's support_ counts in the data without the zero-weight samples)
    np.testing.assert_array_equal(ours.support_vectors_, ref.support_vectors_)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-4)
    with pytest.raises(ConfigError, match="C must be finite"):
        SVC(C=-np.inf).fit(X, y)
    with pytest.raises(ConfigError, match="C must be"):
        SVC(C=np.nan).fit(X, y)


# ------------------------------------------------------------------------- callables


def test_callable_kernel_gets_x_as_given():
    data = np.array(["ab", "a", "b", "bb", "aab"], dtype=object)
    y = np.array([0, 0, 1, 1, 0])
    seen = []

    def k(A, B):
        seen.append((A, B))
        return np.array([[a.count("a") * b.count("a") + a.count("b") * b.count("b") for b in B]
                         for a in A], dtype=float)  # fmt: skip

    m = SVC(kernel=k).fit(data, y)
    assert seen[0][0] is data and seen[0][1] is data
    assert m.shape_fit_ == (5,) and not hasattr(m, "n_features_in_")
    words = ["aaa", "bbb"]
    assert m.predict(words).tolist() == [0, 1]
    assert seen[-1][0] is words and seen[-1][1] is data


def test_too_large_x_gives_sklearns_message():
    X = np.finfo(np.float64).max * np.random.RandomState(0).uniform(size=(10, 2))
    with pytest.raises(ValueError, match="The dual coefficients or intercepts are not finite"):
        SVC().fit(X, np.arange(10) % 2)


# ---------------------------------------------------------------------- persistence


def test_new_parameters_are_saved_and_old_files_load_with_defaults(tmp_path):
    X, y = _binary()
    m = SVC(kernel="linear", C=np.inf, shrinking=False, verbose=False, break_ties=True).fit(X, y)
    back = SVC.load(m.save(tmp_path / "m.safetensors"))
    p = back.get_params()
    assert (p["C"], p["shrinking"], p["break_ties"], p["verbose"]) == (np.inf, False, True, False)
    np.testing.assert_array_equal(back.coef_, m.coef_)
    # a file written before the parameters: its config has none of them
    arrays, meta = _core.store_load(str(tmp_path / "m.safetensors"))
    assert "Infinity" not in meta["gridmatch"]  # standard JSON
    config = json.loads(meta["gridmatch"])
    assert config["params"]["C"] == "inf"
    for name in ("shrinking", "verbose", "break_ties"):
        config["params"].pop(name)
    config["params"]["C"] = 1.0
    old = tmp_path / "old.safetensors"
    _core.store_save(str(old), list(arrays), {"gridmatch": json.dumps(config)})
    p = SVC.load(old).get_params()
    assert (p["shrinking"], p["break_ties"], p["verbose"]) == (True, False, False)
    np.testing.assert_array_equal(SVC.load(old).predict(X), m.predict(X))
