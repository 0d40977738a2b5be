"""The expression language: parsing, canonical printing, and Rust evaluation against numpy."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys

import numpy as np
import pytest

import gridmatch as gm
from gridmatch.expr import FUNCTIONS, PAPER_KERNEL, Expr, parse

UNARY = {
    "abs": np.abs,
    "square": np.square,
    "cube": lambda a: a**3,
    "sqrt_abs": lambda a: np.sqrt(np.abs(a)),
    "exp": np.exp,
    "sin": np.sin,
    "cos": np.cos,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0),
    "min0": lambda a: np.minimum(a, 0),
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "softplus": lambda a: np.log1p(np.exp(a)),
    "sign": np.sign,
}
BINARY = {
    "max": np.maximum,
    "min": np.minimum,
    "expdiff": lambda a, b: np.exp(-np.abs(a - b)),
}


def reference_namespace(d: int, shape: tuple[int, ...]) -> dict:
    """numpy versions of every function, on arrays of shape (..., d) or (..., 1) (scalars)."""

    def full(a):
        return np.broadcast_to(a, shape[:-1] + (d,))

    g = 1.0 / d
    ns = {name: f for name, f in UNARY.items()}
    ns.update(BINARY)
    ns.update(
        dot=lambda a, b: g * (full(a) * full(b)).sum(-1, keepdims=True),
        l1dist=lambda a, b: g * np.abs(full(a) - full(b)).sum(-1, keepdims=True),
        l2dist=lambda a, b: g * np.sqrt(((full(a) - full(b)) ** 2).sum(-1, keepdims=True)),
        l1=lambda a: g * np.abs(full(a)).sum(-1, keepdims=True),
        l2=lambda a: g * np.sqrt((full(a) ** 2).sum(-1, keepdims=True)),
        norm1=lambda a: np.abs(full(a)).sum(-1, keepdims=True),
    )
    return ns


class _NumpyConstants(ast.NodeTransformer):
    """Make every literal a numpy float64 (IEEE semantics for 1 / 0)."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        call = ast.Call(func=ast.Name("F", ast.Load()), args=[node], keywords=[])
        return ast.copy_location(call, node)


def _compile(text: str):
    tree = _NumpyConstants().visit(ast.parse(text, mode="eval"))
    return compile(ast.fix_missing_locations(tree), "<expr>", "eval")


def reference_gram(text: str, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Evaluate the canonical form (valid Python syntax) with numpy broadcasting."""
    x = X[:, None, :]
    y = Y[None, :, :]
    ns = reference_namespace(X.shape[1], (len(X), len(Y), X.shape[1]))
    with np.errstate(all="ignore"):
        code = _compile(text)
        out = eval(code, {"__builtins__": {}}, {**ns, "F": np.float64, "x": x, "y": y})  # noqa: S307
        out = np.broadcast_to(np.asarray(out, dtype=np.float64), (len(X), len(Y), 1))
    return out[..., 0]


def reference_apply(text: str, X: np.ndarray) -> np.ndarray:
    ns = reference_namespace(X.shape[1], X.shape)
    with np.errstate(all="ignore"):
        code = _compile(text)
        out = eval(code, {"__builtins__": {}}, {**ns, "F": np.float64, "x": X})  # noqa: S307
    return np.broadcast_to(np.asarray(out, dtype=np.float64), X.shape)


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5) -> None:
    mask = np.isfinite(want)
    assert np.isfinite(got[mask]).all()
    scale = max(1.0, float(np.abs(want[mask]).max())) if mask.any() else 1.0
    np.testing.assert_allclose(got[mask], want[mask], rtol=rtol, atol=1e-9 * scale)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.uniform(-1.5, 1.5, (7, 11)), rng.uniform(-1.5, 1.5, (5, 11))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_functions_match_numpy(name, data):
    X, Y = data
    for text in (f"norm1({name}(x - 0.5 * y))", f"{name}(dot(x, y) + 0.3)"):
        got = parse(text).gram(X, Y)
        assert got.shape == (7, 5) and got.dtype == np.float64
        assert_close(got, reference_gram(text, X, Y))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_functions_match_numpy(name, data):
    X, Y = data
    for text in (f"norm1({name}(x, y))", f"norm1({name}(sin(x), l1(y)))", f"{name}(2, dot(x, y))"):
        assert_close(parse(text).gram(X, Y), reference_gram(text, X, Y))


@pytest.mark.parametrize(
    "text",
    [
        "dot(x, y)",
        "l1dist(x, y)",
        "l2dist(x, y)",
        "l1(x - y)",
        "l2(x * y)",
        "norm1(x + y)",
        "norm1(x - y)",
        "norm1(x * y)",
        "norm1(x / (abs(y) + 1))",
        "norm1(-x)",
        "-dot(x, y) + 3 * l2dist(x, y) - 1 / (2 + l1(y))",
        "norm1(x * dot(x, y))",
        "dot(l1(x), y)",
        "norm1(2)",
        "l2(3)",
        "l1dist(1, 2)",
        PAPER_KERNEL,
    ],
)
def test_arithmetic_and_reductions_match_numpy(text, data):
    X, Y = data
    assert_close(parse(text).gram(X, Y), reference_gram(text, X, Y))


def test_paper_kernel_by_hand():
    X = np.array([[0.5, 1.0], [2.0, -1.0]])
    Y = np.array([[1.0, 3.0]])
    k = parse(PAPER_KERNEL).gram(X, Y)
    for i in range(2):
        dot = X[i] @ Y[0] / 2
        want = np.abs(np.minimum(np.sin(X[i] * Y[0]), np.sin(dot))).sum()
        assert k[i, 0] == pytest.approx(want, rel=1e-12)


def random_expr(rng: np.random.Generator, depth: int, vars_=("x", "y")) -> str:
    """A random expression string from the grammar (not from a search space)."""
    if depth == 0 or rng.random() < 0.2:
        r = rng.random()
        if r < 0.7:
            return str(rng.choice(vars_))
        c = round(float(rng.normal()), int(rng.integers(0, 4)))
        return str(c) if c >= 0 or rng.random() < 0.5 else f"({c})"
    kind = rng.integers(0, 4)
    a = random_expr(rng, depth - 1, vars_)
    if kind == 0:
        op = rng.choice(["+", "-", "*", "/"])
        b = random_expr(rng, depth - 1, vars_)
        return f"({a}) {op} ({b})" if rng.random() < 0.5 else f"{a} {op} {b}"
    if kind == 1:
        return f"-({a})" if rng.random() < 0.5 else f"-{a}" if a[0] != "-" else f"-({a})"
    names = [n for n, k in FUNCTIONS.items() if n != "norm1"]
    name = str(rng.choice(names))
    if FUNCTIONS[name] == 1:
        return f"{name}({a})"
    return f"{name}({a}, {random_expr(rng, depth - 1, vars_)})"


def test_round_trip_random_grammar_expressions():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (3, 4))
    Y = rng.uniform(-1, 1, (4, 4))
    n_checked = 0
    for _ in range(3000):
        text = random_expr(rng, int(rng.integers(1, 6)))
        e = parse(text)
        canon = str(e)
        again = parse(canon)
        assert again == e and hash(again) == hash(e), (text, canon)
        assert str(again) == canon
        if n_checked < 400:
            k = parse(f"norm1({canon})")
            got = k.gram(X, Y, check_finite=False)
            assert_close(got, reference_gram(str(k), X, Y), rtol=1e-6)
            n_checked += 1
    assert n_checked >= 400


def test_round_trip_search_space_samples():
    for space in (gm.search.Space.paper(), gm.search.Space.activation()):
        for e in space.sample(1500, seed=3):
            again = parse(str(e))
            assert again == e and hash(again) == hash(e)


def test_equality_hash_pickle_and_repr():
    a = parse("sin(x*y)+1")
    b = Expr("sin(x * y) + 1")
    assert a == b and hash(a) == hash(b) and not (a != b)
    assert a != parse("sin(y * x) + 1")
    assert a != "sin(x * y) + 1"
    assert len({a, b}) == 1
    assert pickle.loads(pickle.dumps(a)) == a
    assert repr(a) == "Expr('sin(x * y) + 1')"
    assert parse(a) is a
    assert parse("x - (y - 1)") != parse("x - y - 1")
    assert str(parse("-(3)")) == "-3"
    assert parse("dot(x, y)").value_type == "scalar"
    assert parse("x * dot(x, y)").value_type == "vector"
    assert parse("x * 2").uses_y is False
    assert parse(PAPER_KERNEL).size == 10


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "empty expression", 0),
        ("sin(x", "expected ')'", 5),
        ("foo(x)", 'unknown function "foo"', 0),
        ("x + z", 'unknown name "z"', 4),
        ("max(x)", "max takes 2 arguments, got 1", 0),
        ("norm1(x, y)", "norm1 takes 1 argument, got 2", 0),
        ("x + * y", "unexpected '*'", 4),
        ("x ^ 2", "unexpected character '^'", 2),
        ("(x + y", "expected ')'", 6),
        ("x y", "after the expression", 2),
        ("exp", "needs arguments", 0),
        ("1e999 * x", "not finite", 0),
    ],
)
def test_malformed_expressions_raise_with_position(text, message, position):
    with pytest.raises(gm.ExpressionError) as info:
        parse(text)
    msg = str(info.value)
    assert message in msg and f"at position {position}" in msg
    assert isinstance(info.value, ValueError)


def test_parse_rejects_non_strings():
    with pytest.raises(gm.ExpressionError, match="must be a string"):
        parse(3)


def test_gram_and_apply_errors():
    X = np.ones((3, 4))
    with pytest.raises(gm.ExpressionError, match="scalar-valued.*norm1"):
        parse("x * y").gram(X)
    with pytest.raises(gm.ExpressionError, match="only use x"):
        parse("x + y").apply(X)
    with pytest.raises(gm.ShapeError, match="features"):
        parse("dot(x, y)").gram(X, np.ones((2, 5)))
    with pytest.raises(gm.ShapeError, match="2-D"):
        parse("dot(x, y)").gram(np.ones(3))
    with pytest.raises(gm.ExpressionError, match=r"non-finite value\(s\) \(first at row 0"):
        parse("norm1(x / (x - y))").gram(X)
    raw = parse("norm1(x / (x - y))").gram(X, check_finite=False)
    assert not np.isfinite(raw).any()


@pytest.mark.parametrize("name", sorted(UNARY) + sorted(BINARY))
def test_nan_propagates_like_numpy(name):
    # Feature 0 of every pair is 0 / 0: numpy's functions (np.maximum and np.sign too)
    # return NaN for it, so must gridmatch's: a NaN hidden by max/min/relu/sign would turn
    # an invalid kernel into a finite one.
    X = np.array([[0.0, 1.0, 2.0], [0.0, -1.0, 0.5]])
    if name in UNARY:
        texts = [f"norm1({name}(x / y))", f"{name}(dot(x, y) * 0 / 0)"]
    else:
        texts = [
            f"norm1({name}(x / y, 1))",
            f"norm1({name}(1, x / y))",
            f"{name}(dot(x, y) * 0 / 0, 1)",
            f"{name}(1, dot(x, y) * 0 / 0)",
        ]
    for text in texts:
        want = reference_gram(text, X, X)
        got = parse(text).gram(X, X, check_finite=False)
        assert np.isnan(want).all(), text
        assert np.isnan(got).all(), (text, got)


def test_gram_defaults_and_dtypes():
    rng = np.random.default_rng(2)
    X = rng.random((6, 5)).astype(np.float32)
    k = parse(PAPER_KERNEL)
    a = k.gram(X)
    b = k.gram(X.astype(np.float64), X.astype(np.float64))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, a.T, rtol=1e-12)
    assert k.gram(X, X[:0]).shape == (6, 0)
    assert k.gram(X[:0], X).shape == (0, 6)
    # Non-contiguous input.
    Z = rng.random((5, 10))[:, ::2]
    assert_close(k.gram(Z), reference_gram(str(k), Z, Z), rtol=1e-9)


@pytest.mark.parametrize(
    "text",
    [PAPER_KERNEL, "norm1(expdiff(x, y)) + l1dist(x, y)", "norm1(x - 2 * y)", "dot(x, x)"],
)
def test_gram_of_one_set_uses_symmetry_and_matches_two_sets(text):
    # gram(X) and gram(X, X) evaluate only the upper triangle of a kernel symmetric by
    # commutativity; the result equals the full evaluation against a copy of X exactly,
    # and numpy's reference to rounding (non-symmetric kernels are evaluated in full).
    X = np.random.default_rng(5).normal(size=(23, 7))
    k = parse(text)
    full = k.gram(X, X.copy())
    np.testing.assert_array_equal(k.gram(X), full)
    np.testing.assert_array_equal(k.gram(X, X), full)
    assert_close(full, reference_gram(text, X, X), rtol=1e-9)


@pytest.mark.parametrize(
    "text",
    [
        "x / l2(x) + sigmoid(x) * 0.5",
        "relu(x) - min0(x) * 2",
        "softplus(x) * tanh(cube(x))",
        "expdiff(x, 1) + max(x, sin(x))",
        "l1(x)",
        "3",
        "x",
    ],
)
def test_apply_matches_numpy(text):
    X = np.random.default_rng(4).normal(size=(9, 6))
    got = parse(text).apply(X)
    assert got.shape == X.shape
    assert_close(got, reference_apply(text, X))


def test_large_arguments_of_sin_and_exp():
    X = np.array([[1e3, -2e5, 700.0, -800.0]])
    Y = np.array([[30.0, 1.0, 1.0, 1.0]])
    for text in ("norm1(sin(x * y))", "norm1(cos(x * y))", "norm1(exp(-abs(x * y)))"):
        assert_close(parse(text).gram(X, Y), reference_gram(text, X, Y), rtol=1e-12)


def test_long_chains_are_refused_not_a_crash():
    # A chain "x + x + ... + x" is not nested, yet its tree is as deep as it is long; it
    # used to overflow the stack (segfault). Run in a child so a regression cannot take
    # the test session down.
    code = (
        "import gridmatch as gm\n"
        "for text in ['+'.join(['x'] * 200000), '*'.join(['x'] * 5000), '-' * 5000 + 'x']:\n"
        "    try:\n"
        "        gm.expr.parse(text)\n"
        "    except gm.ExpressionError as e:\n"
        "        assert 'deeper than 1000' in str(e) or 'nested' in str(e), e\n"
        "    else:\n"
        "        raise SystemExit('accepted')\n"
        "print(gm.expr.parse('+'.join(['x'] * 400)).size)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert int(r.stdout) == 799
