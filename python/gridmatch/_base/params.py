"""Checks of settings: estimator parameters, search settings, scalar options (private).

Every rule is written once here and used by every estimator (:class:`~gridmatch.svm.SVC`,
:class:`~gridmatch.GridSearchNetwork`, the searches, the loss objects) and by the
functions' scalar options, so a bad value raises the same
:class:`~gridmatch.ConfigError` everywhere, with a message in one form that names the
parameter, what is expected and the value given::

    budget must be a positive integer, got 0
    n_jobs must be None, -1 or a positive integer, got 0
    lr must be > 0, got -1.0
    risk_seeking must be a fraction in (0, 1] or None, got 1.5
    controller must be 'rl' or 'random', got 'ppo'
    grid must be (rows, cols), a positive integer each, got (3,)

Each rule returns the value converted (``int``, ``float``, ``bool``, ...). ``optional``
rules accept ``None`` (and return it); ``also`` lists single values accepted besides the
range (``max_iter=-1``).

Array checks (shapes, dtypes, devices) live in :mod:`gridmatch._base.validate`.
"""

from __future__ import annotations

import numbers
import operator
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .exceptions import ConfigError

__all__ = [
    "choice",
    "device",
    "flag",
    "int_tuple",
    "integer",
    "n_jobs",
    "random_state",
    "real",
]


def _alternatives(parts: Sequence[str]) -> str:
    """``"a"``, ``"a or b"``, ``"a, b or c"``."""
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"


def _expect(kind: str, optional: bool, also: Sequence[Any]) -> str:
    return _alternatives([*(["None"] if optional else []), *map(repr, also), kind])


def _int_kind(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an integer in [{low}, {high}]"
    if low == 1:
        return "a positive integer"
    if low is not None:
        return f"an integer >= {low}"
    if high is not None:
        return f"an integer <= {high}"
    return "an integer"


def integer(
    value: Any,
    name: str,
    low: int | None = None,
    high: int | None = None,
    *,
    optional: bool = False,
    also: Sequence[int] = (),
) -> Any:
    """``value`` as an ``int`` in ``[low, high]`` (either bound may be open-ended).

    Parameters
    ----------
    value : object
        The value: a Python or numpy integer (``bool`` is refused).
    name : str
        The parameter's name, for the message.
    low, high : int, optional
        Smallest and largest values allowed.
    optional : bool, default=False
        Whether ``None`` is allowed (returned as is).
    also : sequence of int, default=()
        Values allowed outside the range (e.g. ``-1`` for "no limit").

    Returns
    -------
    int or None

    Raises
    ------
    ConfigError
        ``"{name} must be {expected}, got {value!r}"``.
    """
    if value is None and optional:
        return None
    ok = not isinstance(value, (bool, np.bool_))
    if ok:
        try:
            value = operator.index(value)
        except TypeError:
            ok = False
    if ok and value not in also:
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        expected = _expect(_int_kind(low, high), optional, also)
        raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return value


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        kind = "a fraction" if 0 <= low and high <= 1 else "a number"
        return f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def real(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> Any:
    """``value`` as a finite ``float`` in an interval (either bound may be open-ended).

    The checks run in order — a number (``bool`` is refused), finite, in the interval —
    and the first that fails names what is expected: ``"lr must be a number > 0, got
    'x'"``, ``"lr must be finite, got inf"``, ``"lr must be > 0, got 0"``. A value
    between two bounds is checked against the interval alone (``"a fraction in (0,
    1]"``), which NaN and infinities fail.

    Parameters
    ----------
    value : object
        The value: a real number (Python, numpy, or anything with ``__float__``).
    name : str
        The parameter's name, for the message.
    low, high : float, optional
        Bounds of the interval.
    low_open, high_open : bool, default=False
        Whether the bound itself is excluded.
    optional : bool, default=False
        Whether ``None`` is allowed (returned as is).

    Returns
    -------
    float or None

    Raises
    ------
    ConfigError
        The value is not a number, not finite, or outside the interval.
    """
    if value is None and optional:
        return None
    interval = _interval(low, high, low_open, high_open)
    number = not isinstance(value, (bool, np.bool_, str, bytes)) and (
        isinstance(value, numbers.Real)
        or (hasattr(value, "__float__") and not isinstance(value, numbers.Complex))
    )
    if number:
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            number = False
    none = " or None" if optional else ""
    if not number:
        if not interval or interval.startswith("a "):
            kind = interval or "a number"  # "a fraction in (0, 1]" says it is a number
        else:
            kind = f"a number {interval}"
        raise ConfigError(f"{name} must be {kind}{none}, got {value!r}")
    bounded = low is not None and high is not None
    if not bounded and not np.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    inside = (
        (low is None or (v > low if low_open else v >= low))
        and (high is None or (v < high if high_open else v <= high))
        and (not bounded or np.isfinite(v))
    )
    if not inside:
        raise ConfigError(f"{name} must be {interval}{none}, got {value!r}")
    return v


def flag(value: Any, name: str) -> bool:
    """``value`` as a ``bool`` (Python or numpy ``bool``; numbers are refused).

    Parameters
    ----------
    value : object
        The value.
    name : str
        The parameter's name, for the message.

    Returns
    -------
    bool

    Raises
    ------
    ConfigError
        ``"{name} must be a bool, got {value!r}"``.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def choice(
    value: Any,
    name: str,
    options: Sequence[str],
    *,
    optional: bool = False,
    other: str | None = None,
) -> Any:
    """``value`` if it is one of the names ``options``.

    Parameters
    ----------
    value : object
        The value.
    name : str
        The parameter's name, for the message.
    options : sequence of str
        The names allowed.
    optional : bool, default=False
        Whether ``None`` is allowed.
    other : str, optional
        What else the parameter accepts, checked by the caller (e.g. ``"a float > 0"``):
        only named in the message.

    Returns
    -------
    str or None

    Raises
    ------
    ConfigError
        ``"{name} must be 'a', 'b' or 'c', got {value!r}"``.
    """
    if value is None and optional:
        return None
    if not (isinstance(value, str) and value in options):
        parts = [*(["None"] if optional else []), *map(repr, options), *([other] if other else [])]
        raise ConfigError(f"{name} must be {_alternatives(parts)}, got {value!r}")
    return value


def int_tuple(value: Any, name: str, labels: Sequence[str], low: int | None = None) -> tuple:
    """``value`` as a tuple of ``len(labels)`` integers ``>= low``, e.g. ``grid=(rows, cols)``.

    Parameters
    ----------
    value : object
        A sequence of integers.
    name : str
        The parameter's name, for the message.
    labels : sequence of str
        What each entry is (``("rows", "cols")``).
    low : int, optional
        Smallest value allowed for each entry.

    Returns
    -------
    tuple of int

    Raises
    ------
    ConfigError
        ``"{name} must be (rows, cols), a positive integer each, got {value!r}"``.
    """
    try:
        items = tuple(value)
        if len(items) != len(labels):
            raise ConfigError
        return tuple(integer(v, name, low) for v in items)
    except (TypeError, ConfigError):
        raise ConfigError(
            f"{name} must be ({', '.join(labels)}), {_int_kind(low, None)} each, got {value!r}"
        ) from None


def device(value: Any, name: str = "device") -> str:
    """``value`` if it names a device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Parameters
    ----------
    value : object
        The value.
    name : str, default="device"
        The parameter's name, for the message.

    Returns
    -------
    str

    Raises
    ------
    ConfigError
        ``"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}"``.
    """
    if not isinstance(value, str) or not (
        value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())
    ):
        raise ConfigError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")
    return value


def n_jobs(value: Any, name: str = "n_jobs") -> int:
    """Threads for scikit-learn's ``n_jobs``: ``None`` → 0 (gridmatch's pool), ``-1`` → all CPUs.

    Parameters
    ----------
    value : object
        ``None``, ``-1`` or a positive integer.
    name : str, default="n_jobs"
        The parameter's name, for the message.

    Returns
    -------
    int
        The thread count the core takes (0: gridmatch's pool).

    Raises
    ------
    ConfigError
        ``"{name} must be None, -1 or a positive integer, got {value!r}"``.
    """
    value = integer(value, name, low=1, optional=True, also=(-1,))
    if value is None:
        return 0
    return (os.cpu_count() or 1) if value == -1 else value


def random_state(value: Any, name: str = "random_state") -> np.random.RandomState:
    """scikit-learn's ``random_state`` (None, an int seed or a ``RandomState``) as a generator.

    Parameters
    ----------
    value : object
        ``None``, an integer in ``[0, 2**32 - 1]`` or a ``numpy.random.RandomState``.
    name : str, default="random_state"
        The parameter's name, for the message.

    Returns
    -------
    numpy.random.RandomState

    Raises
    ------
    ConfigError
        ``"{name} must be None, an integer in [0, 4294967295] or a
        numpy.random.RandomState, got {value!r}"``.
    """
    from sklearn.utils import check_random_state

    try:
        return check_random_state(value)
    except ValueError:
        raise ConfigError(
            f"{name} must be None, an integer in [0, {2**32 - 1}] or a "
            f"numpy.random.RandomState, got {value!r}"
        ) from None
