"""The sparse evaluator (taken on data with many zeros) against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from test_expr import BINARY, UNARY, reference_gram

import gridmatch as gm
from gridmatch.expr import PAPER_KERNEL, parse


def paper_numpy(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``norm1(min(sin(x * y), sin(dot(x, y))))`` by broadcasting, in chunks of rows."""
    d = X.shape[1]
    s = np.sin(X @ Y.T / d)
    out = np.empty((len(X), len(Y)))
    for i in range(0, len(X), 16):
        xy = np.sin(X[i : i + 16, None, :] * Y[None, :, :])
        out[i : i + 16] = np.abs(np.minimum(xy, s[i : i + 16, :, None])).sum(-1)
    return out


def rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))


@pytest.fixture(scope="module")
def mnist(data_root):
    X, _ = gm.datasets.load("mnist", "train", root=data_root / "mnist")
    Xt, _ = gm.datasets.load("mnist", "test", root=data_root / "mnist")
    return (
        X[:300].reshape(300, -1).astype(np.float64) / 255.0,
        Xt[:200].reshape(200, -1).astype(np.float64) / 255.0,
    )


def test_paper_kernel_on_mnist_matches_numpy(mnist):
    X, Xt = mnist
    assert np.mean(X == 0) > 0.7  # the sparse path's case
    k = parse(PAPER_KERNEL)
    want = paper_numpy(Xt, X)
    assert rel(k.gram(Xt, X), want) < 1e-12
    assert rel(k.gram(X, Xt), want.T) < 1e-12
    assert rel(k.gram(X), paper_numpy(X, X)) < 1e-12


def sparse_data(rng: np.random.Generator, n: int, d: int, density: float) -> np.ndarray:
    X = rng.uniform(-1.5, 1.5, (n, d))
    X[rng.random((n, d)) > density] = 0.0
    return X


# Values at zero that are not zero, NaN/inf producers, nested reductions.
TEXTS = [
    "norm1(cos(x * y)) + norm1(exp(x) - cosh(y))",
    "norm1(sigmoid(x * y) + softplus(x - y))",
    "norm1(min(sin(x * y), sin(dot(x, y)))) + l2(tanh(x) * sinh(y))",
    "norm1(max(x, y) - min(x, 0.5) + expdiff(x, y))",
    "l1dist(x, y) + l2dist(x, y) + dot(relu(x), min0(y)) + l1(x + y)",
    "norm1(x * (y + 1)) + norm1(y * cos(x)) + norm1(2)",
    "norm1(x * y / dot(x, y))",
    "norm1(square(x) - cube(y) + abs(x) * sign(y) + sqrt_abs(x * y))",
]


@pytest.mark.parametrize("text", TEXTS)
def test_sparse_data_match_numpy(text):
    rng = np.random.default_rng(1)
    X, Y = sparse_data(rng, 40, 120, 0.15), sparse_data(rng, 30, 120, 0.2)
    k = parse(text)
    for a, b in ((X, Y), (Y, X)):
        want = reference_gram(text, a, b)
        got = k.gram(a, b, check_finite=False)
        fin = np.isfinite(want)
        assert np.array_equal(np.isfinite(got), fin), text
        assert rel(got[fin], want[fin]) < 1e-12, text


@pytest.mark.parametrize("name", sorted(UNARY) + sorted(BINARY))
def test_nan_and_inf_on_sparse_data_like_numpy(name):
    # x / y is 0 / 0 = NaN where both are zero and ±inf where only y is: every function
    # must see those as the dense evaluation does.
    rng = np.random.default_rng(2)
    X = sparse_data(rng, 12, 80, 0.2)
    arg = "x / y"
    text = f"norm1({name}({arg}))" if name in UNARY else f"norm1({name}({arg}, 0.5))"
    want = reference_gram(text, X, X)
    got = parse(text).gram(X, X[::-1].copy(), check_finite=False)[:, ::-1]
    assert np.array_equal(np.isnan(got), np.isnan(want)), text
    assert np.array_equal(np.isinf(got), np.isinf(want)), text
    with pytest.raises(gm.GridmatchError):
        parse(text).gram(X, X)


def test_svc_kernel_rows_on_sparse_data(mnist):
    # The SVC's on-demand kernel rows take the sparse path too: the same model as on a
    # precomputed Gram matrix of the same kernel.
    X, Xt = mnist
    y = (np.arange(len(X)) % 3).astype(np.int64)
    k = parse(PAPER_KERNEL)
    a = gm.svm.SVC(kernel=k).fit(X, y)
    b = gm.svm.SVC(kernel="precomputed").fit(paper_numpy(X, X), y)
    np.testing.assert_array_equal(a.predict(Xt), b.predict(paper_numpy(Xt, X)))
