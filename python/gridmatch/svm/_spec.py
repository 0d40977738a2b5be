"""The spec of an SVC fit as it crosses into Rust (and is stored in model files)."""

from __future__ import annotations

from typing import Any

from .._base import params as _params
from ._kernel import expression_of, resolve_kernel

__all__ = ["svm_spec"]


def svm_spec(est: Any, probability_seed: int | None = None) -> dict[str, Any]:
    """The fit's spec as it crosses into Rust (and is stored in model files).

    The kernel: a built-in one with the fitted ``gamma``; an expression by its
    canonical text; ``precomputed`` for precomputed matrices and Python callables
    (their Gram matrices are computed in Python).
    """
    name, gamma = est._kernel_name, float(est._gamma)
    expr_text = None
    if name == "precomputed" and not (isinstance(est.kernel, str) and est.kernel == name):
        owner = expression_of(resolve_kernel(est.kernel))
        if owner is not None:  # an expression kernel (a callable's Gram is precomputed)
            expr_text = str(owner)
    if expr_text is not None:
        kernel: dict = {"kind": "expression", "text": expr_text}
    elif name in ("linear", "precomputed"):
        kernel = {"kind": name}
    elif name == "rbf":
        kernel = {"kind": "rbf", "gamma": gamma}
    elif name == "sigmoid":
        kernel = {"kind": "sigmoid", "gamma": gamma, "coef0": float(est.coef0)}
    else:
        kernel = {
            "kind": "poly",
            "gamma": gamma,
            "coef0": float(est.coef0),
            "degree": int(est.degree),
        }
    max_iter = int(est.max_iter)
    return {
        "kernel": kernel,
        "tol": float(est.tol),
        "cache_size": float(est.cache_size),
        "max_iter": None if max_iter < 0 else max_iter,
        "n_jobs": _params.n_jobs(est.n_jobs),
        "probability_seed": probability_seed,
        # estimators loaded from files written before the parameter have its default
        "shrinking": bool(getattr(est, "shrinking", True)),
    }
