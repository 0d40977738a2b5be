"""Decision values of a fitted SVC: the one-vs-one pairs in libsvm's convention."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.utils.validation import _num_samples

from .. import _core
from .._base.validate import check_fitted, host_array, validate_data
from ._centring import bias_shift, centred_f32, shift_of
from ._kernel import callable_gram, expression_of, resolve_kernel
from ._sparse import csr_parts, is_sparse
from ._spec import svm_spec

__all__ = ["ovo_decision"]


def ovo_decision(est: Any, X: Any) -> np.ndarray:
    """Pairwise decision values in libsvm's convention (positive: first class)."""
    check_fitted(est)
    kernel = resolve_kernel(est.kernel)
    python_callable = callable(kernel) and expression_of(kernel) is None
    fitted_sparse = getattr(est, "_sparse", False)
    if not python_callable:  # a callable gets X as given (as in scikit-learn)
        X = host_array(X, "X")
        if is_sparse(X) and not fitted_sparse:
            raise ValueError(
                f"cannot use sparse input in {type(est).__name__!r} trained on dense data"
            )
        X = validate_data(est, X, dtype=np.float64, order="C", accept_sparse="csr", reset=False)
    binary = len(est.classes_) == 2
    dual = -est.dual_coef_ if binary else est.dual_coef_
    rho = est.intercept_ if binary else -est.intercept_
    n_support = np.asarray(est._n_support, dtype=np.int64)
    if n_support.sum() != len(est.support_) or dual.shape[1] != len(est.support_):
        raise ValueError("The internal representation of SVC was altered")
    spec = svm_spec(est)
    shift = None  # built-in kernels only (below)
    data: Any
    sv: Any
    if spec["kernel"]["kind"] == "expression":
        # evaluated in Rust against the support vectors, a block of rows at a time
        data = np.ascontiguousarray(X, dtype=np.float64)
        sv = np.ascontiguousarray(est.support_vectors_, dtype=np.float64)
        support = est.support_
    elif callable(kernel):  # a Python callable (expressions are handled above)
        # against the training samples, as scikit-learn evaluates a callable
        train = getattr(est, "_X_fit", None)
        if train is None:  # pickled before the training samples were kept
            train, support = est.support_vectors_, np.arange(len(est.support_))
        else:
            support = est.support_
        shape = (_num_samples(X), _num_samples(train))
        data, sv = callable_gram(kernel, X, train, shape, finite=False), None
    elif est._kernel_name == "precomputed":
        if X.shape[1] != est.shape_fit_[0]:
            raise ValueError(
                f"X.shape[1] = {X.shape[1]} should be equal to {est.shape_fit_[0]}, "
                "the number of samples at training time"
            )
        data, sv, support = X, None, est.support_
    elif fitted_sparse:
        # Sparse rows against the sparse support vectors (a dense X is made sparse, as
        # scikit-learn does for a model fitted on sparse input).
        data, sv = csr_parts(X), csr_parts(est.support_vectors_)
        support = est.support_
    else:
        # Centred in float64 by the support vectors' mean (any shift gives the
        # same model; this one needs nothing beyond the public attributes, so
        # models loaded from files are evaluated the same way), see Notes.
        sv64 = np.asarray(est.support_vectors_, dtype=np.float64)
        shift = shift_of(sv64)
        data = centred_f32(X, shift)
        sv = centred_f32(sv64, shift)
        support = est.support_
        # The raw kernel's bias to the shifted kernel's.
        rho = np.asarray(rho, dtype=np.float64) - bias_shift(dual, n_support, sv64, shift, spec)
    model = {
        "support": np.asarray(support, dtype=np.int64),
        "n_support": n_support,
        "dual_coef": np.ascontiguousarray(dual, dtype=np.float64),
        "rho": np.ascontiguousarray(rho, dtype=np.float64),
    }
    return _core.svm_decision(data, sv, model, json.dumps(spec), shift=shift)
