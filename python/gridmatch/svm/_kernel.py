"""The ``kernel`` parameter of :class:`~gridmatch.svm.SVC`: names, callables, expressions."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _core
from .._base.exceptions import ConfigError, ExpressionError
from ..expr import Expr, parse

#: The kernels the Rust solver computes itself.
BUILTIN_KERNELS: tuple[str, ...] = tuple(_core.KERNEL_NAMES)


def resolve_kernel(kernel: Any) -> str | Callable[[np.ndarray, np.ndarray], Any]:
    """Map the ``kernel`` parameter to a built-in kernel name or a Gram callable.

    Expression kernels (``gridmatch.expr``): an ``Expr`` object or an expression string
    (``"norm1(min(sin(x * y), sin(dot(x, y))))"``) becomes its ``gram`` method, evaluated
    in Rust.

    Parameters
    ----------
    kernel : str or callable or object
        The ``kernel`` parameter of :class:`SVC`.

    Returns
    -------
    str or callable
        A built-in kernel name, or a callable computing Gram matrices.

    Raises
    ------
    ExpressionError
        If ``kernel`` is a string that is neither a built-in name nor a valid kernel
        expression, or a vector-valued expression.
    ConfigError
        If ``kernel`` is neither a string, a callable nor an object with a ``gram``
        method.
    """
    if isinstance(kernel, str) and kernel in BUILTIN_KERNELS:
        return kernel
    if callable(kernel):
        return kernel
    if isinstance(kernel, str):
        try:
            kernel = parse(kernel)
        except ExpressionError as e:
            raise ExpressionError(
                f"kernel={kernel!r} is neither one of {BUILTIN_KERNELS} nor a valid kernel "
                f"expression: {e}"
            ) from None
    if isinstance(kernel, Expr) and kernel.value_type != "scalar":
        raise ExpressionError(
            f"kernel expression {str(kernel)!r} is vector-valued; a kernel must reduce to a "
            "scalar, e.g. norm1(...)"
        )
    gram = getattr(kernel, "gram", None)
    if callable(gram):  # an object computing Gram matrices (e.g. a parsed expression)
        return gram
    raise ConfigError(
        f"kernel must be one of {BUILTIN_KERNELS}, a callable or an expression, "
        f"got {type(kernel).__name__}"
    )


def expression_of(gram: Any) -> Expr | None:
    """The expression whose ``gram`` method :func:`resolve_kernel` returned, else ``None``."""
    owner = getattr(gram, "__self__", None)
    return owner if isinstance(owner, Expr) else None


def storable(kernel: Any) -> bool:
    """Whether a model with this ``kernel`` parameter can be saved (no Python callable)."""
    return isinstance(kernel, (str, Expr))


def kernel_spec(kernel: Any) -> dict[str, Any]:
    """The ``kernel`` parameter as its JSON form in a saved model.

    Parameters
    ----------
    kernel : str or Expr
        A built-in name, an expression string or an expression.

    Returns
    -------
    dict
        ``{"type": "builtin", "name": ...}`` or ``{"type": "expression", "text": canonical
        text, "param": the string given or None}``.

    Raises
    ------
    TypeError
        For a Python callable (it cannot be stored without pickle).
    """
    if isinstance(kernel, str) and kernel in BUILTIN_KERNELS:
        return {"type": "builtin", "name": kernel}
    if storable(kernel):
        return {
            "type": "expression",
            "text": str(parse(kernel) if isinstance(kernel, str) else kernel),
            # the parameter as given (an expression string stays that string)
            "param": kernel if isinstance(kernel, str) else None,
        }
    raise TypeError(
        f"an SVC with kernel={kernel!r} cannot be saved: a Python callable would need "
        "pickle; use a built-in kernel or a gridmatch.expr expression"
    )


def kernel_from_spec(spec: dict[str, Any]) -> str | Expr:
    """The ``kernel`` parameter a saved :func:`kernel_spec` describes.

    Parameters
    ----------
    spec : dict
        The saved form.

    Returns
    -------
    str or Expr

    Raises
    ------
    ValueError
        If the spec is malformed or its text and parameter disagree.
    KeyError, TypeError
        If a field is missing or of the wrong type.
    """
    if spec["type"] == "builtin":
        return str(spec["name"])
    if spec["type"] == "expression":
        kernel = parse(str(spec["text"]))
        param = spec.get("param")
        if param is None:
            return kernel
        if parse(str(param)) != kernel:
            raise ValueError("the kernel text and its canonical form differ")
        return str(param)
    raise ValueError(f"unknown kernel type {spec['type']!r}")


def check_sparse_kernel(given: Any, kernel: Any) -> None:
    """``TypeError`` unless ``kernel`` (``given`` resolved) takes sparse input: the
    built-in kernels compute on sparse rows and a Python callable gets the matrix as it
    is; a precomputed Gram matrix and an expression kernel need dense arrays."""
    if isinstance(kernel, str) and kernel == "precomputed":
        raise TypeError("Sparse precomputed kernels are not supported.")
    if expression_of(kernel) is not None:
        raise TypeError(
            f"kernel={given!r} is an expression kernel, which takes dense features; "
            "convert the sparse matrix with X.toarray() (or use a built-in kernel)"
        )


def callable_gram(
    kernel: Callable[[Any, Any], Any], A: Any, B: Any, shape: tuple, finite: bool = True
) -> np.ndarray:
    """``kernel(A, B)`` of a Python callable kernel as a checked float64 matrix.

    ``A`` and ``B`` reach the callable as given (lists of strings, object arrays...),
    as scikit-learn passes them.

    Parameters
    ----------
    kernel : callable
        The ``kernel`` parameter.
    A, B : object
        The samples (training samples or support vectors for ``B``).
    shape : tuple of int
        The expected shape ``(len(A), len(B))``.
    finite : bool, default=True
        Also refuse NaN and infinite values (``fit``; prediction passes ``False``).

    Returns
    -------
    ndarray of shape ``shape``, C-contiguous float64

    Raises
    ------
    ValueError
        If the result has another shape, or holds NaN or infinity with ``finite``.
    """
    gram = np.ascontiguousarray(kernel(A, B), dtype=np.float64)
    if gram.shape != shape:
        raise ValueError(f"the kernel callable returned shape {gram.shape}, expected {shape}")
    if finite and not np.isfinite(gram).all():
        raise ValueError("the kernel callable returned NaN or infinity")
    return gram
