"""Centring the built-in kernels' inputs: the float64 shift, the float32 centred rows,
and the bias of the raw kernel from the shifted kernel's (the Rust core's
``ShiftedKernel``)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["bias_shift", "centred_f32", "shift_of", "slope"]


def shift_of(X: np.ndarray) -> np.ndarray:
    """The float64 mean of the rows of ``X`` (zeros without rows): the shift by which
    the built-in kernels centre their inputs before the float32 cast."""
    if X.shape[0] == 0:
        return np.zeros(X.shape[1])
    return np.ascontiguousarray(X.mean(axis=0), dtype=np.float64)


def centred_f32(X: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``X - shift`` computed in float64 and stored as float32, a block of rows (4 MB
    of float64) at a time: no full-size temporary next to the caller's ``X``.

    Raises ``ValueError`` when a centred value does not fit in float32.
    """
    out = np.empty(X.shape, dtype=np.float32)
    top = np.finfo(np.float32).max
    rows = max(1, (1 << 19) // max(1, X.shape[1]))
    for start in range(0, X.shape[0], rows):
        block = X[start : start + rows] - shift
        if block.size and np.abs(block).max() > top:
            raise ValueError(
                "X has values too large for single precision (kernels are computed in "
                "float32); scale the data first"
            )
        out[start : start + rows] = block
    return out


def slope(shift: np.ndarray, spec: dict[str, Any]) -> float:
    """``F'(m.m)`` of a built-in kernel ``F(a.b)`` at the shift ``m`` (0 for rbf)."""
    k = spec["kernel"]
    kind = k["kind"]
    if kind == "linear":
        return 1.0
    if kind not in ("poly", "sigmoid"):
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        b = np.float64(k["gamma"]) * np.dot(shift, shift) + np.float64(k["coef0"])
        if kind == "poly":
            deg = int(k["degree"])
            return float(deg * k["gamma"] * b ** (deg - 1)) if deg >= 1 else 0.0
        return float(k["gamma"] / np.cosh(b) ** 2)


def bias_shift(dual, n_support, sv, shift, spec: dict[str, Any], rows=None) -> np.ndarray:
    """``rho - rho'`` of each pair: ``F'(m.m) sum_j coef_j m.(sv_j - m)``, the
    support vectors being ``sv[rows]`` (``sv`` itself without ``rows``; taken only
    where the slope is not 0, so rbf copies nothing).

    A built-in kernel ``F(a.b)`` on rows centred by ``m`` is computed as
    ``K' = K - F(m.m) - F'(m.m) (p_a + p_b)``, ``p_a = m.(a - m)`` (the Rust core's
    ``ShiftedKernel``); the separable terms leave the dual coefficients alone and
    move the bias by this much (``dual``: libsvm's signs and layout).
    """
    k = slope(shift, spec)
    n_pairs = len(n_support) * (len(n_support) - 1) // 2
    if rows is not None:
        sv = sv[rows] if slope != 0.0 else sv[:0]
    if k == 0.0 or len(sv) == 0:
        return np.zeros(n_pairs)
    p = (np.asarray(sv, dtype=np.float64) - shift) @ shift
    start = np.concatenate([[0], np.cumsum(n_support)])
    out = np.empty(n_pairs)
    t = 0
    for a in range(len(n_support)):
        sa = slice(start[a], start[a + 1])
        for b in range(a + 1, len(n_support)):
            sb = slice(start[b], start[b + 1])
            out[t] = dual[b - 1, sa] @ p[sa] + dual[a, sb] @ p[sb]
            t += 1
    with np.errstate(over="ignore", invalid="ignore"):
        return k * out
