"""The box bound of every training sample: ``C`` times its class weight and sample weight
(checked as scikit-learn checks them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base.validate import host_array

__all__ = ["box_bounds"]


def box_bounds(
    C: float,
    class_weight: np.ndarray,
    classes: np.ndarray,
    y_enc: np.ndarray,
    sample_weight: Any,
    x_shape: tuple[int, ...],
) -> np.ndarray:
    """``C * class_weight[y] * sample_weight`` of every sample (``y_enc``: class indices
    into ``classes``; ``x_shape``: X's, for messages); ``ValueError`` for weights of the
    wrong shape or not finite, no positive bound, or a class without a sample of
    positive bound."""
    n = len(y_enc)
    if sample_weight is None:
        sw = np.ones(n)
    else:
        sw = np.asarray(host_array(sample_weight, "sample_weight"), dtype=np.float64)
        if sw.ndim == 0:
            sw = np.full(n, float(sw))
        if sw.shape != (n,):
            raise ValueError(
                f"sample_weight and X have incompatible shapes: {sw.shape} vs {x_shape}"
            )
        if not np.isfinite(sw).all():
            raise ValueError("sample_weight contains NaN or infinity")
    sample_c = C * class_weight[y_enc] * sw
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
