"""Exact k-nearest-neighbour search: :func:`knn`."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._base import params as _params
from ._inputs import (
    _as_device_input,
    _as_matrix,
    _check_blocks,
    _check_device,
    _check_metric,
    _check_positive_int,
    _is_tensor,
    _spec,
    _to_output,
)

__all__ = ["knn"]


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
