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
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core
from ._validate import host_array, positive_int
from .exceptions import DataError, ExpressionError, InterruptedWarning, NotFittedError, ShapeError
from .expr import Expr

__all__ = ["KernelSearch", "SearchResult", "Space", "TransformSearch"]

_RESULT_FORMAT = "gridmatch.search.SearchResult"
_RESULT_VERSION = 1

#: Largest number of units of a :class:`Space`.
MAX_UNITS = 8


@dataclass(frozen=True)
class Space:
    """A search space as data.

    A candidate is ``units`` units of 5 decisions each,
    ``unit = binary(unary1(op1), unary2(op2))``, where ``op1`` and ``op2`` are operands or
    an earlier unit's output; the candidate is ``final(last unit)``.

    Parameters
    ----------
    operands : sequence of str
        Operand expressions in ``x`` (and ``y`` for kernels), or the names of the paper's
        pairwise primitives: ``abs_diff`` (``|x-y|``), ``sum`` (``x+y``),
        ``abs_sq_diff`` (``|x²-y²|``), ``l1dist``, ``l2dist``, ``dot``, ``prod`` (``x∘y``).
    unary : sequence of str
        Unary operation names (``identity, neg, abs, square, cube, sqrt_abs, exp, sin,
        cos, sinh, cosh, tanh, relu, min0, sigmoid, softplus, l1, l2, sign``) or
        templates in ``u`` such as ``"2 * u"``.
    binary : sequence of str
        Binary operation names (``add, mul, sub, div, max, min, dot, expdiff, first,
        second``) or templates in ``a`` and ``b`` such as ``"sigmoid(a) * b"``.
    units : int, default=2
        Number of units (1 to 8: a unit may use the previous one twice, so candidates
        can double in size with every unit).
    final : str, default="norm1"
        Final operation (``norm1`` for kernels, ``identity`` for transforms, or a
        template in ``u``).
    kind : {"kernel", "transform"}, default="kernel"
        Kernels are functions of ``x`` and ``y`` reduced to a scalar; transforms map
        ``x`` to a vector of the same size.
    """

    operands: Sequence[str]
    unary: Sequence[str]
    binary: Sequence[str]
    units: int = 2
    final: str = "norm1"
    kind: str = "kernel"
    _decisions: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("operands", "unary", "binary"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ExpressionError(f"{name} must be a list of strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if (
            isinstance(self.units, bool)
            or not isinstance(self.units, (int, np.integer))
            or not 1 <= self.units <= MAX_UNITS
        ):
            # Units may reuse earlier units twice, so a candidate's tree can double with
            # every unit: the cap keeps the largest candidate small (2**8 copies of a unit).
            raise ExpressionError(
                f"units must be an integer between 1 and {MAX_UNITS}, got {self.units!r}"
            )
        object.__setattr__(self, "_decisions", tuple(_core.space_decisions(self._spec())))

    def _spec(self) -> tuple[str, list[str], list[str], list[str], int, str]:
        return (
            self.kind,
            list(self.operands),
            list(self.unary),
            list(self.binary),
            int(self.units),
            self.final,
        )

    @classmethod
    def paper(cls) -> Space:
        """The authors' kernel space (2 units, 7 operands, 18 unary, 8 binary, norm1).

        Returns
        -------
        Space
            The space.
        """
        return cls._builtin("paper")

    @classmethod
    def activation(cls) -> Space:
        """A transform space in the spirit of *Searching for Activation Functions*.

        Returns
        -------
        Space
            The space (operands ``x`` and ``1``, 2 units, no final reduction).
        """
        return cls._builtin("activation")

    @classmethod
    def _builtin(cls, name: str) -> Space:
        kind, ops, un, bi, units, final = _core.builtin_space(name)
        return cls(ops, un, bi, units=units, final=final, kind=kind)

    @property
    def decisions(self) -> list[int]:
        """Number of choices of every decision, in order."""
        return list(self._decisions)

    @property
    def size(self) -> int:
        """Number of distinct decision sequences."""
        return math.prod(self._decisions)

    def build(self, actions: Sequence[int]) -> Expr:
        """The candidate of a decision sequence.

        Parameters
        ----------
        actions : sequence of int
            One choice per decision.

        Returns
        -------
        Expr
            The candidate.
        """
        if isinstance(actions, (str, bytes)) or not hasattr(actions, "__iter__"):
            raise ExpressionError(f"actions must be a sequence of integers, got {actions!r}")
        acts = [positive_int(a, "each action", low=0) for a in actions]
        return _core.space_build(self._spec(), acts)

    def sample(self, n: int, seed: int = 0) -> list[Expr]:
        """Uniformly random candidates.

        Parameters
        ----------
        n : int
            How many.
        seed : int, default=0
            Seed.

        Returns
        -------
        list of Expr
            The candidates.
        """
        n = positive_int(n, "n", low=0)
        seed = positive_int(seed, "seed", low=0)
        return _core.space_sample(self._spec(), n, seed)


def _resolve_space(space: Space | str, kind: str) -> Space:
    if isinstance(space, Space):
        sp = space
    elif space == "paper":
        sp = Space.paper()
    elif space == "activation":
        sp = Space.activation()
    else:
        raise ExpressionError(
            f"space must be a gridmatch.search.Space or 'paper' / 'activation', got {space!r}"
        )
    if sp.kind != kind:
        raise ExpressionError(f"this search needs a {kind} space, got a {sp.kind} space")
    return sp


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
        k = positive_int(k, "k")
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
        more data, which the search never saw, is a cheap second stage: on MNIST it picked
        out a kernel that beats RBF, which the 500-image reward had ranked below distance
        kernels that do not (BENCHMARKS.md, kernel search findings).

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
        k = positive_int(k, "k")
        if C is None:
            if "C" not in self.settings:
                raise ValueError("this result does not record its search's C: pass C=")
            C = self.settings["C"]
        _check_C(C)
        Xtr, ytr, Xho, yho = _split(X_train, y_train, X_holdout, y_holdout, "holdout")
        if len(np.unique(ytr)) < 2:
            raise ValueError("y_train needs at least 2 classes")
        valid = [c for c in self.candidates if c["valid"]]
        valid.sort(key=lambda c: -c["reward"])  # stable: ties keep the search's order
        from .svm import SVC

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


class _BaseSearch:
    _kind = "kernel"

    def __init__(
        self,
        space: Space | str,
        controller: str,
        budget: int,
        batch_size: int,
        seed: int,
        timeout: float | None,
        lr: float,
        entropy_weight: float,
        baseline_decay: float,
        risk_seeking: float | None,
        progress: bool,
        callback: Callable[[int, int | None, dict[str, float]], Any] | None,
    ) -> None:
        self.space = space
        self.controller = controller
        self.budget = budget
        self.batch_size = batch_size
        self.seed = seed
        self.timeout = timeout
        self.lr = lr
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.risk_seeking = risk_seeking
        self.progress = progress
        self.callback = callback

    def _check_params(self) -> Space:
        if self.controller not in ("rl", "random"):
            raise ExpressionError(f"controller must be 'rl' or 'random', got {self.controller!r}")
        for name in ("budget", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ExpressionError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ExpressionError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ExpressionError(f"seed must be >= 0, got {self.seed}")
        rs = self.risk_seeking
        if rs is not None:
            if isinstance(rs, (bool, np.bool_)) or not isinstance(
                rs, (int, float, np.integer, np.floating)
            ):
                raise ExpressionError(
                    f"risk_seeking must be a fraction in (0, 1] or None, got {rs!r}"
                )
            if not 0 < rs <= 1:
                raise ExpressionError(
                    f"risk_seeking must be a fraction in (0, 1] or None, got {rs!r}"
                )
            # samples exactly at the batch's cutoff carry no gradient: floor(eps·(n − 1)) do
            if rs * (self.batch_size - 1) < 1 - 1e-9:
                raise ExpressionError(
                    f"risk_seeking={rs!r} learns from no sample of a batch of "
                    f"{self.batch_size}: it needs risk_seeking * (batch_size - 1) >= 1"
                )
        return _resolve_space(self.space, self._kind)

    def _callback(self) -> tuple[Callable[..., Any] | None, Any]:
        user = self.callback
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.budget, desc=f"{self._kind} search ({self.controller})")
        if bar is None and user is None:
            return None, None
        state = {"sampled": 0}

        def cb(step: int, total: int | None, metrics: dict[str, float]) -> Any:
            if bar is not None:
                done = min(step * self.batch_size, self.budget)
                bar.update(done - state["sampled"])
                state["sampled"] = done
                bar.set_postfix(
                    best=f"{metrics['best']:.4f}", unique=int(metrics["unique"]), refresh=False
                )
            if user is not None:
                return user(step, total, metrics)
            return True

        return cb, bar

    def _settings(self, space: Space) -> dict[str, Any]:
        """The settings a result records (JSON-safe)."""
        rs = self.risk_seeking
        return {
            "kind": self._kind,
            "space": {
                "operands": list(space.operands),
                "unary": list(space.unary),
                "binary": list(space.binary),
                "units": int(space.units),
                "final": space.final,
            },
            "controller": self.controller,
            "budget": int(self.budget),
            "batch_size": int(self.batch_size),
            "seed": int(self.seed),
            "timeout": None if self.timeout is None else float(self.timeout),
            "lr": float(self.lr),
            "entropy_weight": float(self.entropy_weight),
            "baseline_decay": float(self.baseline_decay),
            "risk_seeking": None if rs is None else float(rs),
        }

    def _finish(self, raw: dict[str, Any], settings: dict[str, Any]) -> None:
        self.result_ = SearchResult(raw, self.controller, settings)
        self.best_expr_ = self.result_.best_expr
        self.best_score_ = self.result_.best_score
        self.history_ = self.result_.history
        if self.result_.interrupted:
            warnings.warn(
                f"search stopped early after {len(self.history_)} steps; "
                "the result holds the candidates evaluated so far",
                InterruptedWarning,
                stacklevel=3,
            )

    def _require(self) -> SearchResult:
        if not hasattr(self, "result_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")
        return self.result_

    @property
    def best_expr(self) -> Expr | None:
        """The best candidate (after ``fit``)."""
        return self._require().best_expr

    @property
    def best_score(self) -> float:
        """The best reward (after ``fit``)."""
        return self._require().best_score

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-step history (after ``fit``); see :class:`SearchResult`."""
        return self._require().history

    def top(self, k: int = 10) -> list[tuple[Expr, float]]:
        """The ``k`` best distinct candidates; see :meth:`SearchResult.top`.

        Parameters
        ----------
        k : int, default=10
            How many.

        Returns
        -------
        list of (Expr, float)
            Candidates and rewards, best first.
        """
        return self._require().top(k)

    def plot(self, ax: Any = None) -> Any:
        """Plot the reward curve; see :meth:`SearchResult.plot`.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw.

        Returns
        -------
        matplotlib.axes.Axes
            The axes.
        """
        return self._require().plot(ax)

    def _run(self, fn: Callable[..., dict[str, Any]], *args: Any) -> None:
        space = self._check_params()
        cb, bar = self._callback()
        try:
            raw = fn(
                space._spec(),
                *args,
                controller=self.controller,
                budget=int(self.budget),
                batch_size=int(self.batch_size),
                seed=int(self.seed),
                timeout=None if self.timeout is None else float(self.timeout),
                lr=float(self.lr),
                entropy_weight=float(self.entropy_weight),
                baseline_decay=float(self.baseline_decay),
                risk_seeking=None if self.risk_seeking is None else float(self.risk_seeking),
                callback=cb,
            )
        finally:
            if bar is not None:
                bar.close()
        self._finish(raw, self._settings(space))


def _flatten(a: Any, name: str) -> np.ndarray:
    """Samples as rows: images ``(n, h, w)`` become ``(n, h*w)``."""
    a = np.asarray(host_array(a, name))
    if a.ndim < 2 or a.shape[0] == 0 or a.size == 0:
        raise ShapeError(f"{name} must be a non-empty array of samples, got shape {a.shape}")
    return a.reshape(a.shape[0], -1)


def _float_matrix(a: Any, name: str) -> np.ndarray:
    a = host_array(a, name)
    if np.asarray(a).dtype.kind not in "fiub":
        raise ShapeError(f"{name} must hold real numbers, got dtype {np.asarray(a).dtype}")
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name} must be a numeric array: {e}") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ShapeError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(arr)


def _labels(a: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(host_array(a, name))
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ShapeError(f"{name} must be 1-D with {n} entries, got shape {arr.shape}")
    return arr


def _check_C(C: Any) -> None:
    """``ValueError`` unless ``C`` is a finite number > 0 (``bool`` refused)."""
    if (
        isinstance(C, bool)
        or not isinstance(C, (int, float, np.floating))
        or not (math.isfinite(C) and C > 0)
    ):
        raise ValueError(f"C must be a positive number, got {C!r}")


def _split(
    X_train: Any, y_train: Any, X_val: Any, y_val: Any, val: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A training / held-out split as float64 rows and 1-D labels."""
    Xtr = _float_matrix(_flatten(X_train, "X_train"), "X_train")
    Xva = _float_matrix(_flatten(X_val, f"X_{val}"), f"X_{val}")
    if Xtr.shape[1] != Xva.shape[1]:
        raise ShapeError(f"X_train has {Xtr.shape[1]} features but X_{val} has {Xva.shape[1]}")
    ytr = _labels(y_train, Xtr.shape[0], "y_train")
    yva = _labels(y_val, Xva.shape[0], f"y_{val}")
    return Xtr, ytr, Xva, yva


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
        self.C = C

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
        """
        _check_C(self.C)
        Xtr, ytr, Xva, yva = _split(X_train, y_train, X_val, y_val, "val")
        classes, ytr_idx = np.unique(ytr, return_inverse=True)
        if len(classes) < 2:
            raise ValueError("y_train needs at least 2 classes")
        # Validation labels absent from training can never be predicted: index -1.
        lookup = {c: i for i, c in enumerate(classes.tolist())}
        yva_idx = np.array([lookup.get(v, -1) for v in yva.tolist()], dtype=np.int64)
        self.classes_ = classes
        self._run(
            _core.kernel_search,
            Xtr,
            ytr_idx.astype(np.int64),
            Xva,
            yva_idx,
            float(self.C),
        )
        return self


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
        """
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
        self._run(_core.transform_search, Eq, inv[: len(iq)], Eg, inv[len(iq) :])
        return self


def _to_numpy(a: Any, name: str = "input") -> Any:
    return host_array(a, name)
