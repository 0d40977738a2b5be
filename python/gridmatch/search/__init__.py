"""RL search of SVM kernels and embedding transforms (the paper's controller).

A recurrent controller (GRU, hidden 128, 64-d action embeddings, one softmax head per
decision) composes candidates from a :class:`Space` and is trained with REINFORCE
(EMA reward baseline 0.95, entropy bonus 0.0025, Adam lr 2e-4 decayed ×0.95 every 2500
updates). ``controller="random"`` samples uniformly with the same budget: the baseline
every result should be compared with. Candidates are evaluated in parallel in Rust,
cached by canonical form; invalid ones (NaN/inf values, solver failure, timeout) get
reward 0 and are counted.

Examples
--------
>>> import gridmatch as gm
>>> search = gm.search.KernelSearch(budget=100, seed=0)  # doctest: +SKIP
>>> search.fit(X_train, y_train, X_val, y_val)  # doctest: +SKIP
>>> search.best_expr, search.best_score  # doctest: +SKIP

Files: :mod:`~gridmatch.search.space` (:class:`Space`), :mod:`~gridmatch.search.result`
(:class:`SearchResult`), :mod:`~gridmatch.search.kernel` (:class:`KernelSearch`),
:mod:`~gridmatch.search.transform` (:class:`TransformSearch`); ``_base`` holds what the
two searches share and ``_checks`` their input checks.
"""

from __future__ import annotations

from ._base import _BaseSearch  # noqa: F401 (reachable as before: tests patch it)
from .kernel import KernelSearch
from .result import SearchResult
from .space import MAX_UNITS, Space  # noqa: F401 (MAX_UNITS: as before)
from .transform import TransformSearch

__all__ = ["KernelSearch", "SearchResult", "Space", "TransformSearch"]
