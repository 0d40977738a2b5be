"""Input checks shared by the estimators and functions of gridmatch (private).

Every public entry point converts its array arguments through these helpers, so bad
input gets the same clear exception everywhere: torch tensors without data (``meta``
device) or on a device that cannot be read raise :class:`~gridmatch.DeviceError`,
complex / object / string arrays and wrong shapes raise :class:`~gridmatch.ShapeError`.
Scalar settings (estimator parameters, options) are checked by :mod:`gridmatch._base.params`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import DeviceError, NotFittedError, ShapeError

__all__ = ["check_fitted", "float64_matrix", "host_array", "is_tensor", "validate_data"]


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a ``torch.Tensor`` (without importing torch for other inputs)."""
    if not type(x).__module__.startswith("torch"):
        return False
    import torch

    return isinstance(x, torch.Tensor)


def host_array(x: Any, name: str) -> Any:
    """``x`` as a host (CPU) numpy array when it is a torch tensor, else ``x`` unchanged.

    Parameters
    ----------
    x : object
        A torch tensor or anything else.
    name : str
        The parameter name used in error messages.

    Returns
    -------
    object
        A numpy array for tensors; other objects unchanged.

    Raises
    ------
    DeviceError
        If the tensor lives on a device whose data cannot be read (``meta``).
    ShapeError
        If the tensor is complex.
    """
    if not is_tensor(x):
        return x
    if x.device.type == "meta":
        raise DeviceError(
            f"{name} is a torch tensor on the 'meta' device, which holds no data; "
            "create it on 'cpu' or 'cuda'"
        )
    if x.is_complex():
        raise ShapeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    import torch

    try:
        t = x.detach().cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.numpy()
    except (RuntimeError, NotImplementedError, TypeError) as e:
        raise DeviceError(f"{name} (a tensor on {x.device}) cannot be read: {e}") from None


def float64_matrix(x: Any, name: str) -> np.ndarray:
    """A C-contiguous float64 2-D numpy array of ``x`` (the expression evaluator's input).

    Parameters
    ----------
    x : array-like or torch.Tensor
        The values.
    name : str
        The parameter name used in error messages.

    Returns
    -------
    ndarray of float64, shape (rows, columns)

    Raises
    ------
    ShapeError
        If ``x`` is not a 2-D array of real numbers.
    DeviceError
        If ``x`` is a tensor without readable data.
    """
    x = host_array(x, name)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name} must be a 2-D array of real numbers: {e}") from None
    if a.dtype.kind not in "fiub":
        raise ShapeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ShapeError(
            f"{name} must be 2-D (samples × features), got {a.ndim}-D with shape {a.shape}"
        )
    return np.ascontiguousarray(a, dtype=np.float64)


def check_fitted(estimator: Any) -> None:
    """scikit-learn's ``check_is_fitted``, raising :class:`gridmatch.NotFittedError`.

    Parameters
    ----------
    estimator : object
        A scikit-learn style estimator (fitted attributes end in ``_``).

    Raises
    ------
    NotFittedError
        If ``estimator`` is not fitted (gridmatch's class, a subclass of
        scikit-learn's).
    """
    from sklearn.exceptions import NotFittedError as SkNotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise
    except SkNotFittedError as e:
        raise NotFittedError(str(e)) from None


try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X="no_validation", y="no_validation", **kw):
        """scikit-learn's ``validate_data`` (an estimator method before 1.6)."""
        return estimator._validate_data(X, y, **kw)
