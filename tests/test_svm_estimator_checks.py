"""scikit-learn's estimator checks on gridmatch.svm.SVC (small data)."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from gridmatch.svm import SVC

# The one exclusion is the one scikit-learn itself makes for its own SVC (see
# PER_ESTIMATOR_XFAIL_CHECKS in sklearn/utils/_test_common/instance_generator.py):
# weighting a sample by 2 and repeating it define the same optimum, but SMO stops at
# `tol` (1e-3) from it along different paths, while the check compares decision values
# to 1e-7. Our test_svm.py compares weighted fits with scikit-learn's instead.
SAMPLE_WEIGHT_XFAIL = {
    f"check_sample_weight_equivalence_on_{kind}_data": (
        "like sklearn.svm.SVC: equal only up to the solver tolerance"
    )
    for kind in ("dense", "sparse")
}


@parametrize_with_checks(
    [
        SVC(),
        SVC(kernel="linear", C=0.5),
        SVC(kernel="precomputed"),
        SVC(probability=True, random_state=0),
    ],
    expected_failed_checks=lambda est: SAMPLE_WEIGHT_XFAIL,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
