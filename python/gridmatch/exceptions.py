"""Exceptions and warnings raised by gridmatch.

Every error raised on purpose by gridmatch derives from :class:`GridmatchError`. The
subclasses also derive from the builtin (or scikit-learn) class that code outside
gridmatch expects, so ``except ValueError`` keeps working.

======================  =========================================  =========================
class                   raised when                                also a
======================  =========================================  =========================
``ConfigError``         a setting has an invalid type or value     ``ValueError``
``ShapeError``          an array has the wrong shape, dtype, size  ``ValueError``
``DataError``           a dataset file is missing or malformed     ``ValueError``
``NotFittedError``      a model is used before ``fit``             sklearn ``NotFittedError``
``ExpressionError``     an expression does not parse or type-check ``ValueError``
``DeviceError``         a requested device is not available        ``RuntimeError``
``BackendError``        libtorch or a solver failed                ``RuntimeError``
======================  =========================================  =========================

The classes are defined in the foundation (``gridmatch._base.exceptions``); this is the
module users (and the extension's error mapping) import them from.
"""

from __future__ import annotations

from ._base.exceptions import (
    BackendError,
    ConfigError,
    ConvergenceWarning,
    DataError,
    DeviceError,
    ExpressionError,
    GridmatchError,
    InputScaleWarning,
    InterruptedWarning,
    NotFittedError,
    ShapeError,
)

__all__ = [
    "BackendError",
    "ConfigError",
    "ConvergenceWarning",
    "DataError",
    "DeviceError",
    "ExpressionError",
    "GridmatchError",
    "InputScaleWarning",
    "InterruptedWarning",
    "NotFittedError",
    "ShapeError",
]
