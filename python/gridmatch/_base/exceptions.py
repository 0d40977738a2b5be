"""The exception and warning classes of gridmatch (the foundation's errors).

Users import them from :mod:`gridmatch.exceptions` (or ``gridmatch``), whose docstring
says which is raised when and which builtin class each also derives from; the
extension's error mapping (src/python/errors.rs) imports them from there too.
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning as _SkConvergenceWarning
from sklearn.exceptions import NotFittedError as _SkNotFittedError

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


class GridmatchError(Exception):
    """Base class of every error gridmatch raises on purpose."""


class ConfigError(GridmatchError, ValueError):
    """A setting has an invalid type or value.

    Raised for an estimator's parameters (checked when ``fit`` starts, as scikit-learn
    does), a search's settings and the scalar options of functions (``k``,
    ``batch_size``, ``seed``, ...); the message names the parameter, what it must be
    and the value given, e.g. ``budget must be a positive integer, got 0``. Settings
    that contradict each other (``positives`` for the ``grid``) raise it too. Being a
    ``ValueError``, it is caught by scikit-learn's tools and by ``except ValueError``.
    """


class ShapeError(GridmatchError, ValueError):
    """An input array has the wrong shape, dtype, size or values (NaN/inf)."""


class DataError(GridmatchError, ValueError):
    """A dataset cannot be found, read or verified (missing, truncated, corrupt)."""


class NotFittedError(GridmatchError, _SkNotFittedError):
    """A model was used before it was fitted."""


class ExpressionError(GridmatchError, ValueError):
    """An expression is malformed: syntax error, unknown name or wrong arity."""


class DeviceError(GridmatchError, RuntimeError):
    """The requested device (for example ``"cuda"``) is not available."""


class BackendError(GridmatchError, RuntimeError):
    """libtorch or a numerical solver failed."""


class ConvergenceWarning(_SkConvergenceWarning):
    """An iterative solver stopped at its iteration limit before converging."""


class InterruptedWarning(UserWarning):
    """Long work was stopped early (Ctrl-C or a callback); the partial result was kept."""


class InputScaleWarning(UserWarning):
    """Images were given on another scale than the one expected.

    :class:`~gridmatch.GridSearchNetwork` takes float images in ``[0, 1]`` or ``uint8``
    images in ``[0, 255]`` and normalises them itself (its ``normalize`` setting); float
    images on a 0–255 scale (or already normalised) would train and embed on another
    scale without an error. See :meth:`gridmatch.GridSearchNetwork.fit` for the rule.
    """
