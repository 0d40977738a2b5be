"""The faiss backend of :class:`~gridmatch.retrieval.Index` (private).

faiss is an optional dependency, imported here only when an index with
``backend="faiss"`` is created or loaded (faiss and torch can clash over OpenMP on some
platforms when both are loaded; importing faiss late keeps the exact backend free of it).

The index is ``faiss.index_factory(dim, factory, metric)`` wrapped in an
``IndexIDMap2`` whose labels are the slots of :mod:`.ids`. When faiss reports a GPU,
the whole index is copied to GPU 0 (``faiss.index_cpu_to_gpu``; index types without a
GPU version stay on the CPU) and copied back for saving.

Index types that store the vectors themselves, unchanged (``Flat``, ``IVF...,Flat``,
``HNSW...`` over flat storage, on the CPU), give them back (:meth:`FaissIndex.vectors`),
so the :class:`~gridmatch.retrieval.Index` need not keep a copy of its own for ``recall``
and ``save``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._base.exceptions import BackendError, ConfigError, DeviceError, ShapeError

__all__ = ["FaissIndex", "import_faiss"]

INSTALL = "pip install 'gridmatch[faiss]' (or faiss-cpu / faiss-gpu)"


def import_faiss() -> Any:
    """The faiss module; ``ImportError`` saying how to install it when it is missing."""
    try:
        import faiss
    except ImportError as e:
        raise ImportError(f"backend='faiss' needs the faiss package: {INSTALL} ({e})") from e
    return faiss


def _message(e: Exception) -> str:
    """faiss's error text without its C++ location prefix."""
    text = str(e).strip()
    if text.startswith("Error in ") and ": " in text:
        tail = text.rsplit(" at ", 1)[-1]
        text = tail.split(": ", 1)[-1] if ": " in tail else text
    return text.strip() or type(e).__name__


def _parts(faiss: Any, index: Any) -> list:
    """``index`` (downcast) and the indexes inside it, outermost first."""
    out, todo = [], [index]
    while todo:
        ix = faiss.downcast_index(todo.pop(0))
        out.append(ix)
        for attr in ("index", "base_index", "quantizer"):
            sub = getattr(ix, attr, None)
            if sub is not None and hasattr(sub, "ntotal"):
                todo.append(sub)
    return out


def _native_ids(faiss: Any, index: Any) -> bool:
    """Whether ``index`` stores arbitrary int64 ids itself (IVF, maybe after transforms)."""
    ix = faiss.downcast_index(index)
    while isinstance(ix, faiss.IndexPreTransform):
        ix = faiss.downcast_index(ix.index)
    return isinstance(ix, faiss.IndexIVF)


def _get_param(faiss: Any, index: Any, name: str) -> Any:
    """The current value of search parameter ``name`` of ``index``, or ``None``."""
    parts = _parts(faiss, index)
    if name.startswith("quantizer_"):
        for ix in parts:
            q = getattr(ix, "quantizer", None)
            if q is not None and hasattr(q, "ntotal"):
                return _get_param(faiss, q, name[len("quantizer_") :])
        return None
    for ix in parts:
        if name == "efSearch" and hasattr(ix, "hnsw"):
            return ix.hnsw.efSearch
        if name != "efSearch" and hasattr(ix, name) and not callable(getattr(ix, name)):
            return getattr(ix, name)
    return None


def _flat_storage(faiss: Any, index: Any) -> Any:
    """The ``IndexFlat`` holding ``index``'s vectors verbatim (itself or HNSW's storage)."""
    ix = faiss.downcast_index(index)
    if type(ix) is faiss.IndexHNSWFlat:
        ix = faiss.downcast_index(ix.storage)
    return ix if type(ix) in (faiss.IndexFlat, faiss.IndexFlatL2, faiss.IndexFlatIP) else None


class FaissIndex:
    """A faiss index whose labels are slots, with removal and search-time parameters.

    Parameters
    ----------
    dim : int
        Vector dimension.
    metric : {"ip", "l2"}
        Inner product or squared L2 distance.
    factory : str
        A ``faiss.index_factory`` string.
    gpu : bool or None
        ``None``: use GPU 0 when faiss reports one and the index type has a GPU version;
        ``True``: require it; ``False``: stay on the CPU.
    index : faiss.Index, optional
        A deserialised index (``IndexIDMap2``, or IVF holding its own ids) instead of a
        new one (when loading).
    tombstones : bool, default=False
        Whether removed slots stay in the faiss index and are filtered out of results
        (always so for index types that cannot remove vectors: HNSW, refine, ...).
    """

    def __init__(
        self,
        dim: int,
        metric: str,
        factory: str,
        gpu: bool | None,
        index: Any = None,
        tombstones: bool = False,
    ) -> None:
        faiss = self.faiss = import_faiss()
        if index is None:
            kind = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
            try:
                inner = faiss.index_factory(dim, factory, kind)
            except (RuntimeError, ValueError, TypeError) as e:
                raise ConfigError(
                    f"unknown or invalid faiss factory string {factory!r}: {_message(e)}"
                ) from None
            if type(faiss.downcast_index(inner)).__name__.startswith("IndexIDMap"):
                raise ConfigError(
                    f"factory {factory!r} starts with IDMap: leave it out, the Index maps "
                    "ids itself"
                )
            index = inner if _native_ids(faiss, inner) else faiss.IndexIDMap2(inner)
        # IDMap2's remove_ids is right only over an index that renumbers its rows on
        # removal (the flat-codes indexes); IVF removes by its own ids. Other types
        # (HNSW, refine, ...) filter removed slots out at search time instead.
        inner = index.index if isinstance(index, faiss.IndexIDMap2) else None
        tombstones = tombstones or not (
            inner is None or isinstance(faiss.downcast_index(inner), faiss.IndexFlatCodes)
        )
        self.index = index
        self.on_gpu = False
        self.tombstones = tombstones
        self._dead: np.ndarray | None = None
        self._gpu_resources = None
        self._move_to_gpu(gpu)

    # ------------------------------------------------------------------- GPU
    def _move_to_gpu(self, gpu: bool | None) -> None:
        faiss = self.faiss
        n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if gpu is False or (gpu is None and n_gpus == 0):
            return
        if n_gpus == 0:
            raise DeviceError("gpu=True, but faiss sees no GPU (install faiss-gpu)")
        try:
            res = faiss.StandardGpuResources()
            self.index = faiss.index_cpu_to_gpu(res, 0, self.index)
        except (RuntimeError, AttributeError) as e:
            if gpu:
                raise DeviceError(f"this faiss index cannot run on the GPU: {_message(e)}") from e
            return  # auto: index types without a GPU version stay on the CPU
        self._gpu_resources = res  # keep alive as long as the index
        self.on_gpu = True

    def cpu_index(self) -> Any:
        """The index on the CPU (the index itself, or a copy of a GPU index)."""
        return self.faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index

    # ------------------------------------------------------------------ state
    @property
    def is_trained(self) -> bool:
        return bool(self.index.is_trained)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def stores_vectors(self) -> bool:
        """Whether :meth:`vectors` can give the added vectors back exactly.

        True for a CPU index whose storage is the float32 vectors themselves: an
        ``IndexIVFFlat``, or an id map over an ``IndexFlat`` or an ``IndexHNSWFlat``.
        """
        if self.on_gpu:
            return False
        faiss, ix = self.faiss, self.faiss.downcast_index(self.index)
        if isinstance(ix, faiss.IndexIDMap2):
            return _flat_storage(faiss, ix.index) is not None
        return type(ix) is faiss.IndexIVFFlat

    def vectors(self, n_slots: int) -> np.ndarray:
        """The stored vectors by slot, shape ``(n_slots, dim)`` (zeros for slots not held).

        Only when :attr:`stores_vectors`.
        """
        faiss, ix = self.faiss, self.faiss.downcast_index(self.index)
        out = np.zeros((n_slots, ix.d), dtype=np.float32)
        if isinstance(ix, faiss.IndexIDMap2):
            labels = faiss.vector_to_array(ix.id_map)
            flat = _flat_storage(faiss, ix.index)
            if len(labels):
                out[labels] = flat.reconstruct_n(0, len(labels))
            return out
        lists = ix.invlists  # IndexIVFFlat: the codes of a list are its float32 vectors
        for no in range(ix.nlist):
            size = lists.list_size(no)
            if not size:
                continue
            ids_ptr, codes_ptr = lists.get_ids(no), lists.get_codes(no)
            try:
                ids = faiss.rev_swig_ptr(ids_ptr, size)
                codes = faiss.rev_swig_ptr(codes_ptr, size * ix.code_size)
                out[ids] = codes.view(np.float32).reshape(size, ix.d)
            finally:
                lists.release_ids(no, ids_ptr)
                lists.release_codes(no, codes_ptr)
        return out

    def train(self, X: np.ndarray) -> None:
        try:
            self.index.train(X)
        except RuntimeError as e:
            raise ShapeError(f"faiss could not train the index: {_message(e)}") from None

    def add(self, X: np.ndarray, slots: np.ndarray) -> None:
        try:
            self.index.add_with_ids(X, slots)
        except RuntimeError as e:
            raise BackendError(f"faiss could not add the vectors: {_message(e)}") from None

    def remove(self, slots: np.ndarray, dead: np.ndarray) -> None:
        """Remove ``slots``; ``dead`` holds every removed slot (these included).

        The labels of the vectors are their slots: an IVF index stores them itself,
        other types through an ``IndexIDMap2``.
        """
        if not self.tombstones:
            try:
                self.index.remove_ids(np.ascontiguousarray(slots, dtype=np.int64))
                return
            except RuntimeError as e:
                if "not implemented" not in str(e):
                    raise BackendError(f"faiss could not remove: {_message(e)}") from None
            self.tombstones = True  # e.g. HNSW: filter the removed slots out at search time
        self.set_dead(dead)

    def set_dead(self, dead: np.ndarray) -> None:
        """The removed slots to filter out of results (tombstone mode)."""
        self._dead = np.ascontiguousarray(dead, dtype=np.int64) if len(dead) else None

    # ----------------------------------------------------------------- search
    def _param_space(self) -> Any:
        faiss = self.faiss
        return faiss.GpuParameterSpace() if self.on_gpu else faiss.ParameterSpace()

    def _hnsw(self) -> Any:
        """The HNSW index under the id map, or ``None`` when the index is another type."""
        inner = getattr(self.index, "index", None)
        ix = None if inner is None else self.faiss.downcast_index(inner)
        return ix if hasattr(ix, "hnsw") else None

    def _search_alive(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss's search without the removed slots (tombstone mode)."""
        faiss, dead = self.faiss, self._dead
        if dead is None:
            return self.index.search(Q, k)
        hnsw = self._hnsw()
        if hnsw is not None:  # HNSW filters during the graph walk
            batch = faiss.IDSelectorBatch(dead)  # named: each must outlive the search
            sel = faiss.IDSelectorNot(batch)
            p = faiss.SearchParametersHNSW(sel=sel, efSearch=int(hnsw.hnsw.efSearch))
            out = self.index.search(Q, k, params=p)
            del p, sel, batch
            return out
        # Other types: ask for enough more results that k alive ones remain.
        k2 = min(k + len(dead), self.ntotal)
        dist, labels = self.index.search(Q, k2)
        gone = np.isin(labels, dead) | (labels < 0)
        order = np.argsort(gone, axis=1, kind="stable")[:, :k]
        dist, labels = np.take_along_axis(dist, order, 1), np.take_along_axis(labels, order, 1)
        labels[np.take_along_axis(gone, order, 1)] = -1
        return dist, labels

    def search(self, Q: np.ndarray, k: int, params: dict) -> tuple[np.ndarray, np.ndarray]:
        """Scores and slots (``-1`` where faiss found fewer than ``k``) of each query.

        ``params`` (faiss search-time parameters by name) hold for this search only.
        """
        old = {}
        for name in params:
            value = _get_param(self.faiss, self.index, name)
            if value is None:
                raise ConfigError(
                    f"unknown search parameter {name!r} for faiss index "
                    f"{self.describe()!r} (e.g. 'nprobe' for IVF, 'efSearch' for HNSW)"
                )
            old[name] = value
        space = self._param_space()
        try:
            for name, value in params.items():
                try:
                    space.set_index_parameter(self.index, name, float(value))
                except (RuntimeError, TypeError, ValueError) as e:
                    raise ConfigError(
                        f"cannot set search parameter {name}={value!r}: {_message(e)}"
                    ) from None
            try:
                dist, labels = self._search_alive(Q, k)
            except RuntimeError as e:
                raise BackendError(f"faiss search failed: {_message(e)}") from None
        finally:
            for name, value in old.items():
                space.set_index_parameter(self.index, name, float(value))
        return dist, labels

    def describe(self) -> str:
        """The type names of the index's parts, e.g. ``IndexIDMap2/IndexIVFFlat/...``."""
        return "/".join(type(ix).__name__ for ix in _parts(self.faiss, self.index))

    # ------------------------------------------------------------------ files
    def serialize(self) -> np.ndarray:
        """The index as faiss's own bytes (uint8 array; a GPU index is copied back)."""
        return self.faiss.serialize_index(self.cpu_index())

    @classmethod
    def deserialize(
        cls, data: np.ndarray, dim: int, metric: str, factory: str, gpu: bool | None, tomb: bool
    ) -> tuple[FaissIndex, np.ndarray]:
        """The index from :meth:`serialize`'s bytes, and its labels (the slots in it)."""
        faiss = import_faiss()
        try:
            index = faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))
        except RuntimeError as e:
            raise ValueError(f"faiss cannot read the stored index: {_message(e)}") from None
        # deserialize_index returns the downcast, owning object (a downcast_index() view of
        # it would not keep it alive).
        if isinstance(index, faiss.IndexIDMap2):
            labels = faiss.vector_to_array(index.id_map).astype(np.int64)
            if len(labels) != index.ntotal:
                raise ValueError("the stored faiss index's id map does not match its size")
        elif _native_ids(faiss, index):
            labels = None
        else:
            raise ValueError(f"the stored faiss index is a {type(index).__name__}")
        want = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
        if index.d != dim or index.metric_type != want:
            raise ValueError("the stored faiss index's dimension or metric differ from the config")
        return cls(dim, metric, factory, gpu, index=index, tombstones=tomb), labels
