"""The per-sample box bounds of an SVC fit: ``C`` times class and sample weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base.validate import host_array

__all__ = ["sample_bounds"]


def sample_bounds(
    C: float, class_weight: np.ndarray, y_enc: np.ndarray, sample_weight: Any, classes: Any
) -> np.ndarray:
    """Each sample's bound ``C * class_weight[y] * sample_weight``, checked.

    Samples whose weight product is ``<= 0`` get bound 0 (the solver leaves them out,
    as libsvm does), also for ``C=inf`` (a hard margin: every other bound is
    infinite).

    Parameters
    ----------
    C : float
        The ``C`` parameter (> 0, may be ``inf``).
    class_weight : ndarray of shape (n_classes,)
        Multipliers of ``C`` per class.
    y_enc : ndarray of shape (n_samples,)
        Class index of each sample.
    sample_weight : array-like of shape (n_samples,) or scalar or None
        Per-sample multipliers of ``C``.
    classes : ndarray of shape (n_classes,)
        The class labels (for messages).

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        On badly shaped or non-finite weights, when no sample has a positive weight,
        or when a class has none (scikit-learn's messages where it has one).
    """
    n = len(y_enc)
    if sample_weight is None:
        sw = np.ones(n)
    else:
        sw = np.asarray(host_array(sample_weight, "sample_weight"), dtype=np.float64)
        if sw.ndim == 0:
            sw = np.full(n, float(sw))
        if sw.shape != (n,):
            raise ValueError(
                f"sample_weight and X have incompatible shapes: {sw.shape} vs ({n}, ...)"
            )
        if not np.isfinite(sw).all():
            raise ValueError("sample_weight contains NaN or infinity")
    weight = class_weight[y_enc] * sw
    with np.errstate(invalid="ignore"):  # inf * 0 where the weight is 0 (masked below)
        sample_c = np.where(weight > 0, float(C) * weight, 0.0)
    if not (sample_c > 0).any():
        raise ValueError("Invalid input - all samples have zero or negative weights.")
    present = np.unique(y_enc[sample_c > 0])
    if len(present) < 2:
        raise ValueError(
            "Invalid input - all samples with positive weights belong to the same class."
        )
    if len(present) < len(classes):
        raise ValueError(
            "every class needs at least one sample with a positive weight (class "
            f"{classes[np.setdiff1d(np.arange(len(classes)), present)[0]]!r} has none)"
        )
    return sample_c
