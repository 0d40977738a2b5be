"""Transform search: embedding transforms composed by the controller, rewarded by retrieval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core
from .._base.exceptions import ShapeError
from ._base import _BaseSearch
from ._checks import _float_matrix, _labels, _to_numpy
from .space import Space


class TransformSearch(_BaseSearch):
    """Search a transform of embeddings that raises retrieval recall@1.

    The reward of a transform ``f`` is recall@1 (cosine similarity) of ``f(E_query)``
    against ``f(E_gallery)``.

    Parameters
    ----------
    space : Space or {"activation"}, default="activation"
        The transform space.
    controller : {"rl", "random"}, default="rl"
        The REINFORCE-trained GRU or uniform random search.
    budget : int, default=300
        Candidates to sample in total (repeats included).
    batch_size : int, default=10
        Candidates per controller update.
    seed : int, default=0
        Seed of the controller.
    timeout : float, optional
        Seconds allowed per candidate.
    lr, entropy_weight, baseline_decay : float
        Controller settings (authors' defaults 2e-4, 0.0025, 0.95).
    risk_seeking : float, optional
        Train the controller with the risk-seeking policy gradient of Petersen et al.
        (ICLR 2021): each update learns only from the best ``risk_seeking`` fraction of
        its batch (rewards at or above the batch's ``1 - risk_seeking`` quantile, which
        is the baseline; samples exactly at it carry no gradient, so about
        ``risk_seeking * (batch_size - 1)`` samples of a batch are learnt from, which
        must be at least 1), pushing the policy toward its best candidates instead of a
        good average; ``baseline_decay`` is then unused. ``None`` (default): the
        authors' REINFORCE with the EMA baseline. Ignored by ``controller="random"``.
    progress : bool, default=True
        Show a tqdm progress bar.
    callback : callable, optional
        ``callback(step, total, metrics)`` after each step; returning ``False`` stops.
    executor : None, "ray" or concurrent.futures.Executor, default=None
        Where candidates are evaluated. ``None``: in this process, in parallel (Rust
        threads). ``"ray"``: tasks on the running Ray cluster (a local one is started,
        with a warning, when none is initialised); the data goes into Ray's object
        store once and the workers read it zero-copy, candidates travel as canonical
        texts, and a task still running 10 s past ``timeout`` (the worker's own
        deadline normally stops it at ``timeout``) is cancelled with
        ``ray.cancel(force=True)`` (its candidate is invalid). Any
        ``concurrent.futures.Executor`` (Dask's ``client.get_executor()`` included,
        whose data is scattered to the workers once) works the same way, except that a
        running task cannot be force-cancelled: the worker's own deadline stops it and
        its future is cancelled best effort. Ray and Dask are optional
        (``pip install 'gridmatch[ray]'`` / ``'gridmatch[dask]'``) and imported only
        here. A seeded search gives the same candidates, rewards and history (timings
        aside) with any executor, so the executor is a run-time choice, not a setting:
        ``result_.settings`` does not record it. The loop is driven from Python by
        :class:`gridmatch._core.SearchDriver` (the controller's sample / update steps).
    cpus_per_candidate : int, default=1
        Threads of each candidate's evaluation on its worker (with ``"ray"``, also the
        task's ``num_cpus``); at most ``workers // cpus_per_candidate`` candidates run
        at once. Unused when ``executor`` is ``None``.

    Attributes
    ----------
    result_ : SearchResult
        Everything the search found.
    best_expr_ : Expr
        The best transform.
    best_score_ : float
        Its recall@1.
    history_ : list of dict
        Per-step history.

    Examples
    --------
    Candidates evaluated by a Ray cluster or by Dask workers:

    >>> import ray  # doctest: +SKIP
    >>> ray.init(num_cpus=8)  # doctest: +SKIP
    >>> s = TransformSearch(budget=200, executor="ray", cpus_per_candidate=2)  # doctest: +SKIP
    >>> s.fit(E_query, ids_query, E_gallery, ids_gallery)  # doctest: +SKIP
    >>> from dask.distributed import Client, LocalCluster  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=4, threads_per_worker=1))  # doctest: +SKIP
    >>> s = TransformSearch(budget=200, executor=client.get_executor())  # doctest: +SKIP
    >>> s.fit(E_query, ids_query, E_gallery, ids_gallery)  # doctest: +SKIP
    """

    _kind = "transform"

    def __init__(
        self,
        space: Space | str = "activation",
        controller: str = "rl",
        budget: int = 300,
        batch_size: int = 10,
        seed: int = 0,
        timeout: float | None = None,
        lr: float = 2e-4,
        entropy_weight: float = 0.0025,
        baseline_decay: float = 0.95,
        risk_seeking: float | None = None,
        progress: bool = True,
        callback: Callable[[int, int | None, dict[str, float]], Any] | None = None,
        executor: Any = None,
        cpus_per_candidate: int = 1,
    ) -> None:
        super().__init__(
            space,
            controller,
            budget,
            batch_size,
            seed,
            timeout,
            lr,
            entropy_weight,
            baseline_decay,
            risk_seeking,
            progress,
            callback,
            executor,
            cpus_per_candidate,
        )

    def fit(
        self, E_query: Any, ids_query: Any, E_gallery: Any, ids_gallery: Any
    ) -> TransformSearch:
        """Run the search.

        Parameters
        ----------
        E_query : array-like of shape (n_query, dim)
            Query embeddings (numpy or torch).
        ids_query : array-like of shape (n_query,)
            Integer item ids of the queries.
        E_gallery : array-like of shape (n_gallery, dim)
            Gallery embeddings.
        ids_gallery : array-like of shape (n_gallery,)
            Integer item ids of the gallery.

        Returns
        -------
        TransformSearch
            ``self``.

        Raises
        ------
        ConfigError
            An invalid setting (checked first; the message names it).
        ShapeError
            Badly shaped or non-finite embeddings or ids, or no query id in the gallery.
        """
        space = self._check_params()
        Eq = _float_matrix(_to_numpy(E_query, "E_query"), "E_query")
        Eg = _float_matrix(_to_numpy(E_gallery, "E_gallery"), "E_gallery")
        if Eq.shape[1] != Eg.shape[1]:
            raise ShapeError(f"E_query has dim {Eq.shape[1]} but E_gallery has {Eg.shape[1]}")
        iq = _labels(_to_numpy(ids_query, "ids_query"), Eq.shape[0], "ids_query")
        ig = _labels(_to_numpy(ids_gallery, "ids_gallery"), Eg.shape[0], "ids_gallery")
        # Any hashable ids: map to integers consistently across both sets.
        _, inv = np.unique(np.concatenate([iq, ig]), return_inverse=True)
        inv = inv.astype(np.int64).ravel()
        if not np.isin(inv[: len(iq)], inv[len(iq) :]).any():
            raise ShapeError(
                "no query id appears in ids_gallery: every reward would be 0 "
                "(queries and gallery must share ids)"
            )
        self._run(space, _core.transform_search, Eq, inv[: len(iq)], Eg, inv[len(iq) :])
        return self
