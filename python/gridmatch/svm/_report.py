"""The ``verbose=True`` summary of an SVC fit: one line per one-vs-one pair."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fit_summary"]

#: libsvm's safety cap on the iterations of a problem of ``l`` samples without
#: ``max_iter``: ``max(10**7, 100 l)`` (src/svm/solver.rs).
_CAP = 10**7


def fit_summary(
    classes: Any, y_enc: np.ndarray, sample_c: np.ndarray, n_iter: np.ndarray, max_iter: int
) -> str:
    """The per-pair lines ``verbose=True`` prints after a fit.

    A pair converged when its solver stopped before its iteration limit: ``max_iter``
    when given, else libsvm's cap ``max(10**7, 100 l)`` for its ``l`` samples of
    positive weight.

    Parameters
    ----------
    classes : ndarray of shape (n_classes,)
        Class labels.
    y_enc : ndarray of shape (n_samples,)
        Class index of each training sample.
    sample_c : ndarray of shape (n_samples,)
        Box bounds (samples with a bound <= 0 were left out).
    n_iter : ndarray of shape (n_pairs,)
        SMO iterations of each pair, in pair order.
    max_iter : int
        The ``max_iter`` parameter (``-1``: none).

    Returns
    -------
    str
        One header line and one line per pair, e.g. ``"pair (0, 1): 12 iterations,
        converged"``.
    """
    labels = np.asarray(classes).tolist()
    counts = np.bincount(y_enc[sample_c > 0], minlength=len(classes))
    lines = [f"SVC fit: {len(labels)} classes, {len(n_iter)} one-vs-one pairs"]
    k = 0
    for a in range(len(labels)):
        for b in range(a + 1, len(labels)):
            limit = max_iter if max_iter > 0 else max(_CAP, 100 * int(counts[a] + counts[b]))
            done = int(n_iter[k]) < limit
            lines.append(
                f"pair ({labels[a]!r}, {labels[b]!r}): {int(n_iter[k])} iterations, "
                + ("converged" if done else f"stopped at the limit ({limit})")
            )
            k += 1
    return "\n".join(lines)
