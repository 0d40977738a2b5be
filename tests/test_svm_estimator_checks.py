"""scikit-learn's estimator checks on gridmatch.svm.SVC (small data, all checks run)."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from gridmatch.svm import SVC


# No check is excluded: the built-in kernels, the linear kernel and a precomputed
# kernel (pairwise tag) all pass the full suite.
@parametrize_with_checks([SVC(), SVC(kernel="linear", C=0.5), SVC(kernel="precomputed")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
