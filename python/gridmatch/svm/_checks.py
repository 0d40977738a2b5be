"""The parameter checks of :class:`~gridmatch.svm.SVC` (``ConfigError`` naming the bad one)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base import params as _params

__all__ = ["check_params", "hard_margin"]


def hard_margin(C: Any) -> bool:
    """Whether ``C`` is ``+inf`` (a float, not a bool): scikit-learn's hard-margin fit."""
    return isinstance(C, (float, np.floating)) and C == float("inf")


def check_params(est: Any) -> None:
    """Check the parameters of an SVC (``ConfigError`` naming the first bad one).

    Parameters
    ----------
    est : SVC
        The estimator.

    Raises
    ------
    ConfigError
        On the first invalid parameter.
    """
    if not hard_margin(est.C):  # C=inf: a hard margin, as in scikit-learn
        _params.real(est.C, "C", low=0, low_open=True)
    for name in ("tol", "cache_size"):
        _params.real(getattr(est, name), name, low=0, low_open=True)
    _params.integer(est.degree, "degree", low=0)
    _params.real(est.coef0, "coef0")
    if isinstance(est.gamma, str):
        _params.choice(est.gamma, "gamma", ("scale", "auto"), other="a number > 0")
    else:
        _params.real(est.gamma, "gamma", low=0, low_open=True)
    _params.integer(est.max_iter, "max_iter", low=1, also=(-1,))
    _params.choice(est.decision_function_shape, "decision_function_shape", ("ovr", "ovo"))
    if not isinstance(est.class_weight, dict):
        _params.choice(
            est.class_weight, "class_weight", ("balanced",), optional=True, other="a dict"
        )
    _params.n_jobs(est.n_jobs)
    _params.flag(est.probability, "probability")
    _params.random_state(est.random_state)
    _params.flag(est.shrinking, "shrinking")
    _params.flag(est.break_ties, "break_ties")
    if not isinstance(est.verbose, (bool, np.bool_)):
        _params.integer(est.verbose, "verbose", low=0)
