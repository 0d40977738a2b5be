"""What kernel and transform searches share: parameters, progress, running, results."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

from .. import _core
from .._base import params as _params
from .._base.exceptions import ConfigError, InterruptedWarning, NotFittedError
from ..expr import Expr
from . import _executors
from .result import SearchResult
from .space import Space, _resolve_space


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
        executor: Any = None,
        cpus_per_candidate: int = 1,
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
        self.executor = executor
        self.cpus_per_candidate = cpus_per_candidate

    def _check_params(self) -> Space:
        """Check the settings (``ConfigError`` naming the first bad one); the space."""
        _params.choice(self.controller, "controller", tuple(_core.CONTROLLER_NAMES))
        _params.integer(self.budget, "budget", low=1)
        batch_size = _params.integer(self.batch_size, "batch_size", low=1)
        _params.integer(self.seed, "seed", low=0)
        _params.real(self.timeout, "timeout", low=0, low_open=True, optional=True)
        _params.real(self.lr, "lr", low=0, low_open=True)
        _params.real(self.entropy_weight, "entropy_weight", low=0)
        _params.real(self.baseline_decay, "baseline_decay", low=0, high=1, high_open=True)
        rs = _params.real(self.risk_seeking, "risk_seeking", 0, 1, low_open=True, optional=True)
        # samples exactly at the batch's cutoff carry no gradient: floor(eps·(n − 1)) do
        if rs is not None and rs * (batch_size - 1) < 1 - 1e-9:
            raise ConfigError(
                f"risk_seeking={self.risk_seeking!r} learns from no sample of a batch of "
                f"{batch_size}: it needs risk_seeking * (batch_size - 1) >= 1"
            )
        _params.flag(self.progress, "progress")
        _executors.check_executor(self.executor)
        _params.integer(self.cpus_per_candidate, "cpus_per_candidate", low=1)
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

    def _run(self, space: Space, fn: Callable[..., dict[str, Any]], *args: Any) -> None:
        # One spec crosses into Rust (checked there) and is what the result stores.
        # The executor is a run-time choice, not a setting of the search: the result
        # records the same settings (and holds the same candidates) with any executor.
        settings = self._settings(space)
        cb, bar = self._callback()
        try:
            if self.executor is None:
                raw = fn(json.dumps(settings), *args, callback=cb)
            else:
                raw = _executors.run(
                    json.dumps(settings),
                    self._kind,
                    args,
                    self.executor,
                    int(self.cpus_per_candidate),
                    settings["timeout"],
                    cb,
                )
        finally:
            if bar is not None:
                bar.close()
        self._finish(raw, settings)
