"""The checks of what a catalogue is built from: ids, classes, split names and paths."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .._base.exceptions import DataError, ShapeError
from .._base.validate import host_array

__all__ = ["INT64_MAX", "frozen", "fspaths", "labels", "resolve", "split_names"]

INT64_MAX = np.iinfo(np.int64).max


def labels(values: Any, name: str, noun: str) -> np.ndarray:
    """Ids or classes given by the caller: an int64 array or an object array of str."""
    values = host_array(values, name)
    if isinstance(values, (str, bytes)) or np.ndim(values) == 0:
        raise ShapeError(f"{name} must be a sequence of strings or integers, got {values!r}")
    if isinstance(values, np.ndarray) or hasattr(values, "__array__"):
        arr = np.asarray(values)
    else:  # a list or tuple: keep each element's own type (numpy would turn 1 into "1")
        seq = list(values)
        arr = np.empty(len(seq), dtype=object)
        for i, v in enumerate(seq):
            arr[i] = v
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be 1-D, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind in "iu":
        if kind == "u" and arr.size and int(arr.max()) > INT64_MAX:
            raise ShapeError(f"{name} holds integers beyond the int64 range")
        return arr.astype(np.int64)
    if kind == "f":
        bad = np.flatnonzero(np.isnan(arr))
        if bad.size:
            raise ShapeError(f"{name}[{bad[0]}] is NaN; every image needs a {noun}")
        raise ShapeError(f"{name} must hold strings or integers, got floats ({arr.dtype})")
    if kind not in "UO":
        raise ShapeError(f"{name} must hold strings or integers, got dtype {arr.dtype}")
    out, types = np.empty(arr.shape[0], dtype=object), set()
    for i, v in enumerate(arr.tolist()):
        if v is None or (isinstance(v, (float, np.floating)) and v != v):
            what = "None" if v is None else "NaN"
            raise ShapeError(f"{name}[{i}] is {what}; every image needs a {noun}")
        if isinstance(v, np.integer):
            v = int(v)
        if isinstance(v, str):
            if not v:
                raise ShapeError(f"{name}[{i}] is an empty string; every image needs a {noun}")
            v, t = str(v), "str"
        elif isinstance(v, int) and not isinstance(v, bool):
            if not -INT64_MAX - 1 <= v <= INT64_MAX:
                raise ShapeError(f"{name}[{i}] = {v} is beyond the int64 range")
            t = "int"
        else:
            raise ShapeError(f"{name}[{i}] = {v!r}: {name} must be strings or integers")
        types.add(t)
        out[i] = v
    if len(types) > 1:
        raise ShapeError(f"{name} mix strings and integers; use one type (1 and '1' differ)")
    return out.astype(np.int64) if types == {"int"} else out


def split_names(values: Any, n: int) -> np.ndarray:
    """Split names given by the caller (one string: the same for all ``n`` images)."""
    if isinstance(values, str):
        values = [values] * n
    arr = labels(values, "split", "split name")
    if arr.dtype != object:
        raise ShapeError("split must hold split names (strings) such as 'train'")
    return arr


def frozen(a: np.ndarray) -> np.ndarray:
    """``a``, made read-only (a catalogue's arrays are values)."""
    a.flags.writeable = False
    return a


def resolve(
    paths: list[str], base: str, root: str | None, where: Callable[[int], str], hint: str = ""
):
    """Canonical absolute paths; DataError for outside ``root`` (the message ending with
    ``hint``), missing or duplicate."""
    real_root = os.path.realpath(root) if root is not None else None
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(paths):
        real = os.path.realpath(os.path.join(base, p))
        if real_root is not None and os.path.commonpath([real_root, real]) != real_root:
            raise DataError(
                f"{where(i)}: {p!r} lies outside root {root} (resolves to {real}){hint}"
            )
        if real in seen:
            raise DataError(f"duplicate path {real} ({where(seen[real])} and {where(i)})")
        if not os.path.isfile(real):
            raise DataError(f"{where(i)}: no such image file {real}")
        seen[real] = i
        out.append(real)
    return np.array(out, dtype=object) if out else np.empty(0, dtype=object)


def fspaths(paths: Any) -> list[str]:
    """The caller's paths as strings (``ShapeError`` for a single path or a non-path)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise ShapeError(f"paths must be a sequence of paths, got the single path {paths!r}")
    out = []
    for i, p in enumerate(list(paths)):
        if isinstance(p, os.PathLike):
            p = os.fspath(p)
        if not isinstance(p, str) or not p:
            raise ShapeError(f"paths[{i}] = {p!r} is not a path (str or os.PathLike)")
        out.append(p)
    return out
