"""Exact nearest-neighbour search and retrieval metrics.

:func:`knn` finds the exact ``k`` nearest gallery items of every query by a blocked
matrix product fused with a streaming top-k selection (Rust, multi-threaded; the full
query x gallery score matrix is never formed). :func:`evaluate` computes the retrieval
metrics of the paper and of *A Metric Learning Reality Check*: recall@k (DeepFashion
In-shop's top-k accuracy), precision@1, MAP@R and R-precision. :class:`Index` keeps
vectors with the caller's ids (int64 or strings) for repeated search: exact (this
engine) or faiss-backed (IVF, PQ, HNSW, ... through ``faiss.index_factory``), with
``remove``, ``save`` / ``load`` and ``recall`` against exact search.

Metrics: ``"cosine"`` (cosine similarity, largest first), ``"ip"`` (inner product,
largest first) and ``"l2"`` (squared Euclidean distance, smallest first). Ties are broken
by the lower gallery index, so results do not depend on threads or block sizes.

Examples
--------
>>> import numpy as np
>>> import gridmatch as gm
>>> rng = np.random.default_rng(0)
>>> gallery = rng.normal(size=(1000, 64)).astype(np.float32)
>>> scores, indices = gm.retrieval.knn(gallery[:5], gallery, k=3)
>>> indices[:, 0].tolist()
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import json
import operator
import warnings
from typing import Any

import numpy as np

from . import _core, _params
from ._index import Index
from ._validate import host_array
from .exceptions import ConfigError, DeviceError, ShapeError

__all__ = ["METRICS", "Index", "evaluate", "knn"]

#: Names accepted by ``metric=``.
METRICS: tuple[str, ...] = tuple(_core.METRIC_NAMES)


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _check_metric(metric: Any) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    return metric


def _check_device(device: Any) -> str:
    name = str(device)
    if name == "cpu" or name == "cuda" or name.startswith("cuda:"):
        return name
    raise ConfigError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be >= 1, got {value}")
    return value


def _check_blocks(block_size: Any) -> tuple[int, int] | None:
    if block_size is None:
        return None
    if isinstance(block_size, (tuple, list)):
        if len(block_size) != 2:
            raise ConfigError(
                f"block_size must be an int or a (queries, gallery) pair, got {block_size!r}"
            )
        q, g = block_size
        return _check_positive_int(q, "block_size"), _check_positive_int(g, "block_size")
    b = _check_positive_int(block_size, "block_size")
    return b, b


def _as_matrix(x: Any, name: str) -> np.ndarray:
    """A C-contiguous float32 (rows, dim) numpy array of ``x``."""
    x = host_array(x, name)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name} must be a 2-D array of numbers: {e}") from None
    if a.dtype.kind not in "fiub":
        raise ShapeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ShapeError(f"{name} must be 2-D (rows, dim), got {a.ndim}-D with shape {a.shape}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, reported by Rust
        return np.ascontiguousarray(a, dtype=np.float32)


def _as_device_input(x: Any, name: str) -> Any:
    """A 2-D float tensor or array for the torch backend (moved to the device in Rust)."""
    if _is_tensor(x):
        if x.device.type == "meta":
            raise DeviceError(f"{name} is a torch tensor on the 'meta' device, which holds no data")
        if x.ndim != 2:
            raise ShapeError(f"{name} must be 2-D (rows, dim), got shape {tuple(x.shape)}")
        if x.is_complex():
            raise ShapeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        return x.detach().float().contiguous()
    return _as_matrix(x, name)


def _as_ids(ids: Any, name: str, rows: int) -> np.ndarray:
    ids = host_array(ids, name)
    a = np.asarray(ids)
    if a.size == 0:
        a = a.astype(np.int64)
    if a.ndim != 1:
        raise ShapeError(f"{name} must be 1-D (one id per row), got shape {a.shape}")
    if a.dtype.kind == "O":
        # Python objects (e.g. an ImageCatalogue's string SKUs): all str or all int.
        if all(isinstance(v, str) for v in a):
            a = a.astype(str)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in a):
            a = np.array(a.tolist())
    if a.dtype.kind not in "iuUS" and not (a.dtype.kind == "b"):
        raise ShapeError(
            f"{name} must hold integer ids or string ids (all of one kind), got dtype {a.dtype}"
        )
    if len(a) != rows:
        raise ShapeError(f"{name} has {len(a)} ids but its embeddings have {rows} rows")
    return a


def _to_output(scores: Any, indices: Any, like: Any) -> tuple[Any, Any]:
    """Results as torch tensors on the device of ``like`` when it is a tensor, else numpy."""
    import torch

    if like is not None:
        s = scores if _is_tensor(scores) else torch.from_numpy(scores)
        i = indices if _is_tensor(indices) else torch.from_numpy(indices)
        return s.to(like.device), i.to(like.device)
    if _is_tensor(scores):
        return scores.cpu().numpy(), indices.cpu().numpy()
    return scores, indices


def knn(
    queries: Any,
    gallery: Any,
    k: int,
    metric: str = "cosine",
    device: str = "cpu",
    block_size: int | tuple[int, int] | None = None,
    exclude_self: bool = False,
) -> tuple[Any, Any]:
    """Find the exact ``k`` nearest gallery items of every query.

    Parameters
    ----------
    queries : array-like or torch.Tensor of shape (n_queries, dim)
        Query embeddings; float32 is used (float64 and integer inputs are converted).
    gallery : array-like or torch.Tensor of shape (n_gallery, dim)
        Gallery embeddings.
    k : int
        Number of neighbours, ``1 <= k <= n_gallery`` (``n_gallery - 1`` with
        ``exclude_self``).
    metric : {"cosine", "ip", "l2"}, default="cosine"
        Cosine similarity or inner product (largest first) or squared Euclidean
        distance (smallest first). A zero vector has cosine similarity 0.
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        ``"cpu"`` runs the Rust engine on gridmatch's threads (see
        :func:`gridmatch.set_num_threads`); ``"cuda"`` runs the same blocked search with
        libtorch on the GPU.
    block_size : int or (int, int), optional
        Tile shape ``(query rows, gallery rows)`` scored at once per thread; an int sets
        both. Default ``(256, 2048)`` on the CPU, ``(1024, 16384)`` on CUDA. The score
        tiles take ``threads * q * g * 4`` bytes. On the CPU the gallery side is rounded
        up to the kernel's panel width (48 rows with AVX-512, 16 with AVX2).
    exclude_self : bool, default=False
        Leave-one-out: when queries and gallery are the same set, query ``i`` never
        returns gallery item ``i``.

    Returns
    -------
    scores : numpy.ndarray or torch.Tensor of shape (n_queries, k), float32
        Similarities (descending) or squared distances (ascending).
    indices : numpy.ndarray or torch.Tensor of shape (n_queries, k), int64
        Gallery rows, best first; ties go to the lower index. Torch tensors (on the
        queries' device) when ``queries`` is a tensor, numpy arrays otherwise.

    Raises
    ------
    gridmatch.ShapeError
        Wrong number of dimensions, dimension mismatch, empty input, NaN or inf values,
        ``k`` larger than the gallery (a ``ValueError``).
    gridmatch.ConfigError
        Unknown ``metric`` or ``device``, bad ``k``, ``block_size`` or ``exclude_self``
        (a ``ValueError``).
    gridmatch.DeviceError
        ``device="cuda"`` without a usable GPU.

    Examples
    --------
    >>> import numpy as np
    >>> import gridmatch as gm
    >>> g = np.eye(3, dtype=np.float32)
    >>> s, i = gm.retrieval.knn(g, g, k=1, metric="l2")
    >>> i.ravel().tolist(), s.ravel().tolist()
    ([0, 1, 2], [0.0, 0.0, 0.0])
    """
    metric = _check_metric(metric)
    device = _check_device(device)
    k = _check_positive_int(k, "k")
    blocks = _check_blocks(block_size)
    exclude_self = _params.flag(exclude_self, "exclude_self")
    like = queries if _is_tensor(queries) else None
    if device == "cpu":
        q = _as_matrix(queries, "queries")
        g = _as_matrix(gallery, "gallery")
    else:
        q = _as_device_input(queries, "queries")
        g = _as_device_input(gallery, "gallery")
    scores, indices = _core.knn(q, g, k, _spec(metric, exclude_self, device, blocks))
    return _to_output(scores, indices, like)


def _spec(metric: str, exclude_self: Any, device: str, blocks: Any) -> str:
    """The settings as the one JSON spec the Rust side reads (``RetrievalSpec``)."""
    return json.dumps(
        {
            "metric": metric,
            "exclude_self": bool(exclude_self),
            "device": device,
            "block_size": None if blocks is None else [int(b) for b in blocks],
        }
    )


def evaluate(
    E_q: Any,
    ids_q: Any,
    E_g: Any,
    ids_g: Any,
    ks: Any = (1, 5, 10, 20, 50),
    metric: str = "cosine",
    exclude_self: bool = False,
    device: str = "cpu",
    block_size: int | tuple[int, int] | None = None,
) -> dict[str, float]:
    """Evaluate retrieval: recall@k, precision@1, MAP@R and R-precision.

    For a query with id ``y`` the relevant gallery items are those with id ``y`` (other
    than the query itself with ``exclude_self``); ``R`` is their number. Queries with
    ``R = 0`` cannot be scored: they are counted in ``n_queries_without_match``, left
    out of every average (as DeepFashion In-shop and pytorch-metric-learning do), and a
    warning is issued.

    Parameters
    ----------
    E_q : array-like or torch.Tensor of shape (n_queries, dim)
        Query embeddings.
    ids_q : array-like of shape (n_queries,)
        Query ids (any integers, or strings): product / instance / class ids.
    E_g : array-like or torch.Tensor of shape (n_gallery, dim)
        Gallery embeddings.
    ids_g : array-like of shape (n_gallery,)
        Gallery ids.
    ks : int or sequence of int, default=(1, 5, 10, 20, 50)
        The k of recall@k. A k beyond the gallery size counts the whole gallery.
    metric : {"cosine", "ip", "l2"}, default="cosine"
        Ranking metric (see :func:`knn`).
    exclude_self : bool, default=False
        Leave-one-out when queries and gallery are the same set: query ``i`` never
        retrieves gallery item ``i`` (requires ``n_queries == n_gallery``).
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where the search runs.
    block_size : int or (int, int), optional
        Tile shape of the search (see :func:`knn`).

    Returns
    -------
    dict
        ``recall@k`` for each k (fraction of queries with a relevant item among their
        top k: In-shop's top-k accuracy), ``precision@1``, ``map@r`` (MAP@R),
        ``r_precision``, and the counts ``n_queries`` and ``n_queries_without_match``.
        The averages are NaN when no query has a match.

    Raises
    ------
    gridmatch.ShapeError
        Wrong shapes, dimension mismatch, ids not matching the rows, empty input,
        NaN or inf values (a ``ValueError``).
    gridmatch.ConfigError
        Unknown ``metric`` or ``device``, empty or non-positive ``ks``, bad
        ``block_size`` or ``exclude_self`` (a ``ValueError``).

    Examples
    --------
    >>> import numpy as np
    >>> import gridmatch as gm
    >>> E = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    >>> ids = [0, 0, 1, 1]
    >>> gm.retrieval.evaluate(E, ids, E, ids, ks=(1,), exclude_self=True)["recall@1"]
    1.0

    References
    ----------
    K. Musgrave, S. Belongie, S.-N. Lim. *A Metric Learning Reality Check*. ECCV 2020.
    """
    metric = _check_metric(metric)
    device = _check_device(device)
    blocks = _check_blocks(block_size)
    exclude_self = _params.flag(exclude_self, "exclude_self")
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise ConfigError(f"ks must be an int or a sequence of positive ints, got {ks!r}")
    ks = [_check_positive_int(k, "each k in ks") for k in ks]
    if not ks:
        raise ConfigError("ks is empty: give at least one k for recall@k")
    if device == "cpu":
        q = _as_matrix(E_q, "E_q")
        g = _as_matrix(E_g, "E_g")
    else:
        q = _as_device_input(E_q, "E_q")
        g = _as_device_input(E_g, "E_g")
    iq = _as_ids(ids_q, "ids_q", q.shape[0])
    ig = _as_ids(ids_g, "ids_g", g.shape[0])
    # Ids of any integer range (or strings) become dense int64 codes. Mixed integer
    # dtypes without a common integer type (uint64 and int64) compare as Python ints.
    common = np.result_type(iq, ig)
    if common.kind not in "iuUSb":
        iq, ig = iq.astype(object), ig.astype(object)
    _, codes = np.unique(np.concatenate([iq, ig]), return_inverse=True)
    codes = codes.astype(np.int64).ravel()
    pairs = _core.evaluate(
        q,
        np.ascontiguousarray(codes[: len(iq)]),
        g,
        np.ascontiguousarray(codes[len(iq) :]),
        ks,
        _spec(metric, exclude_self, device, blocks),
    )
    out: dict[str, float] = {}
    for name, value in pairs:
        out[name] = int(value) if name.startswith("n_") else float(value)
    missing = out["n_queries_without_match"]
    if missing:
        warnings.warn(
            f"{missing} of {out['n_queries']} queries have no matching id in the gallery"
            + (" (other than themselves)" if exclude_self else "")
            + "; they are left out of the metrics",
            UserWarning,
            stacklevel=2,
        )
    return out
