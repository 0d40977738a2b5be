"""The sparse data of benches/svm.py: a TF-IDF-like document-term matrix (no real text
corpus is at hand offline; say so beside its numbers).

Each document draws ``words`` word occurrences: a share ``topic_share`` from its class's
own vocabulary of ``topic`` words (Zipf-distributed within it), the rest from the whole
vocabulary (Zipf, exponent 0.8). Counts become ``1 + log(count)`` times the smoothed
IDF, and rows are L2-normalised, as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``
makes them. Seeded: the same arguments give the same matrix.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def tfidf_like(
    n: int,
    n_features: int = 50_000,
    words: int = 330,
    n_classes: int = 10,
    topic: int = 2000,
    topic_share: float = 0.5,
    seed: int = 0,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(X, y)``: ``n`` documents as an ``(n, n_features)`` CSR matrix and their classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    zipf_topic = np.cumsum(1.0 / np.arange(1, topic + 1))
    zipf_all = np.cumsum(1.0 / np.arange(1, n_features + 1) ** 0.8)
    rows = np.repeat(np.arange(n), words)
    from_topic = rng.random(n * words) < topic_share
    t = np.searchsorted(zipf_topic, rng.random(n * words) * zipf_topic[-1])
    g = np.searchsorted(zipf_all, rng.random(n * words) * zipf_all[-1])
    cols = np.where(from_topic, (t + topic * y[rows]) % n_features, g)
    counts = sp.csr_matrix((np.ones(n * words), (rows, cols)), shape=(n, n_features))
    counts.sum_duplicates()
    counts.data = 1.0 + np.log(counts.data)
    df = np.bincount(counts.indices, minlength=n_features)
    X = counts @ sp.diags(np.log((1 + n) / (1 + df)) + 1.0)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X), y
