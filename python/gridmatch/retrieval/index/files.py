"""The file format of :class:`~gridmatch.retrieval.Index` (private).

An index file is a model file of :mod:`gridmatch`'s store (``_core.store_save``: a
safetensors file, SHA-256 checksummed, written atomically). Arrays, one row per *slot*
(every vector ever added, removed ones included for the faiss backend):

``alive`` (bool)
    whether the slot is in the index;
``ids`` (i64), or ``ids_utf8`` (u8) and ``ids_offsets`` (i64, slots + 1)
    the caller's ids: integers, or strings as UTF-8 bytes with their offsets;
``vectors`` (f32, slots x dim)
    the vectors (always for the exact backend; faiss with ``keep_vectors``, read back
    from the faiss index when it stores them unchanged: then zeros for removed slots);
``faiss_index`` (u8)
    faiss's own bytes of its ``IndexIDMap2`` (``faiss.serialize_index``).

The metadata key ``gridmatch`` holds the JSON config (format name and version, the
constructor's parameters, the id kind, whether removed slots are filtered at search
time). Loading checks all of it and raises :class:`~gridmatch.DataError`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ... import _core
from ..._base.exceptions import DataError
from .ids import IdBook

__all__ = ["FORMAT", "VERSION", "decode", "encode"]

FORMAT = "gridmatch.retrieval.Index"
VERSION = 1

_NP = {"f32": np.float32, "i64": np.int64, "u8": np.uint8, "bool": np.bool_}


def _entry(name: str, dtype: str, a: np.ndarray) -> tuple:
    a = np.ascontiguousarray(a, dtype=_NP[dtype])
    return name, dtype, [int(d) for d in a.shape], a.tobytes()


def encode(index: Any) -> tuple[list, dict[str, str]]:
    """The arrays and metadata of ``index`` for ``_core.store_save``."""
    book = index._book
    arrays = [_entry("alive", "bool", book.alive)]
    kind = book.kind or "int"
    if kind == "str":
        raw = [s.encode("utf-8") for s in book.ids.tolist()]
        offsets = np.zeros(len(raw) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in raw], out=offsets[1:])
        arrays.append(_entry("ids_utf8", "u8", np.frombuffer(b"".join(raw), dtype=np.uint8)))
        arrays.append(_entry("ids_offsets", "i64", offsets))
    else:
        arrays.append(_entry("ids", "i64", book.ids))
    vectors = index._kept_vectors()
    if vectors is not None:
        arrays.append(_entry("vectors", "f32", vectors))
    tombstones = False
    if index._faiss is not None:
        arrays.append(_entry("faiss_index", "u8", index._faiss.serialize()))
        tombstones = index._faiss.tombstones
    config = {
        "format": FORMAT,
        "version": VERSION,
        "gridmatch_version": _core.__version__,
        "dim": index.dim,
        "metric": index.metric,
        "backend": index.backend,
        "factory": index.factory,
        "train_size": index.train_size,
        "seed": index.seed,
        "keep_vectors": index.keep_vectors,
        "id_kind": book.kind,
        "tombstones": tombstones,
    }
    return arrays, {"gridmatch": json.dumps(config)}


def _config(metadata: dict[str, str], bad) -> dict:
    try:
        config = json.loads(metadata["gridmatch"])
    except KeyError:
        raise bad("not a saved gridmatch Index (no 'gridmatch' metadata)") from None
    except ValueError as e:
        raise bad(f"the index config is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise bad("not a saved gridmatch Index (wrong 'format')")
    if config.get("version") != VERSION:
        raise bad(
            f"format version {config.get('version')!r} is not supported (this gridmatch "
            f"reads version {VERSION}); save the index again with this version"
        )
    want = {
        "dim": int,
        "metric": str,
        "backend": str,
        "seed": int,
        "keep_vectors": bool,
        "tombstones": bool,
    }
    for key, typ in want.items():
        v = config.get(key)
        ok = isinstance(v, bool) if typ is bool else isinstance(v, typ) and not isinstance(v, bool)
        if not ok:
            raise bad(f"config entry {key!r} is missing or not a {typ.__name__}")
    if config["backend"] == "faiss" and not isinstance(config.get("factory"), str):
        raise bad("config entry 'factory' is missing or not a str")
    ts = config.get("train_size")
    if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool)):
        raise bad("config entry 'train_size' is not an int or null")
    if config.get("id_kind") not in (None, "int", "str"):
        raise bad(f"config entry 'id_kind' is {config.get('id_kind')!r}")
    return config


def _arrays(arrays: list, config: dict, bad) -> dict[str, np.ndarray]:
    """The arrays by name, checked against the expected set, dtypes and shapes."""
    got: dict[str, Any] = {}
    for name, dtype, shape, data in arrays:
        expected = _DTYPES.get(name)
        if expected is None:
            got[name] = None  # reported below as unexpected
            continue
        if dtype != expected:
            raise bad(f"array {name!r} has dtype {dtype}, expected {expected}")
        try:
            got[name] = np.frombuffer(data, dtype=_NP[dtype]).reshape(shape)
        except ValueError as e:
            raise bad(f"array {name!r} does not match its shape ({e})") from None
    want = {"alive"}
    want |= {"ids_utf8", "ids_offsets"} if config["id_kind"] == "str" else {"ids"}
    if config["backend"] == "exact" or config["keep_vectors"]:
        want.add("vectors")
    if config["backend"] == "faiss":
        want.add("faiss_index")
    if set(got) != want:
        raise bad(
            f"wrong arrays (missing {sorted(want - set(got))}, unexpected "
            f"{sorted(set(got) - want)})"
        )
    n = got["alive"].shape[0] if got["alive"].ndim == 1 else -1
    if n < 0:
        raise bad("array 'alive' is not 1-D")
    if "vectors" in got and got["vectors"].shape != (n, config["dim"]):
        raise bad(f"array 'vectors' has shape {got['vectors'].shape}, expected ({n}, dim)")
    if "ids" in got and got["ids"].shape != (n,):
        raise bad(f"array 'ids' has shape {got['ids'].shape}, expected ({n},)")
    if "ids_offsets" in got and got["ids_offsets"].shape != (n + 1,):
        raise bad(f"array 'ids_offsets' has shape {got['ids_offsets'].shape}")
    return got


_DTYPES = {
    "alive": "bool",
    "ids": "i64",
    "ids_utf8": "u8",
    "ids_offsets": "i64",
    "vectors": "f32",
    "faiss_index": "u8",
}


def _strings(utf8: np.ndarray, offsets: np.ndarray, bad) -> np.ndarray:
    if len(utf8.shape) != 1:
        raise bad("array 'ids_utf8' is not 1-D")
    if offsets[0] != 0 or offsets[-1] != len(utf8) or (np.diff(offsets) < 0).any():
        raise bad("array 'ids_offsets' does not delimit 'ids_utf8'")
    raw = utf8.tobytes()
    try:
        out = [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    except UnicodeDecodeError as e:
        raise bad(f"a string id is not valid UTF-8 ({e})") from None
    return np.array(out, dtype=str) if out else np.empty(0, dtype="U1")


def decode(
    index_class: type, arrays: list, metadata: dict[str, str], where: str, gpu: bool | None
) -> Any:
    """Rebuild an Index (of ``index_class``: the caller's, so this module stays below the
    class) from :func:`encode`'s output; ``DataError`` if anything is off."""

    def bad(msg: str) -> DataError:
        return DataError(f"{where}: {msg}")

    config = _config(metadata, bad)
    got = _arrays(arrays, config, bad)
    try:
        index = index_class(
            config["dim"],
            metric=config["metric"],
            backend=config["backend"],
            factory=config.get("factory") if config["backend"] == "faiss" else None,
            train_size=config.get("train_size"),
            seed=config["seed"],
            gpu=False,
            keep_vectors=config["keep_vectors"],
        )
    except ValueError as e:
        raise bad(f"invalid config ({e})") from None
    alive = got["alive"].copy()
    if config["id_kind"] == "str":
        ids = _strings(got["ids_utf8"], got["ids_offsets"], bad)
    else:
        ids = got["ids"].copy()
    live = ids[alive]
    if len(np.unique(live)) != len(live):
        raise bad("the ids in the index are not unique")
    if len(ids):
        index._book = IdBook(ids, alive)
    if "vectors" in got:
        vectors = got["vectors"].copy()
        if not np.isfinite(vectors).all():
            raise bad("array 'vectors' holds NaN or inf")
        index._vectors = vectors
    if config["backend"] == "exact" and not alive.all():
        raise bad("an exact index holds removed rows")
    if config["backend"] == "faiss":
        from .faiss_backend import FaissIndex

        try:
            fi, labels = FaissIndex.deserialize(
                got["faiss_index"],
                config["dim"],
                config["metric"],
                index.factory or "Flat",
                gpu,
                config["tombstones"],
            )
        except ValueError as e:
            raise bad(str(e)) from None
        slots = np.flatnonzero(alive)
        n = fi.ntotal
        if n < len(slots) or (not config["tombstones"] and n != len(slots)):
            raise bad(f"the faiss index holds {n} vectors, the ids say {len(slots)}")
        if labels is not None and (
            not np.isin(slots, labels).all() or (labels >= len(alive)).any() or (labels < 0).any()
        ):
            raise bad("the faiss index's labels do not match the stored ids")
        fi.set_dead(np.flatnonzero(~alive) if config["tombstones"] else np.empty(0))
        index._faiss = fi
        if fi.stores_vectors:
            index._vectors = None  # faiss holds them: the file's copy is not kept twice
    return index
