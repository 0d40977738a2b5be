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

from ._inputs import METRICS
from .evaluate import evaluate
from .index import Index
from .knn import knn

__all__ = ["METRICS", "Index", "evaluate", "knn"]
