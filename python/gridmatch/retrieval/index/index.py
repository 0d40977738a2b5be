"""``gm.retrieval.Index``: a vector index with the caller's ids, exact or faiss-backed."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._base import params as _params
from ..._base.exceptions import ConfigError, NotFittedError, ShapeError
from ..._base.validate import host_array
from .ids import IdBook

if TYPE_CHECKING:
    from .faiss_backend import FaissIndex

__all__ = ["Index"]

METRICS = ("ip", "l2")
BACKENDS = ("exact", "faiss")
#: Default number of rows a faiss index is trained on (faiss's k-means itself uses at
#: most 256 points per centroid: 262,144 for 1024 lists).
TRAIN_SIZE = 262_144


def _vectors(x: Any, name: str, dim: int, allow_empty: bool) -> np.ndarray:
    """``x`` as a C-contiguous float32 (rows, dim) array of finite values."""
    x = host_array(x, name)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name} must be a 2-D array of numbers: {e}") from None
    if a.dtype.kind not in "fiub":
        raise ShapeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 1 and a.size == dim:
        a = a.reshape(1, dim)
    if a.ndim != 2:
        raise ShapeError(f"{name} must be 2-D (rows, dim), got {a.ndim}-D with shape {a.shape}")
    if a.shape[1] != dim:
        raise ShapeError(
            f"dimension mismatch: {name} has {a.shape[1]} columns but the index has dim {dim}"
        )
    if a.shape[0] == 0 and not allow_empty:
        raise ShapeError(f"{name} is empty (0 rows)")
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.ascontiguousarray(a, dtype=np.float32)
        # min and max are finite exactly when every value is (NaN propagates through
        # both), and unlike isfinite(a) they allocate no temporary the size of ``a``.
        finite = not a.size or bool(np.isfinite(a.min()) and np.isfinite(a.max()))
    if not finite:
        bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
        raise ShapeError(
            f"{name} holds NaN or inf values (or values beyond float32) in {len(bad)} rows, "
            f"first row {int(bad[0])}"
        )
    return a


class Index:
    """A nearest-neighbour index over vectors with the caller's ids: exact or faiss.

    ``backend="exact"`` searches every vector with gridmatch's Rust engine (the
    blocked GEMM + top-k of :func:`gridmatch.retrieval.knn`): exact results, no
    training. ``backend="faiss"`` builds ``faiss.index_factory(dim, factory, metric)``
    (``"IVF4096,Flat"``, ``"IVF1024,PQ32"``, ``"HNSW32"``, ...): approximate and faster
    at catalogue scale; an index that needs training is trained, on the first
    :meth:`add`, on a seeded sample of at most ``train_size`` of its vectors (or call
    :meth:`train` first with a sample of your choice). When faiss sees a GPU (faiss-gpu)
    the index runs on GPU 0, if its type has a GPU version. faiss is an optional
    dependency (``pip install 'gridmatch[faiss]'``), imported only by the faiss backend.

    Ids are the caller's: int64 or strings (one kind per index), unique among the
    vectors in the index. :meth:`remove` works on both backends (index types that cannot
    remove vectors, such as HNSW, filter the removed ones out at search time).

    Parameters
    ----------
    dim : int
        Dimension of the vectors.
    metric : {"ip", "l2"}, default="ip"
        Inner product (scores descending; on L2-normalised vectors this is cosine
        similarity) or squared Euclidean distance (scores ascending, as faiss returns
        them).
    backend : {"exact", "faiss"}, default="exact"
        The search engine.
    factory : str, optional
        faiss ``index_factory`` string (``backend="faiss"`` only; default ``"Flat"``,
        exact search in faiss). Leave out any ``IDMap`` prefix: the index maps ids itself.
    train_size : int or None, default=262144
        The most vectors a faiss index is trained on when :meth:`add` trains it (a
        seeded sample without replacement); ``None`` trains on all of them.
    seed : int, default=0
        Seed of the training sample (a non-negative integer).
    gpu : bool or None, default=None
        faiss backend: ``None`` uses GPU 0 when faiss reports one (and the index type
        has a GPU version), ``True`` requires it, ``False`` stays on the CPU.
    keep_vectors : bool, default=True
        faiss backend: keep the vectors, which :meth:`recall` needs (the exact backend
        always keeps them: they are its index). Index types that store the vectors
        unchanged (``Flat``, ``IVF...,Flat``, ``HNSW...`` on the CPU) keep them in faiss
        and read them back when needed; the others keep a float32 copy.

    Attributes
    ----------
    ids : ndarray
        The ids of the vectors in the index, in the order they were added.
    is_trained : bool
        Whether the index can take vectors (always ``True`` for the exact backend).
    faiss_index : faiss.Index or None
        The underlying ``faiss.IndexIDMap2`` (its labels are internal row numbers), or
        ``None`` for the exact backend.

    Raises
    ------
    gridmatch.ConfigError
        Unknown ``metric`` or ``backend``, a ``factory`` faiss cannot parse (named in
        the message), a ``factory`` with the exact backend, bad ``dim``,
        ``train_size``, ``seed``, ``gpu`` or ``keep_vectors`` (a ``ValueError``).
    ImportError
        ``backend="faiss"`` without faiss installed.

    See Also
    --------
    gridmatch.retrieval.knn : Exact search without an index object.

    Notes
    -----
    Search-time faiss parameters are given by name to :meth:`search` (``nprobe=16``,
    ``efSearch=64``, ``quantizer_efSearch=...``) and hold for that call only. faiss
    runs on its OpenMP threads (``faiss.omp_set_num_threads``), the exact backend on
    gridmatch's (:func:`gridmatch.set_num_threads`).

    Examples
    --------
    >>> import numpy as np
    >>> import gridmatch as gm
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(1000, 32)).astype(np.float32)
    >>> index = gm.retrieval.Index(32, metric="l2")
    >>> index.add(E, ids=[f"item{i}" for i in range(1000)])
    >>> scores, ids = index.search(E[:2], k=3)
    >>> ids[:, 0].tolist()
    ['item0', 'item1']
    >>> index.remove(["item0"])
    1
    >>> len(index)
    999
    """

    def __init__(
        self,
        dim: int,
        metric: str = "ip",
        backend: str = "exact",
        factory: str | None = None,
        *,
        train_size: int | None = TRAIN_SIZE,
        seed: int = 0,
        gpu: bool | None = None,
        keep_vectors: bool = True,
    ) -> None:
        self.dim = _params.integer(dim, "dim", 1)
        if metric not in METRICS:
            raise ConfigError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if backend == "exact" and factory is not None:
            raise ConfigError(
                "factory= is a faiss index_factory string: use it with backend='faiss'"
            )
        if backend == "exact" and not keep_vectors:
            raise ConfigError("the exact backend's index is its vectors: keep_vectors must be True")
        if factory is not None and not isinstance(factory, str):
            raise ConfigError(f"factory must be a faiss index_factory string, got {factory!r}")
        if gpu not in (None, True, False):
            raise ConfigError(f"gpu must be None, True or False, got {gpu!r}")
        self.metric = metric
        self.backend = backend
        self.factory = (factory or "Flat") if backend == "faiss" else None
        self.train_size = _params.integer(train_size, "train_size", 1, optional=True)
        self.seed = _params.integer(seed, "seed", 0)
        self.keep_vectors = _params.flag(keep_vectors, "keep_vectors")
        self._book = IdBook()
        self._vectors: np.ndarray | None = np.empty((0, self.dim), dtype=np.float32)
        self._faiss: FaissIndex | None = None
        if backend == "faiss":
            from .faiss_backend import FaissIndex

            self._faiss = FaissIndex(self.dim, metric, self.factory or "Flat", gpu)
            if not self.keep_vectors or self._faiss.stores_vectors:
                self._vectors = None  # none, or faiss holds them (see _kept_vectors)

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return len(self._book)

    def __repr__(self) -> str:
        fac = f", factory={self.factory!r}" if self.factory else ""
        return (
            f"Index(dim={self.dim}, metric={self.metric!r}, backend={self.backend!r}{fac}, "
            f"len={len(self)})"
        )

    @property
    def ids(self) -> np.ndarray:
        """The ids in the index, in the order they were added (a copy)."""
        return self._book.live_ids()

    @property
    def is_trained(self) -> bool:
        """Whether the index can take vectors without training first."""
        return True if self._faiss is None else self._faiss.is_trained

    @property
    def faiss_index(self) -> Any:
        """The underlying faiss index, or ``None`` for the exact backend.

        An ``IndexIDMap2``, or an IVF index holding the slots as its own ids.
        """
        return None if self._faiss is None else self._faiss.index

    def _kept_vectors(self) -> np.ndarray | None:
        """The kept vectors by slot (``None`` with ``keep_vectors=False``).

        The copy the index keeps, or, when the faiss index stores the vectors unchanged,
        an array read back from it (rows of removed slots may be zeros).
        """
        if self._vectors is not None:
            return self._vectors
        if self.keep_vectors and self._faiss is not None and self._faiss.stores_vectors:
            return self._faiss.vectors(self._book.n_slots)
        return None

    # --------------------------------------------------------------- building
    def train(self, E: Any) -> Index:
        """Train a faiss index on ``E`` (a seeded sample of ``train_size`` rows of it).

        Needed only before the first :meth:`add` and only by faiss index types that
        learn from data (IVF, PQ, ...); :meth:`add` calls it on its own vectors
        otherwise. A no-op for the exact backend.

        Parameters
        ----------
        E : array-like or torch.Tensor of shape (n, dim)
            Training vectors; all of them when ``n <= train_size``.

        Returns
        -------
        Index
            ``self``.

        Raises
        ------
        gridmatch.ShapeError
            Dimension mismatch, NaN or inf values, too few vectors for the index type
            (faiss's message, e.g. fewer points than IVF lists), or an index that
            already holds vectors.
        """
        X = _vectors(E, "E", self.dim, allow_empty=False)
        if self._faiss is None:
            return self
        if self._faiss.ntotal:
            raise ShapeError("the index already holds vectors: train it before adding any")
        self._train(X)
        return self

    def _train(self, X: np.ndarray) -> None:
        if self.train_size is not None and len(X) > self.train_size:
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(len(X), size=self.train_size, replace=False))
            X = X[rows]
        assert self._faiss is not None  # the exact backend has nothing to train
        self._faiss.train(X)

    def add(self, E: Any, ids: Any = None) -> None:
        """Add vectors with their ids.

        Parameters
        ----------
        E : array-like or torch.Tensor of shape (n, dim)
            The vectors (float32 is used).
        ids : array-like of shape (n,), optional
            One id per row: integers (int64) or strings, unique and not already in the
            index. Default: integers counting up from one past the largest integer id
            ever added (from 0 for a new index).

        Raises
        ------
        gridmatch.ShapeError
            Dimension mismatch, NaN or inf values, ids not one per row, an id given
            twice or already in the index, integer ids in an index of strings (or the
            reverse), or too few vectors to train a faiss index.
        """
        X = _vectors(E, "E", self.dim, allow_empty=True)
        new = self._book.next_auto(len(X)) if ids is None else self._book.check_new(ids, len(X))
        if not len(X):
            return
        if self._faiss is not None:
            if not self._faiss.is_trained:
                self._train(X)
            slots = np.arange(self._book.n_slots, self._book.n_slots + len(X), dtype=np.int64)
            self._faiss.add(X, slots)
        self._book.append(new)
        if self._vectors is not None:
            self._vectors = np.concatenate([self._vectors, X]) if len(self._vectors) else X.copy()

    def remove(self, ids: Any) -> int:
        """Remove the vectors with these ids.

        Parameters
        ----------
        ids : array-like
            Ids in the index (each once).

        Returns
        -------
        int
            The number of vectors removed.

        Raises
        ------
        gridmatch.ShapeError
            An id not in the index or given twice (then nothing is removed).
        """
        slots = self._book.slots_of(ids)
        if not len(slots):
            return 0
        if self._faiss is not None:
            dead = np.flatnonzero(~self._book.alive)
            self._faiss.remove(slots, np.union1d(dead, slots))
            self._book.kill(slots)
        else:
            self._book.kill(slots)
            keep = self._book.compact()
            assert self._vectors is not None  # the exact backend keeps its vectors
            self._vectors = self._vectors[keep]
        return len(slots)

    # ---------------------------------------------------------------- search
    def _check_query(self, Q: Any, k: Any) -> tuple[np.ndarray, int]:
        k = _params.integer(k, "k", 1)
        X = _vectors(Q, "Q", self.dim, allow_empty=False)
        if not len(self):
            raise ShapeError("the index is empty: add vectors before searching")
        if k > len(self):
            raise ShapeError(f"k={k} is larger than the index ({len(self)} vectors)")
        return X, k

    def _search_slots(self, X: np.ndarray, k: int, params: dict) -> tuple[np.ndarray, np.ndarray]:
        if self._faiss is None:
            if params:
                raise ConfigError(
                    f"the exact backend has no search parameters (got {', '.join(params)})"
                )
            from ..knn import knn

            return knn(X, self._vectors, k, metric=self.metric)
        D, slots = self._faiss.search(X, k, params)
        missing = slots < 0
        if missing.any():
            D = D.copy()
            D[missing] = -np.inf if self.metric == "ip" else np.inf
        return D, slots

    def search(self, Q: Any, k: int, **params: Any) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best vectors of the index for every query.

        Parameters
        ----------
        Q : array-like or torch.Tensor of shape (n_queries, dim)
            Query vectors (a single vector of shape ``(dim,)`` is one query).
        k : int
            Number of results per query, ``1 <= k <= len(self)``.
        **params
            faiss search-time parameters for this call, by name: ``nprobe`` (IVF),
            ``efSearch`` (HNSW), ``quantizer_efSearch``, ``k_factor``, ``max_codes``, ...
            The exact backend takes none.

        Returns
        -------
        scores : ndarray of float32, shape (n_queries, k)
            Inner products (descending) or squared L2 distances (ascending).
        ids : ndarray of shape (n_queries, k)
            The ids of the results, best first (int64 or str, as added). An approximate
            index can find fewer than ``k`` results for a query (an IVF index probing
            lists with fewer vectors than ``k``): those places hold id ``-1`` (integer
            ids) or ``""`` (string ids) and score ``-inf`` (ip) or ``inf`` (l2).

        Raises
        ------
        gridmatch.ShapeError
            Dimension mismatch, NaN or inf values, an empty index, ``k > len(self)``.
        gridmatch.ConfigError
            ``k < 1``, an unknown search parameter, or parameters for the exact backend
            (a ``ValueError``).
        """
        X, k = self._check_query(Q, k)
        D, slots = self._search_slots(X, k, params)
        return np.asarray(D, dtype=np.float32), self._ids_of(slots)

    def _ids_of(self, slots: np.ndarray) -> np.ndarray:
        ids = self._book.ids
        missing = slots < 0
        out = ids[np.where(missing, 0, slots)]
        if missing.any():
            out[missing] = "" if ids.dtype.kind == "U" else -1
        return out

    def recall(self, Q: Any, k: int = 10, **params: Any) -> float:
        """Recall@k of this index's search against exact search of the same vectors.

        The exact results come from gridmatch's Rust engine over the vectors in the
        index; recall@k is the fraction of the exact top ``k`` ids that :meth:`search`
        (with ``params``) returns among its ``k``, averaged over the queries.

        Parameters
        ----------
        Q : array-like or torch.Tensor of shape (n_queries, dim)
            Query vectors.
        k : int, default=10
            Number of results compared per query.
        **params
            faiss search-time parameters, as for :meth:`search`.

        Returns
        -------
        float
            Recall@k in [0, 1] (1.0 for the exact backend).

        Raises
        ------
        gridmatch.NotFittedError
            A faiss index created with ``keep_vectors=False`` (no vectors to search
            exactly).
        gridmatch.ShapeError, gridmatch.ConfigError
            As for :meth:`search`.
        """
        V = self._kept_vectors()
        if V is None:
            raise NotFittedError(
                "recall needs the index's vectors: create the Index with keep_vectors=True"
            )
        X, k = self._check_query(Q, k)
        _, got = self._search_slots(X, k, params)
        from ..knn import knn

        live = np.flatnonzero(self._book.alive)
        G = V if len(live) == len(V) else V[live]
        truth = live[knn(X, G, k, metric=self.metric)[1]]
        hits = 0
        step = max(1, 2**22 // (k * k))
        for s in range(0, len(X), step):
            a, b = got[s : s + step], truth[s : s + step]
            hits += int((a[:, :, None] == b[:, None, :]).any(axis=2).sum())
        return hits / (len(X) * k)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> str:
        """Save the index to a file (safetensors arrays + JSON config).

        The file holds the ids, the vectors (when kept) and, for the faiss backend,
        the faiss index's own bytes (``faiss.serialize_index``) as a uint8 array, with
        a JSON config and a format version, protected by a SHA-256 checksum of
        everything. Nothing is pickled and nothing is executed on loading. The write is
        atomic (a temporary file renamed over ``path``).

        Parameters
        ----------
        path : path-like
            Destination file (conventionally ``*.safetensors``).

        Returns
        -------
        str
            The path written.

        Raises
        ------
        gridmatch.DataError
            If the file cannot be written.
        """
        from ... import _core
        from .files import encode

        path = os.fspath(path)
        arrays, meta = encode(self)
        _core.store_save(path, arrays, meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, gpu: bool | None = None) -> Index:
        """Load an index written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The file.
        gpu : bool or None, default=None
            As for the constructor (faiss backend).

        Returns
        -------
        Index
            An index that searches exactly as the saved one.

        Raises
        ------
        gridmatch.DataError
            If the file is missing, truncated, modified (checksum mismatch), malformed,
            or of another format version.
        gridmatch.ConfigError
            A bad ``gpu``.
        ImportError
            A faiss index without faiss installed.
        """
        from ... import _core
        from .files import decode

        if gpu not in (None, True, False):
            raise ConfigError(f"gpu must be None, True or False, got {gpu!r}")
        path = os.fspath(path)
        arrays, meta = _core.store_load(path)
        return decode(cls, arrays, meta, path, gpu)

    def __getstate__(self) -> dict:
        # Pickling (copy, multiprocessing) goes through the same checksummed bytes as save().
        from ... import _core
        from .files import encode

        arrays, meta = encode(self)
        return {"_gridmatch_index": bytes(_core.store_dumps(arrays, meta))}

    def __setstate__(self, state: dict) -> None:
        from ... import _core
        from .files import decode

        arrays, meta = _core.store_loads(state["_gridmatch_index"])
        self.__dict__.update(decode(type(self), arrays, meta, "pickled Index", None).__dict__)
