"""A finished search: candidates, history, settings; saving, loading, re-ranking."""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import numpy as np

from .. import _core
from .._base import params as _params
from .._base.exceptions import ConfigError, DataError, ExpressionError
from ..expr import Expr
from ._checks import _split

_RESULT_FORMAT = "gridmatch.search.SearchResult"
_RESULT_VERSION = 1


class SearchResult:
    """The outcome of a search.

    Attributes
    ----------
    best_expr : Expr or None
        The best candidate.
    best_score : float
        Its reward (validation accuracy or recall@1).
    history : list of dict
        One dict per controller step: ``step``, ``sampled``, ``reward`` (batch mean),
        ``reward_max``, ``best_so_far``, ``entropy``, ``unique``, ``invalid``,
        ``cache_hits``, ``baseline`` (the EMA baseline, or the batch's reward cutoff with
        ``risk_seeking``), ``elapsed`` (seconds).
    candidates : list of dict
        Every distinct candidate: ``expr`` (canonical text), ``reward``, ``valid``,
        ``error``, ``step``, ``count`` (times sampled), ``seconds``.
    n_unique, n_invalid : int
        Distinct and invalid distinct candidates.
    interrupted : bool
        Whether the search was stopped early (Ctrl-C or the callback).
    controller : {"rl", "random"}
        The controller that sampled the candidates.
    settings : dict
        The search's settings, saved with the result: ``kind``, ``space`` (its
        operands, unary and binary operations, units and final operation),
        ``controller``, ``budget``, ``batch_size``, ``seed``, ``timeout``, ``lr``,
        ``entropy_weight``, ``baseline_decay``, ``risk_seeking`` and, for kernel
        searches, ``C``. Empty for a result loaded from a file written before settings
        were recorded.
    """

    def __init__(
        self, raw: dict[str, Any], controller: str, settings: dict[str, Any] | None = None
    ) -> None:
        self.candidates: list[dict[str, Any]] = raw["candidates"]
        self.history: list[dict[str, Any]] = raw["history"]
        self.interrupted: bool = raw["interrupted"]
        self.controller = controller
        self.settings: dict[str, Any] = dict(settings or {})
        best = raw["best"]
        self._best: int | None = best
        if best is None:
            self.best_expr: Expr | None = None
            self.best_score = float("nan")
        else:
            self.best_expr = Expr(self.candidates[best]["expr"])
            self.best_score = float(self.candidates[best]["reward"])
        self.n_unique = len(self.candidates)
        self.n_invalid = sum(1 for c in self.candidates if not c["valid"])

    def save(self, path: str | os.PathLike) -> str:
        """Save the result (candidates, history) to a file, atomically.

        The file is a safetensors file without arrays whose metadata holds the result as
        JSON (format ``"gridmatch.search.SearchResult"``, version 1) and a SHA-256
        checksum; it is written to a temporary file and renamed.

        Parameters
        ----------
        path : path-like
            Destination file.

        Returns
        -------
        str
            The path written.

        Raises
        ------
        DataError
            If the file cannot be written.
        """
        doc = {
            "format": _RESULT_FORMAT,
            "version": _RESULT_VERSION,
            "controller": self.controller,
            "settings": self.settings,
            "interrupted": bool(self.interrupted),
            "best": self._best,
            "candidates": self.candidates,
            "history": self.history,
        }
        path = os.fspath(path)
        _core.store_save(path, [], {"gridmatch": json.dumps(doc)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SearchResult:
        """Load a result written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The file.

        Returns
        -------
        SearchResult
            The result; candidates are re-parsed from their canonical text.

        Raises
        ------
        DataError
            If the file is missing, truncated, modified, of another format or version,
            or holds invalid candidates.
        """
        path = os.fspath(path)
        arrays, meta = _core.store_load(path)
        try:
            doc = json.loads(meta["gridmatch"])
        except (KeyError, ValueError) as e:
            raise DataError(f"{path}: not a saved SearchResult ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != _RESULT_FORMAT or arrays:
            raise DataError(f"{path}: not a saved SearchResult")
        if doc.get("version") != _RESULT_VERSION:
            raise DataError(
                f"{path}: format version {doc.get('version')!r} is not supported (this "
                f"gridmatch reads version {_RESULT_VERSION})"
            )
        try:
            candidates = list(doc["candidates"])
            for c in candidates:
                Expr(str(c["expr"]))
                float(c["reward"])
            best = doc["best"]
            if best is not None and not (isinstance(best, int) and 0 <= best < len(candidates)):
                raise ValueError(f"best={best!r} is not a candidate index")
            raw = {
                "candidates": candidates,
                "history": list(doc["history"]),
                "interrupted": bool(doc["interrupted"]),
                "best": best,
            }
            controller = str(doc["controller"])
            settings = doc.get("settings", {})
            if not isinstance(settings, dict):
                raise TypeError(f"settings must be a JSON object, got {type(settings).__name__}")
        except (KeyError, TypeError, ValueError) as e:  # ExpressionError is a ValueError
            raise DataError(f"{path}: invalid SearchResult ({type(e).__name__}: {e})") from None
        return cls(raw, controller, settings)

    def top(self, k: int = 10) -> list[tuple[Expr, float]]:
        """The ``k`` best distinct candidates.

        Parameters
        ----------
        k : int, default=10
            How many.

        Returns
        -------
        list of (Expr, float)
            Candidates and rewards, best first (ties: first found first).
        """
        k = _params.integer(k, "k", low=1)
        order = sorted(range(len(self.candidates)), key=lambda i: -self.candidates[i]["reward"])
        return [(Expr(self.candidates[i]["expr"]), self.candidates[i]["reward"]) for i in order[:k]]

    def rerank(
        self,
        X_train: Any,
        y_train: Any,
        X_holdout: Any,
        y_holdout: Any,
        k: int = 10,
        C: float | None = None,
        progress: bool = False,
    ) -> list[tuple[Expr, float]]:
        """Re-score the ``k`` best kernels of a kernel search on a larger held-out set.

        A small validation set cannot separate kernels whose accuracies differ by less
        than its noise (500 images: about ±1.3 points at 90 %), so the search's best is
        often just the luckiest of a group of equals. Re-scoring its best candidates on
        more data, which the search never saw, is a cheap second stage (what it changed on
        MNIST: see BENCHMARKS.md, section "Kernel search", findings).

        Each kernel is trained as ``gm.svm.SVC(kernel=expr, C=C)`` on
        ``(X_train, y_train)`` and scored by its accuracy on ``(X_holdout, y_holdout)``.
        A kernel that fails on this data (non-finite values) scores 0 with a warning.

        Parameters
        ----------
        X_train : array-like of shape (n_train, n_features)
            Training samples (usually the search's).
        y_train : array-like of shape (n_train,)
            Training labels.
        X_holdout : array-like of shape (n_holdout, n_features)
            Held-out samples, disjoint from the search's validation set and from any
            test set.
        y_holdout : array-like of shape (n_holdout,)
            Held-out labels.
        k : int, default=10
            How many of the best valid kernels to re-score.
        C : float, optional
            SVM regularisation; by default the search's (``settings["C"]``).
        progress : bool, default=False
            Show a tqdm progress bar.

        Returns
        -------
        list of (Expr, float)
            Kernels and held-out accuracies, best first (ties: the search's order).
        """
        kind = self.settings.get("kind")
        if kind is None and self.best_expr is not None:  # a file from before settings
            kind = "kernel" if self.best_expr.value_type == "scalar" else "transform"
        if kind not in ("kernel", None):  # None: no valid candidate, nothing to re-score
            raise ValueError(f"rerank re-scores SVM kernels; this is a {kind} search's result")
        k = _params.integer(k, "k", low=1)
        if C is None:
            if "C" not in self.settings:
                raise ConfigError("this result does not record its search's C: pass C=")
            C = self.settings["C"]
        _params.real(C, "C", low=0, low_open=True)
        _params.flag(progress, "progress")
        Xtr, ytr, Xho, yho = _split(X_train, y_train, X_holdout, y_holdout, "holdout")
        if len(np.unique(ytr)) < 2:
            raise ValueError("y_train needs at least 2 classes")
        valid = [c for c in self.candidates if c["valid"]]
        valid.sort(key=lambda c: -c["reward"])  # stable: ties keep the search's order
        from ..svm import SVC

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=min(k, len(valid)), desc="re-scoring kernels")
        scored = []
        try:
            for c in valid[:k]:
                expr = Expr(c["expr"])
                try:
                    pred = SVC(kernel=expr, C=float(C)).fit(Xtr, ytr).predict(Xho)
                    acc = float(np.mean(pred == yho))
                except ExpressionError as e:
                    warnings.warn(f"{expr} scores 0: {e}", RuntimeWarning, stacklevel=2)
                    acc = 0.0
                scored.append((expr, acc))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        scored.sort(key=lambda s: -s[1])  # stable: ties keep the search's order
        return scored

    def plot(self, ax: Any = None) -> Any:
        """Plot the reward curve (batch mean and best so far against candidates sampled).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw (default: a new figure).

        Returns
        -------
        matplotlib.axes.Axes
            The axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        x = [h["sampled"] for h in self.history]
        ax.plot(x, [h["reward"] for h in self.history], label="batch mean reward", alpha=0.7)
        ax.plot(x, [h["best_so_far"] for h in self.history], label="best so far")
        ax.set_xlabel("candidates sampled")
        ax.set_ylabel("reward")
        ax.set_title(f"{self._label()} search")
        ax.legend()
        return ax

    def _label(self) -> str:
        rs = self.settings.get("risk_seeking")
        if self.controller == "rl" and rs is not None:
            return f"rl (risk-seeking {rs:g})"
        return self.controller

    def __repr__(self) -> str:
        return (
            f"SearchResult(best_expr={str(self.best_expr)!r}, best_score={self.best_score:.4f}, "
            f"unique={self.n_unique}, invalid={self.n_invalid}, steps={len(self.history)})"
        )
