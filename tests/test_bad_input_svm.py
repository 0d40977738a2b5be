"""Bad input to gm.svm.SVC; see test_bad_input.py for the suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _bad_input import (
    INF,
    KERNEL,
    NAN,
    RNG,
    Case,
    X,
    Y,
    check_case,
    fitted_svc,
    objects,
    strings,
    with_foreign,
    with_value,
)

from gridmatch.exceptions import (
    ConfigError,
    DeviceError,
    ExpressionError,
    NotFittedError,
)
from gridmatch.svm import SVC

CASES: list[Case] = [
    # --- gm.svm.SVC -------------------------------------------------------------------
    Case("SVC/nan", lambda: SVC().fit(with_value(X, NAN), Y), ValueError, r"Input X contains NaN"),
    Case(
        "SVC/inf",
        lambda: SVC().fit(with_value(X, INF), Y),
        ValueError,
        r"Input X contains infinity",
    ),
    Case(
        "SVC/float32 overflow",
        lambda: SVC().fit(with_value(X, 1e300), Y),
        ValueError,
        r"too large for single precision",
    ),
    Case(
        "SVC/strings",
        lambda: SVC().fit(strings((12, 4)), Y),
        ValueError,
        r"could not convert string to float",
    ),
    Case(
        "SVC/objects", lambda: SVC().fit(objects((12, 4)), Y), ValueError, r"Input X contains NaN"
    ),
    Case("SVC/complex", lambda: SVC().fit(X + 1j, Y), ValueError, r"Complex data not supported"),
    Case("SVC/1-D", lambda: SVC().fit(X[:, 0], Y), ValueError, r"Expected 2D array"),
    Case("SVC/3-D", lambda: SVC().fit(X[None], Y[:1]), ValueError, r"dim 3"),
    Case("SVC/empty", lambda: SVC().fit(X[:0], Y[:0]), ValueError, r"0 sample"),
    Case(
        "SVC/lengths", lambda: SVC().fit(X, Y[:-1]), ValueError, r"inconsistent numbers of samples"
    ),
    Case(
        "SVC/single class",
        lambda: SVC().fit(X, np.zeros(12)),
        ValueError,
        r"number of classes has to be greater than one",
    ),
    Case(
        "SVC/continuous y",
        lambda: SVC().fit(X, RNG.normal(size=12)),
        ValueError,
        r"Unknown label type",
    ),
    Case(
        "SVC/nan y",
        lambda: SVC().fit(X, np.where(Y == 0, NAN, 1.0)),
        ValueError,
        r"Input y contains NaN",
    ),
    Case(
        "SVC/meta X",
        lambda: SVC().fit(torch.zeros((12, 4), device="meta"), Y),
        DeviceError,
        r"X.*'meta'",
    ),
    Case("SVC/C=0", lambda: SVC(C=0).fit(X, Y), ValueError, r"C must be > 0"),
    Case("SVC/C<0", lambda: SVC(C=-1.0).fit(X, Y), ValueError, r"C must be > 0"),
    Case("SVC/C nan", lambda: SVC(C=NAN).fit(X, Y), ValueError, r"C must be finite"),
    # C=+inf is scikit-learn's hard margin (tests/test_svm_surface.py); -inf is refused
    Case("SVC/C -inf", lambda: SVC(C=-INF).fit(X, Y), ValueError, r"C must be finite"),
    Case("SVC/shrinking", lambda: SVC(shrinking=1).fit(X, Y), ValueError, r"shrinking must be"),
    Case("SVC/verbose", lambda: SVC(verbose=-1).fit(X, Y), ValueError, r"verbose must be"),
    Case("SVC/gamma=0", lambda: SVC(gamma=0.0).fit(X, Y), ValueError, r"gamma must be > 0"),
    Case("SVC/gamma inf", lambda: SVC(gamma=INF).fit(X, Y), ValueError, r"gamma must be finite"),
    Case(
        "SVC/gamma name",
        lambda: SVC(gamma="big").fit(X, Y),
        ValueError,
        r"gamma must be 'scale', 'auto'",
    ),
    Case("SVC/tol=0", lambda: SVC(tol=0).fit(X, Y), ValueError, r"tol must be > 0"),
    Case("SVC/tol inf", lambda: SVC(tol=INF).fit(X, Y), ValueError, r"tol must be finite"),
    Case(
        "SVC/cache_size=0",
        lambda: SVC(cache_size=0).fit(X, Y),
        ValueError,
        r"cache_size must be > 0",
    ),
    Case(
        "SVC/degree<0",
        lambda: SVC(kernel="poly", degree=-1).fit(X, Y),
        ValueError,
        r"degree must be an integer >= 0",
    ),
    Case(
        "SVC/coef0 nan",
        lambda: SVC(kernel="poly", coef0=NAN).fit(X, Y),
        ValueError,
        r"coef0 must be finite",
    ),
    Case(
        "SVC/max_iter=0",
        lambda: SVC(max_iter=0).fit(X, Y),
        ValueError,
        r"max_iter must be -1 or a positive integer",
    ),
    Case(
        "SVC/n_jobs=0",
        lambda: SVC(n_jobs=0).fit(X, Y),
        ValueError,
        r"n_jobs must be None, -1 or a positive integer",
    ),
    Case(
        "SVC/kernel name",
        lambda: SVC(kernel="foo").fit(X, Y),
        ExpressionError,
        r"kernel='foo' is neither",
    ),
    Case("SVC/kernel int", lambda: SVC(kernel=3).fit(X, Y), ValueError, r"kernel must be one of"),
    Case(
        "SVC/malformed expression",
        lambda: SVC(kernel="norm1(sin(x * y)").fit(X, Y),
        ExpressionError,
        r"position",
    ),
    Case(
        "SVC/vector expression",
        lambda: SVC(kernel="x * y").fit(X, Y),
        ExpressionError,
        r"vector-valued",
    ),
    Case(
        "SVC/expression overflow",
        lambda: SVC(kernel="norm1(exp(exp(x * y)))").fit(X * 100, Y),
        ExpressionError,
        r"non-finite",
    ),
    Case(
        "SVC/shape name",
        lambda: SVC(decision_function_shape="ovx").fit(X, Y),
        ValueError,
        r"decision_function_shape",
    ),
    Case(
        "SVC/class_weight",
        lambda: SVC(class_weight="auto").fit(X, Y),
        ValueError,
        r"class_weight must be",
    ),
    Case(
        "SVC/class_weight classes",
        lambda: SVC(class_weight={5: 1.0}).fit(X, Y),
        ValueError,
        r"not in class_weight",
    ),
    Case(
        "SVC/sample_weight length",
        lambda: SVC().fit(X, Y, sample_weight=np.ones(3)),
        ValueError,
        r"sample_weight and X have incompatible shapes",
    ),
    Case(
        "SVC/sample_weight nan",
        lambda: SVC().fit(X, Y, sample_weight=with_value(np.ones(12), NAN, 0)),
        ValueError,
        r"sample_weight contains NaN",
    ),
    Case(
        "SVC/sample_weight all <= 0",
        lambda: SVC().fit(X, Y, sample_weight=-np.ones(12)),
        ValueError,
        r"zero or negative weights",
    ),
    Case(
        "SVC/callable shape",
        lambda: SVC(kernel=lambda a, b: np.ones((2, 2))).fit(X, Y),
        ValueError,
        r"kernel callable returned shape \(2, 2\)",
    ),
    Case(
        "SVC/callable nan",
        lambda: SVC(kernel=lambda a, b: np.full((len(a), len(b)), NAN)).fit(X, Y),
        ValueError,
        r"kernel callable returned NaN",
    ),
    Case(
        "SVC/precomputed not square",
        lambda: SVC(kernel="precomputed").fit(X, Y),
        ValueError,
        r"square matrix",
    ),
    # --- probability --------------------------------------------------------------------
    Case(
        "SVC/probability str",
        lambda: SVC(probability="yes").fit(X, Y),
        ConfigError,
        r"probability must be a bool, got 'yes'",
    ),
    Case(
        "SVC/probability 2",
        lambda: SVC(probability=2).fit(X, Y),
        ConfigError,
        r"probability must be a bool, got 2",
    ),
    Case(
        "SVC/probability random_state",
        lambda: SVC(probability=True, random_state="x").fit(X, Y),
        ConfigError,
        r"random_state must be None, an integer in \[0, 4294967295\] or a numpy",
    ),
    Case(
        "SVC/predict_proba before fit",
        lambda: SVC(probability=True).predict_proba(X),
        NotFittedError,
        r"not fitted",
    ),
    Case(
        "SVC/predict_proba without the model",
        lambda: fitted_svc().predict_proba(X),
        AttributeError,
        r"has no attribute 'predict_proba'",
    ),
    Case(
        "SVC/predict_log_proba without the model",
        lambda: fitted_svc().predict_log_proba(X),
        AttributeError,
        r"has no attribute 'predict_log_proba'",
    ),
    Case(
        "SVC/predict_proba nan",
        lambda: fitted_svc(probability=True).predict_proba(with_value(X, NAN)),
        ValueError,
        r"Input X contains NaN",
    ),
    Case(
        "SVC/predict_proba features",
        lambda: fitted_svc(probability=True).predict_proba(X[:, :2]),
        ValueError,
        r"X has 2 features, but SVC is expecting 4",
    ),
    Case("SVC/predict before fit", lambda: SVC().predict(X), NotFittedError, r"not fitted"),
    Case(
        "SVC/decision before fit", lambda: SVC().decision_function(X), NotFittedError, r"not fitted"
    ),
    Case(
        "SVC/predict features",
        lambda: fitted_svc().predict(X[:, :3]),
        ValueError,
        r"X has 3 features, but SVC is expecting 4",
    ),
    Case(
        "SVC/predict nan",
        lambda: fitted_svc().predict(with_value(X, NAN)),
        ValueError,
        r"Input X contains NaN",
    ),
    Case("SVC/predict empty", lambda: fitted_svc().predict(X[:0]), ValueError, r"0 sample"),
    Case(
        "SVC/predict meta",
        lambda: fitted_svc().predict(torch.zeros((2, 4), device="meta")),
        DeviceError,
        r"X.*'meta'",
    ),
    Case(
        "SVC/predict expression nan",
        lambda: fitted_svc(kernel=KERNEL).predict(with_value(X, NAN)),
        ValueError,
        r"Input X contains NaN",
    ),
]


#: Errors raised elsewhere by design: SVC validates its arrays with scikit-learn's own
#: checks (``validate_data``; ``check_estimator`` expects its messages).
FOREIGN = {
    "SVC/nan": ("sklearn",),
    "SVC/inf": ("sklearn",),
    "SVC/strings": ("sklearn",),
    "SVC/objects": ("sklearn",),
    "SVC/complex": ("sklearn",),
    "SVC/1-D": ("sklearn",),
    "SVC/3-D": ("sklearn",),
    "SVC/empty": ("sklearn",),
    "SVC/lengths": ("sklearn",),
    "SVC/continuous y": ("sklearn",),
    "SVC/nan y": ("sklearn",),
    "SVC/class_weight classes": ("sklearn",),
    "SVC/predict features": ("sklearn",),
    # scikit-learn's conventions, by design: its available_if hides predict_proba when
    # probability=False, and its input validation names NaN and feature counts.
    "SVC/predict_proba without the model": ("sklearn",),
    "SVC/predict_log_proba without the model": ("sklearn",),
    "SVC/predict_proba nan": ("sklearn",),
    "SVC/predict_proba features": ("sklearn",),
    "SVC/predict nan": ("sklearn",),
    "SVC/predict empty": ("sklearn",),
    "SVC/predict expression nan": ("sklearn",),
}
CASES = with_foreign(CASES, FOREIGN)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
    check_case(case)
