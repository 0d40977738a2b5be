"""Sparse input of :class:`~gridmatch.svm.SVC`: scipy.sparse matrices and arrays (CSR,
CSC, ...) handed to the core as the arrays of a canonical CSR matrix, never densified.

The built-in kernels are computed on the sparse rows in Rust (float64 dot products, as
libsvm computes them on sparse input); a model fitted on sparse input keeps its support
vectors sparse (``support_vectors_`` is a CSR matrix, as scikit-learn's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

__all__ = ["csr_parts", "gamma_scale_variance", "is_sparse", "to_csr"]


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a scipy sparse matrix or array."""
    return bool(sp.issparse(X))


def to_csr(X: Any) -> Any:
    """``X`` as a canonical float64 CSR matrix (no column twice in a row, sorted): ``X``
    itself when it is one already, else a converted copy (the caller's is not changed)."""
    X = sp.csr_matrix(X, dtype=np.float64)  # no copy for a float64 csr_matrix
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def csr_parts(X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The CSR matrix ``X`` as the core takes it: ``(data float64, indices int64, indptr
    int64, n_columns)``, contiguous."""
    X = to_csr(X)
    return (
        np.ascontiguousarray(X.data, dtype=np.float64),
        np.ascontiguousarray(X.indices, dtype=np.int64),
        np.ascontiguousarray(X.indptr, dtype=np.int64),
        int(X.shape[1]),
    )


def gamma_scale_variance(X: Any) -> float:
    """The variance of all of ``X``'s values (zeros included), as ``gamma="scale"`` reads
    it; scikit-learn's formula for sparse input."""
    with np.errstate(over="ignore"):
        return float(X.multiply(X).mean() - X.mean() ** 2)
