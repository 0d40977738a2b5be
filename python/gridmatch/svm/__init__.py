"""Kernel support vector classification with a Rust core.

:class:`SVC` is a drop-in replacement for :class:`sklearn.svm.SVC` (C-SVC, one-vs-one
multiclass): the same parameters, the same fitted attributes (same layout and signs),
the same predictions. The solver is libsvm's algorithm (SMO with second-order
working-set selection, shrinking, a kernel-row cache) in Rust: kernel rows are computed
with SIMD in single precision, the one-vs-one problems run in parallel, and prediction
is a matrix product against the support vectors.

Examples
--------
>>> import numpy as np
>>> import gridmatch as gm
>>> X = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 3.0], [3.0, 4.0]])
>>> clf = gm.svm.SVC(kernel="linear").fit(X, [0, 0, 1, 1])
>>> clf.predict([[0.5, 0.5], [3.5, 3.5]]).tolist()
[0, 1]

Files: ``_svc`` (the estimator), ``_checks`` (its parameter checks), ``_kernel`` (the
``kernel`` parameter: built-in names, callables, expressions), ``_weights`` (the
per-sample bounds), ``_multiclass`` (one-vs-one votes and one-vs-rest scores),
``_coef`` (``coef_`` of the linear kernel), ``_proba`` (the probability methods),
``_report`` (the ``verbose`` summary), ``_persistence`` (model files and pickling).
"""

from __future__ import annotations

from ._kernel import BUILTIN_KERNELS  # noqa: F401 (gm.svm.BUILTIN_KERNELS, as before)
from ._svc import SVC

# Pickles and documentation name the public path, not the private module.
SVC.__module__ = __name__

__all__ = ["SVC"]
