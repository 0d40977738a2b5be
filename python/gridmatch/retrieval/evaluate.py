"""Retrieval metrics: :func:`evaluate` (recall@k, precision@1, MAP@R, R-precision)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import _core
from .._base import params as _params
from .._base.exceptions import ConfigError
from ._inputs import (
    _as_device_input,
    _as_ids,
    _as_matrix,
    _check_blocks,
    _check_device,
    _check_metric,
    _check_positive_int,
    _spec,
)

__all__ = ["evaluate"]


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
