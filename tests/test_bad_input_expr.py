"""Bad input to gm.expr (parse, Expr, gram, apply); see test_bad_input.py for the suite."""

from __future__ import annotations

import numpy as np
import pytest
from _bad_input import (
    KERNEL,
    META,
    NAN,
    Case,
    X,
    check_case,
    objects,
    strings,
    with_foreign,
    with_value,
)

import gridmatch as gm
from gridmatch.exceptions import (
    DeviceError,
    ExpressionError,
    ShapeError,
)

CASES: list[Case] = [
    # --- gm.expr ----------------------------------------------------------------------
    Case("parse/empty", lambda: gm.expr.parse(""), ExpressionError, r"empty expression"),
    Case("parse/unclosed", lambda: gm.expr.parse("sin(x"), ExpressionError, r"position"),
    Case("parse/operator", lambda: gm.expr.parse("x +* y"), ExpressionError, r"position 3"),
    Case(
        "parse/unknown function",
        lambda: gm.expr.parse("foo(x)"),
        ExpressionError,
        r'unknown function "foo"',
    ),
    Case(
        "parse/unknown variable", lambda: gm.expr.parse("z"), ExpressionError, r'unknown name "z"'
    ),
    Case(
        "parse/arity", lambda: gm.expr.parse("sin(x, y)"), ExpressionError, r"sin takes 1 argument"
    ),
    Case("parse/infinite number", lambda: gm.expr.parse("1e999"), ExpressionError, r"not finite"),
    Case("parse/NUL", lambda: gm.expr.parse("x\x00"), ExpressionError, r"unexpected character"),
    Case(
        "parse/None",
        lambda: gm.expr.parse(None),
        ExpressionError,
        r"must be a string, got NoneType",
    ),
    Case(
        "parse/bytes", lambda: gm.expr.parse(b"x"), ExpressionError, r"must be a string, got bytes"
    ),
    Case(
        "parse/deep parentheses",
        lambda: gm.expr.parse("(" * 20000 + "x" + ")" * 20000),
        ExpressionError,
        r"nests deeper than 1000",
    ),
    Case(
        "parse/deep calls",
        lambda: gm.expr.parse("sin(" * 20000 + "x" + ")" * 20000),
        ExpressionError,
        r"nests deeper than 1000",
    ),
    Case(
        "parse/deep unary minus",
        lambda: gm.expr.parse("-" * 20000 + "x"),
        ExpressionError,
        r"nests deeper than 1000",
    ),
    Case("Expr/int", lambda: gm.expr.Expr(5), TypeError, r"'int' object"),
    Case("gram/1-D", lambda: KERNEL.gram(X[0]), ShapeError, r"X must be 2-D"),
    Case(
        "gram/strings",
        lambda: KERNEL.gram(strings((2, 2))),
        ShapeError,
        r"X must hold real numbers",
    ),
    Case("gram/complex", lambda: KERNEL.gram(X + 1j), ShapeError, r"X must hold real numbers"),
    Case(
        "gram/objects",
        lambda: KERNEL.gram(objects((2, 2))),
        ShapeError,
        r"X must hold real numbers",
    ),
    Case("gram/nan", lambda: KERNEL.gram(with_value(X, NAN)), ExpressionError, r"non-finite"),
    Case(
        "gram/overflow",
        lambda: gm.expr.parse("norm1(exp(x * y))").gram(np.full((2, 2), 100.0)),
        ExpressionError,
        r"non-finite",
    ),
    Case(
        "gram/features mismatch",
        lambda: KERNEL.gram(X, X[:, :3]),
        ShapeError,
        r"X has 4 features but Y has 3",
    ),
    Case("gram/no features", lambda: KERNEL.gram(X[:, :0]), ShapeError, r"no features"),
    Case("gram/meta", lambda: KERNEL.gram(META), DeviceError, r"X.*'meta'"),
    Case(
        "gram/vector expression",
        lambda: gm.expr.parse("x * y").gram(X),
        ExpressionError,
        r"kernel must be scalar-valued",
    ),
    Case(
        "apply/uses y",
        lambda: gm.expr.parse("x * y").apply(X),
        ExpressionError,
        r"transform may only use x",
    ),
    Case(
        "apply/division by zero",
        lambda: gm.expr.parse("x / 0").apply(X),
        ExpressionError,
        r"non-finite",
    ),
    Case("apply/3-D", lambda: gm.expr.parse("x").apply(X[None]), ShapeError, r"X must be 2-D"),
]


#: Errors raised elsewhere by design: an expression given as a non-string reaches the
#: extension's argument conversion (pyo3's TypeError).
FOREIGN = {"Expr/int": ("builtin",)}
CASES = with_foreign(CASES, FOREIGN)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
    check_case(case)
