"""The primal weights ``coef_`` of a fitted linear-kernel SVC (scikit-learn's layout)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._sparse import is_sparse, to_csr

__all__ = ["linear_coef"]


def linear_coef(est: Any) -> np.ndarray:
    """``coef_`` of a fitted SVC with ``kernel="linear"``, read-only.

    As scikit-learn's ``BaseSVC._get_coef``: for two classes ``dual_coef_ @
    support_vectors_`` (``dual_coef_`` already in scikit-learn's sign, so positive
    scores mean ``classes_[1]``); for more, one row per one-vs-one pair ``(i, j)``,
    ``i < j`` in pair order, ``w_ij = sum_{s in i} dual_coef_[j - 1, s] sv_s + sum_{s in
    j} dual_coef_[i, s] sv_s``, with libsvm's sign (positive: class ``i``).

    Parameters
    ----------
    est : SVC
        A fitted estimator with ``kernel="linear"``.

    Returns
    -------
    ndarray of shape (n_classes * (n_classes - 1) / 2, n_features)
        Not writeable; a CSR matrix (values not writeable) when fitted on sparse input.

    Raises
    ------
    AttributeError
        If the kernel is not ``"linear"`` (scikit-learn's message).
    """
    if not (isinstance(est.kernel, str) and est.kernel == "linear"):
        raise AttributeError("coef_ is only available when using a linear kernel")
    dual = np.asarray(est.dual_coef_, dtype=np.float64)
    sparse = is_sparse(est.support_vectors_)
    sv = to_csr(est.support_vectors_) if sparse else np.asarray(est.support_vectors_, np.float64)
    if dual.shape[0] == 1:
        coef = np.asarray(dual @ sv)
    else:
        n_class = dual.shape[0] + 1
        locs = np.cumsum(np.hstack([[0], np.asarray(est._n_support, dtype=np.int64)]))
        rows = []
        for a in range(n_class):
            sv_a = sv[locs[a] : locs[a + 1]]
            for b in range(a + 1, n_class):
                sv_b = sv[locs[b] : locs[b + 1]]
                alpha_a = dual[b - 1, locs[a] : locs[a + 1]]
                alpha_b = dual[a, locs[b] : locs[b + 1]]
                rows.append(np.asarray(alpha_a @ sv_a + alpha_b @ sv_b).ravel())
        coef = np.vstack(rows)
    if sparse:  # a model fitted on sparse input: a CSR matrix, as scikit-learn's
        coef = to_csr(coef)
        coef.data.flags.writeable = False
        return coef
    coef.flags.writeable = False
    return coef
