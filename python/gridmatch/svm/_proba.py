"""The probability methods of :class:`~gridmatch.svm.SVC` (libsvm's probability model)."""

from __future__ import annotations

import numpy as np
from sklearn.utils.metaestimators import available_if

from .. import _core
from .._base import params as _params
from .._base.exceptions import NotFittedError
from ._decision import ovo_decision

__all__ = ["ProbabilityMixin"]


class ProbabilityMixin:
    """``predict_proba`` / ``predict_log_proba`` of SVC, available when ``probability=True``."""

    def _check_proba(self):
        if not self.probability:
            raise AttributeError("predict_proba is not available when probability=False")
        return True

    @available_if(_check_proba)
    def predict_proba(self, X):
        """Class probabilities (libsvm's probability model).

        Each pair's decision value goes through its Platt sigmoid (``probA_``,
        ``probB_``), is clipped to ``[1e-7, 1 - 1e-7]``, and the pair probabilities are
        coupled into class probabilities (Wu, Lin and Weng 2004, method 2), as
        scikit-learn's ``SVC(probability=True)`` does. Only available when
        ``probability=True``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_train)
            Samples; kernel values against the training set for ``"precomputed"``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities of the classes in the order of ``classes_``; rows sum to 1.

        Raises
        ------
        AttributeError
            If ``probability=False``.
        NotFittedError
            If called before :meth:`fit`, or when the model was fitted with
            ``probability=False``.
        """
        dec = ovo_decision(self, X)
        if self._probA.size == 0 or self._probB.size == 0:
            raise NotFittedError(
                "predict_proba is not available when fitted with probability=False"
            )
        return _core.svm_proba(
            np.ascontiguousarray(dec, dtype=np.float64),
            np.ascontiguousarray(self._probA, dtype=np.float64),
            np.ascontiguousarray(self._probB, dtype=np.float64),
            len(self.classes_),
            _params.n_jobs(self.n_jobs),
        )

    @available_if(_check_proba)
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_train)
            Samples; kernel values against the training set for ``"precomputed"``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities of the classes in the order of ``classes_``.

        Raises
        ------
        AttributeError
            If ``probability=False``.
        NotFittedError
            If called before :meth:`fit`, or when the model was fitted with
            ``probability=False``.
        """
        return np.log(self.predict_proba(X))
