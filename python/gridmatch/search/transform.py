"""Transform search: embedding transforms composed by the controller, rewarded by retrieval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core
from ..exceptions import ShapeError
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
