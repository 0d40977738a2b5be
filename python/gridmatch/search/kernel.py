"""Kernel search: SVM kernels composed by the controller, rewarded by validation accuracy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core
from .._base import params as _params
from ..expr import Expr
from ._base import _BaseSearch
from ._checks import _split
from .space import Space


class KernelSearch(_BaseSearch):
    """Search an SVM kernel with the paper's RL controller (or random search).

    The reward of a kernel is the accuracy on ``(X_val, y_val)`` of an SVM (``C``) trained
    on ``(X_train, y_train)`` with it. Kernel matrices are computed by the expression
    evaluator in Rust and the SVM is gridmatch's own solver; candidates are evaluated in
    parallel.

    Parameters
    ----------
    space : Space or {"paper"}, default="paper"
        The kernel space (the authors' by default).
    controller : {"rl", "random"}, default="rl"
        The REINFORCE-trained GRU or uniform random search.
    budget : int, default=500
        Candidates to sample in total (repeats included).
    batch_size : int, default=10
        Candidates per controller update.
    C : float, default=1.0
        SVM regularisation.
    seed : int, default=0
        Seed of the controller; the same seed gives the same search on any number of
        threads.
    timeout : float, optional
        Seconds allowed per candidate; slower candidates are invalid (reward 0). Makes
        the search depend on machine speed.
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
        The best kernel.
    best_score_ : float
        Its validation accuracy.
    history_ : list of dict
        Per-step history.

    Examples
    --------
    Candidates evaluated by a Ray cluster or by Dask workers:

    >>> import ray  # doctest: +SKIP
    >>> ray.init(num_cpus=8)  # doctest: +SKIP
    >>> s = KernelSearch(budget=200, executor="ray", cpus_per_candidate=2)  # doctest: +SKIP
    >>> s.fit(X_train, y_train, X_val, y_val)  # doctest: +SKIP
    >>> from dask.distributed import Client, LocalCluster  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=4, threads_per_worker=1))  # doctest: +SKIP
    >>> s = KernelSearch(budget=200, executor=client.get_executor())  # doctest: +SKIP
    >>> s.fit(X_train, y_train, X_val, y_val)  # doctest: +SKIP
    """

    _kind = "kernel"

    def __init__(
        self,
        space: Space | str = "paper",
        controller: str = "rl",
        budget: int = 500,
        batch_size: int = 10,
        C: float = 1.0,
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
        self.C = C

    def _check_params(self) -> Space:
        _params.real(self.C, "C", low=0, low_open=True)
        return super()._check_params()

    def _settings(self, space: Space) -> dict[str, Any]:
        return {**super()._settings(space), "C": float(self.C)}

    def rerank(
        self, X_train: Any, y_train: Any, X_holdout: Any, y_holdout: Any, k: int = 10
    ) -> list[tuple[Expr, float]]:
        """Re-score the search's ``k`` best kernels on a larger held-out set.

        See :meth:`SearchResult.rerank` (this search's ``C``, its progress setting).

        Parameters
        ----------
        X_train, y_train : array-like
            Training samples and labels (usually the search's).
        X_holdout, y_holdout : array-like
            Held-out samples and labels, disjoint from the search's validation set.
        k : int, default=10
            How many of the search's best valid kernels to re-score.

        Returns
        -------
        list of (Expr, float)
            Kernels and held-out accuracies, best first (ties: the search's order).
        """
        return self._require().rerank(
            X_train, y_train, X_holdout, y_holdout, k=k, progress=self.progress
        )

    def fit(self, X_train: Any, y_train: Any, X_val: Any, y_val: Any) -> KernelSearch:
        """Run the search.

        Parameters
        ----------
        X_train : array-like of shape (n_train, n_features)
            Training samples (flattened to 2-D when images).
        y_train : array-like of shape (n_train,)
            Training labels.
        X_val : array-like of shape (n_val, n_features)
            Validation samples.
        y_val : array-like of shape (n_val,)
            Validation labels.

        Returns
        -------
        KernelSearch
            ``self``.

        Raises
        ------
        ConfigError
            An invalid setting (checked first; the message names it).
        ShapeError
            Badly shaped, empty or non-finite samples or labels.
        """
        space = self._check_params()
        Xtr, ytr, Xva, yva = _split(X_train, y_train, X_val, y_val, "val")
        classes, ytr_idx = np.unique(ytr, return_inverse=True)
        if len(classes) < 2:
            raise ValueError("y_train needs at least 2 classes")
        # Validation labels absent from training can never be predicted: index -1.
        lookup = {c: i for i, c in enumerate(classes.tolist())}
        yva_idx = np.array([lookup.get(v, -1) for v in yva.tolist()], dtype=np.int64)
        self.classes_ = classes
        self._run(
            space,
            _core.kernel_search,
            Xtr,
            ytr_idx.astype(np.int64),
            Xva,
            yva_idx,
        )
        return self
