"""The caller's ids of an :class:`~gridmatch.retrieval.Index` (private).

Every vector added to an index gets a *slot*: 0, 1, 2, ... in the order of addition.
Slots are what the backends store (the exact backend's rows, the faiss backend's
labels); :class:`IdBook` maps them to the caller's ids (int64 or strings, one kind per
index) and remembers which slots were removed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._base.exceptions import ShapeError
from ..._base.validate import host_array

__all__ = ["IdBook"]

#: How many offending ids an error message names.
_SHOWN = 5


def _show(values: np.ndarray) -> str:
    head = ", ".join(repr(v) for v in values[:_SHOWN].tolist())
    return head + (f", ... ({len(values)} in all)" if len(values) > _SHOWN else "")


def _duplicates(a: np.ndarray) -> np.ndarray:
    """The values that occur more than once in ``a`` (sorted, each once)."""
    s = np.sort(a)
    return np.unique(s[1:][s[1:] == s[:-1]])


def as_ids(ids: Any, name: str) -> tuple[np.ndarray, str]:
    """``ids`` as a 1-D int64 or unicode array and its kind, ``"int"`` or ``"str"``.

    Raises
    ------
    ShapeError
        If ``ids`` is not 1-D or holds something other than integers or strings (floats,
        booleans, bytes, a mix), or integers outside int64.
    """
    ids = host_array(ids, name)
    try:
        a = np.asarray(ids)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name} must be a 1-D array of integers or strings: {e}") from None
    if a.ndim != 1:
        raise ShapeError(f"{name} must be 1-D (one id per vector), got shape {a.shape}")
    if a.dtype == object:
        if all(isinstance(v, str) for v in a):
            a = a.astype(str) if len(a) else np.empty(0, dtype="U1")
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in a):
            a = np.array([int(v) for v in a]) if len(a) else np.empty(0, dtype=np.int64)
        else:
            raise ShapeError(f"{name} must hold only integers or only strings")
    if a.size == 0 and a.dtype.kind == "f":  # [] becomes float64
        a = a.astype(np.int64)
    if a.dtype.kind == "U":
        return a, "str"
    if a.dtype.kind in "iu":
        if a.size and a.dtype.kind == "u" and int(a.max()) > np.iinfo(np.int64).max:
            raise ShapeError(f"{name} holds integers beyond int64: {_show(a[a > 2**63 - 1])}")
        return a.astype(np.int64), "int"
    raise ShapeError(f"{name} must hold integers (int64) or strings (str), got dtype {a.dtype}")


class IdBook:
    """The caller's id of every slot, and whether the slot is still in the index.

    Parameters
    ----------
    ids : ndarray, optional
        Ids by slot (int64 or unicode).
    alive : ndarray of bool, optional
        Whether each slot is in the index (not removed).
    """

    def __init__(self, ids: np.ndarray | None = None, alive: np.ndarray | None = None) -> None:
        self.ids = np.empty(0, dtype=np.int64) if ids is None else ids
        self.alive = np.ones(len(self.ids), dtype=bool) if alive is None else alive
        self.kind: str | None = None
        if ids is not None:
            self.kind = "str" if self.ids.dtype.kind == "U" else "int"
        self._n_alive = int(self.alive.sum())

    def __len__(self) -> int:
        return self._n_alive

    @property
    def n_slots(self) -> int:
        """Number of slots ever given out (removed ones included)."""
        return len(self.ids)

    def live_ids(self) -> np.ndarray:
        """The ids in the index, in slot order (a copy)."""
        return self.ids[self.alive]

    def next_auto(self, n: int) -> np.ndarray:
        """``n`` fresh integer ids: one past the largest integer id ever given, upwards."""
        if self.kind == "str":
            raise ShapeError(
                "this index has string ids: give ids= for the new vectors (ids=None numbers "
                "them only in an index of integer ids)"
            )
        start = int(self.ids.max()) + 1 if len(self.ids) else 0
        return np.arange(start, start + n, dtype=np.int64)

    def check_new(self, ids: Any, n: int) -> np.ndarray:
        """Validate the ids of ``n`` new vectors; returns them as an array.

        Raises
        ------
        ShapeError
            Wrong length or kind (integers in an index of strings or the reverse), an id
            given twice, or an id already in the index.
        """
        a, kind = as_ids(ids, "ids")
        if len(a) != n:
            raise ShapeError(f"ids has {len(a)} ids but E has {n} rows")
        if self.kind is not None and kind != self.kind and len(a):
            have = "integer" if self.kind == "int" else "string"
            raise ShapeError(f"this index has {have} ids; got {kind} ids")
        twice = _duplicates(a)
        if len(twice):
            raise ShapeError(f"ids must be unique; given more than once: {_show(twice)}")
        if len(self):
            taken = a[np.isin(a, self.live_ids())]
            if len(taken):
                raise ShapeError(f"ids already in the index: {_show(taken)}")
        return a

    def append(self, ids: np.ndarray) -> np.ndarray:
        """Give slots to new (checked) ids; returns the slots (int64)."""
        if len(ids) == 0:
            return np.empty(0, dtype=np.int64)
        if self.kind is None:
            self.kind = "str" if ids.dtype.kind == "U" else "int"
            self.ids = ids.copy()
        else:
            self.ids = np.concatenate([self.ids, ids])
        first = len(self.alive)
        self.alive = np.concatenate([self.alive, np.ones(len(ids), dtype=bool)])
        self._n_alive += len(ids)
        return np.arange(first, first + len(ids), dtype=np.int64)

    def slots_of(self, ids: Any) -> np.ndarray:
        """The slots of ids in the index (sorted).

        Raises
        ------
        ShapeError
            An id given twice, of the wrong kind, or not in the index (nothing changes).
        """
        a, kind = as_ids(ids, "ids")
        if not len(a):
            return np.empty(0, dtype=np.int64)
        if kind != self.kind:
            have = {"int": "integer", "str": "string", None: "no"}[self.kind]
            raise ShapeError(f"this index has {have} ids; cannot remove {kind} ids")
        twice = _duplicates(a)
        if len(twice):
            raise ShapeError(f"ids to remove are given more than once: {_show(twice)}")
        live = np.flatnonzero(self.alive)
        found = np.isin(a, self.ids[live])
        if not found.all():
            raise ShapeError(f"ids not in the index: {_show(a[~found])}")
        return live[np.isin(self.ids[live], a)]

    def kill(self, slots: np.ndarray) -> None:
        """Mark slots as removed."""
        self.alive[slots] = False
        self._n_alive = int(self.alive.sum())

    def compact(self) -> np.ndarray:
        """Drop the removed slots (renumbering the rest); returns the kept slots' mask."""
        keep = self.alive
        self.ids = self.ids[keep]
        self.alive = np.ones(len(self.ids), dtype=bool)
        return keep
