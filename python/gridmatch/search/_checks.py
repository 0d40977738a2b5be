"""Input checks of the searches (arrays, labels, train/validation splits).

Their settings are checked by :mod:`gridmatch._base.params`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base.exceptions import ShapeError
from .._base.validate import host_array


def _flatten(a: Any, name: str) -> np.ndarray:
    """Samples as rows: images ``(n, h, w)`` become ``(n, h*w)``."""
    a = np.asarray(host_array(a, name))
    if a.ndim < 2 or a.shape[0] == 0 or a.size == 0:
        raise ShapeError(f"{name} must be a non-empty array of samples, got shape {a.shape}")
    return a.reshape(a.shape[0], -1)


def _float_matrix(a: Any, name: str) -> np.ndarray:
    a = host_array(a, name)
    if np.asarray(a).dtype.kind not in "fiub":
        raise ShapeError(f"{name} must hold real numbers, got dtype {np.asarray(a).dtype}")
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name} must be a numeric array: {e}") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ShapeError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(arr)


def _labels(a: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(host_array(a, name))
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ShapeError(f"{name} must be 1-D with {n} entries, got shape {arr.shape}")
    return arr


def _split(
    X_train: Any, y_train: Any, X_val: Any, y_val: Any, val: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A training / held-out split as float64 rows and 1-D labels."""
    Xtr = _float_matrix(_flatten(X_train, "X_train"), "X_train")
    Xva = _float_matrix(_flatten(X_val, f"X_{val}"), f"X_{val}")
    if Xtr.shape[1] != Xva.shape[1]:
        raise ShapeError(f"X_train has {Xtr.shape[1]} features but X_{val} has {Xva.shape[1]}")
    ytr = _labels(y_train, Xtr.shape[0], "y_train")
    yva = _labels(y_val, Xva.shape[0], f"y_{val}")
    return Xtr, ytr, Xva, yva


def _to_numpy(a: Any, name: str = "input") -> Any:
    return host_array(a, name)
