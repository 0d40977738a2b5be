"""One-vs-one multiclass: votes and one-vs-rest scores from the pairwise decision values."""

from __future__ import annotations

import numpy as np


def ovo_votes(dec: np.ndarray, n_classes: int) -> np.ndarray:
    """Votes per class of libsvm's pairwise decision values (positive: the pair's first class).

    Parameters
    ----------
    dec : ndarray of shape (n_samples, n_classes * (n_classes - 1) / 2)
        Decision values of the pairs ``(0, 1), (0, 2), ..., (n_classes - 2, n_classes - 1)``.
    n_classes : int
        Number of classes.

    Returns
    -------
    ndarray of int64, shape (n_samples, n_classes)
        Votes; ``argmax`` gives libsvm's prediction (ties go to the lowest class).
    """
    votes = np.zeros((dec.shape[0], n_classes), dtype=np.int64)
    k = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            pos = dec[:, k] > 0
            votes[pos, i] += 1
            votes[~pos, j] += 1
            k += 1
    return votes


def ovr_decision_function(
    predictions: np.ndarray, confidences: np.ndarray, n_classes: int
) -> np.ndarray:
    """One-vs-rest scores from one-vs-one votes and confidences (scikit-learn's rule).

    Votes plus the summed confidences squashed into (-1/3, 1/3), so that confidences
    only break ties between equal vote counts.

    Parameters
    ----------
    predictions : ndarray of shape (n_samples, n_pairs)
        ``1`` where a pair voted for its second class, ``0`` for its first.
    confidences : ndarray of shape (n_samples, n_pairs)
        Confidence in the pair's second class.
    n_classes : int
        Number of classes.

    Returns
    -------
    ndarray of shape (n_samples, n_classes)
    """
    n = predictions.shape[0]
    votes = np.zeros((n, n_classes))
    conf = np.zeros((n, n_classes))
    k = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            conf[:, i] -= confidences[:, k]
            conf[:, j] += confidences[:, k]
            votes[predictions[:, k] == 0, i] += 1
            votes[predictions[:, k] == 1, j] += 1
            k += 1
    return votes + conf / (3 * (np.abs(conf) + 1))
