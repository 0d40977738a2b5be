"""The expression language of kernel and transform search.

Expressions are over vectors: the variables ``x`` and ``y`` (kernels; transforms use
``x`` only), numeric constants, infix ``+ - * /``, unary minus, the elementwise functions
``abs, square, cube, sqrt_abs, exp, sin, cos, sinh, cosh, tanh, relu, min0, sigmoid,
softplus, sign``, the elementwise binary functions ``max(a, b)``, ``min(a, b)``,
``expdiff(a, b) = exp(-|a - b|)``, the reductions (γ = 1 / n_features)
``dot(a, b) = γ Σ aᵢbᵢ``, ``l1dist(a, b) = γ Σ |aᵢ - bᵢ|``, ``l2dist(a, b) = γ √Σ (aᵢ - bᵢ)²``,
``l1(a) = γ Σ |aᵢ|``, ``l2(a) = γ √Σ aᵢ²`` and the kernel's final ``norm1(a) = Σ |aᵢ|``.

A reduction gives a scalar; a scalar used where a vector is expected broadcasts (stands
for the vector with every entry equal to it), so ``l1(s) = |s|`` and ``norm1(s) = d |s|``.

Examples
--------
>>> import numpy as np
>>> import gridmatch as gm
>>> k = gm.expr.parse("norm1(min(sin(x*y), sin(dot(x,y))))")
>>> str(k)
'norm1(min(sin(x * y), sin(dot(x, y))))'
>>> X = np.random.default_rng(0).random((4, 3))
>>> k.gram(X).shape
(4, 4)
"""

from __future__ import annotations

from ._core import Expr, expr_functions

__all__ = ["FUNCTIONS", "PAPER_KERNEL", "Expr", "as_expr", "parse"]

#: Every function of the language and its number of arguments.
FUNCTIONS: dict[str, int] = dict(expr_functions())

#: The kernel found by the paper's authors on MNIST.
PAPER_KERNEL = "norm1(min(sin(x * y), sin(dot(x, y))))"


def parse(text: str) -> Expr:
    """Parse an expression.

    Parameters
    ----------
    text : str
        The expression, for example ``"norm1(min(sin(x * y), sin(dot(x, y))))"``.

    Returns
    -------
    Expr
        The parsed, compiled expression. ``str(expr)`` is its canonical form, which
        parses back to an equal ``Expr``; ``expr.gram(X, Y)`` evaluates a kernel matrix
        and ``expr.apply(X)`` a transform, both in Rust.

    Raises
    ------
    gridmatch.ExpressionError
        On a syntax error, an unknown name or a wrong number of arguments; the message
        names the position (0-based character offset).
    """
    if isinstance(text, Expr):
        return text
    if not isinstance(text, str):
        from ._base.exceptions import ExpressionError

        raise ExpressionError(f"an expression must be a string, got {type(text).__name__}")
    return Expr(text)


def as_expr(obj: Expr | str) -> Expr:
    """Return ``obj`` as an :class:`Expr` (parsing strings).

    Parameters
    ----------
    obj : Expr or str
        An expression or its text.

    Returns
    -------
    Expr
        The expression.
    """
    return obj if isinstance(obj, Expr) else parse(obj)
