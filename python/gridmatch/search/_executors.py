"""Searches whose candidates are evaluated by an executor: Ray, Dask, any ``concurrent.futures``.

The batch loop runs here, in Python, around :class:`gridmatch._core.SearchDriver`, which
exposes the controller's two halves of a step: ``propose()`` samples a batch (the RL
policy or uniform sampling, one seeded stream, exactly as the in-process search) and
returns the canonical texts of its new distinct candidates; ``record(results)`` takes
one ``(reward, error, seconds)`` per text and does the rest of the step (cache by
canonical form, invalid counts, best so far, policy update, history record). Between
the two, each text is sent to a worker, which parses it and scores it with
:func:`gridmatch._core.kernel_reward` / :func:`gridmatch._core.transform_reward` (the
same checks, reward and validity rules as the in-process search, ``cpus_per_candidate``
threads, the per-candidate ``timeout`` enforced by the worker itself). A seeded search
therefore gives the same candidates, rewards and history (timings aside) whatever
evaluates it.

``executor="ray"``
    The running Ray cluster (``ray.init()`` with a warning when none is initialised).
    The data arrays are put in the object store once and read zero-copy by the workers;
    each candidate is a task of ``num_cpus=cpus_per_candidate``; at most
    ``cluster CPUs // cpus_per_candidate`` tasks are in flight. A task still running
    :data:`_CANCEL_GRACE_S` seconds past its ``timeout`` (counted from its submission)
    is cancelled with ``ray.cancel(force=True)``, which kills its worker, and the
    candidate is invalid ("timed out after X s (task cancelled)"). A task that fails
    (its worker died, after Ray's retries) makes its candidate invalid with the error's
    text; results already returned are never lost.
any ``concurrent.futures.Executor``
    ``submit`` / ``wait``; Dask's ``client.get_executor()`` included, whose data arrays
    are scattered to every worker once (other executors receive them with each task:
    shared memory for threads, a copy per task for processes). At most
    ``workers // cpus_per_candidate`` tasks are in flight when the executor tells its
    number of workers. Past the timeout and the grace, the future is cancelled (best
    effort: a running task cannot be stopped from outside, but the worker's own
    deadline stops the work) and the candidate is invalid ("timed out after X s (result
    abandoned)").

Ctrl-C or a callback returning ``False`` stops the search after cancelling what is in
flight; the result holds the finished steps, as in-process.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .. import _core
from .._base.exceptions import ConfigError, GridmatchError

#: Seconds a task may run past its ``timeout`` (from its submission: worker start-up,
#: data transfer) before the search cancels it; until then the worker's own deadline
#: is what stops a slow candidate.
_CANCEL_GRACE_S = 10.0

#: How often the loop wakes up while waiting for results (Ctrl-C, deadlines).
_POLL_S = 0.1

#: Longest error text kept from a failed task.
_MAX_ERROR = 500

Scored = tuple[Any, Any, float]


def check_executor(executor: Any) -> Any:
    """``executor`` checked: ``None``, ``"ray"`` or an object with ``submit``.

    Parameters
    ----------
    executor : None, "ray" or concurrent.futures.Executor
        The setting.

    Returns
    -------
    None, str or Executor
        The setting.

    Raises
    ------
    ConfigError
        Any other value.
    """
    if executor is None or executor == "ray":
        return executor
    if isinstance(executor, str) or not callable(getattr(executor, "submit", None)):
        raise ConfigError(
            "executor must be None, 'ray' or a concurrent.futures.Executor "
            f"(an object with submit), got {executor!r}"
        )
    return executor


def evaluate(
    kind: str,
    spec: str,
    text: str,
    a: Any,
    b: Any,
    c: Any,
    d: Any,
    threads: int,
    timeout: float | None,
) -> Scored:
    """Score one candidate on a worker (a module-level function: workers import it).

    Parameters
    ----------
    kind : {"kernel", "transform"}
        The search's kind.
    spec : str
        The search spec (JSON).
    text : str
        The candidate's canonical text.
    a, b, c, d : array-like
        ``X_train, y_train, X_val, y_val`` or ``E_query, ids_query, E_gallery,
        ids_gallery``.
    threads : int
        Threads of the evaluation.
    timeout : float or None
        The candidate's time limit in seconds.

    Returns
    -------
    tuple
        ``(reward or None, error or None, seconds)``.
    """
    fn = _core.kernel_reward if kind == "kernel" else _core.transform_reward
    return fn(spec, text, (a, b), (c, d), threads=threads, timeout=timeout)


def _warm() -> int:
    """A no-op task that loads the extension in a worker (so start-up is not timed)."""
    import os

    return os.getpid()


class _Ray:
    """Tasks on a Ray cluster."""

    note = "task cancelled"

    def __init__(
        self, kind: str, spec: str, arrays: Sequence[Any], threads: int, timeout: float | None
    ) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor='ray' needs Ray: pip install 'gridmatch[ray]'") from None
        if not ray.is_initialized():
            warnings.warn(
                "executor='ray': no Ray cluster is initialised; starting a local one with "
                "ray.init() (call ray.init yourself to choose its size or address)",
                UserWarning,
                stacklevel=5,
            )
            ray.init()
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if cpus < threads:
            raise ConfigError(
                f"cpus_per_candidate={threads} is more than the Ray cluster's {cpus:g} CPUs"
            )
        self.ray = ray
        self.slots = max(1, int(cpus // threads))
        self.args: tuple[Any, ...] = (kind, spec, *(ray.put(a) for a in arrays), threads, timeout)
        # Typed by Ray per function; the loop only submits and waits.
        self.task: Any = ray.remote(num_cpus=threads)(evaluate)
        warm = ray.remote(num_cpus=threads)(_warm)
        ray.get([warm.remote() for _ in range(self.slots)])

    def submit(self, text: str) -> Any:
        kind, spec, *rest = self.args
        return self.task.remote(kind, spec, text, *rest)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        ready, rest = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def cancel(self, handle: Any) -> None:
        try:
            self.ray.cancel(handle, force=True)
        except Exception:  # already finished or gone: nothing to stop
            pass


class _Futures:
    """Tasks of a ``concurrent.futures.Executor`` (Dask's included)."""

    note = "result abandoned"

    def __init__(
        self,
        executor: Any,
        kind: str,
        spec: str,
        arrays: Sequence[Any],
        threads: int,
        timeout: float | None,
    ) -> None:
        from concurrent import futures

        self.futures = futures
        self.executor = executor
        client = _dask_client(executor)
        workers: int | None
        if client is not None:
            arrays = [client.scatter(a, broadcast=True) for a in arrays]
            workers = sum(client.nthreads().values())
        else:
            workers = getattr(executor, "_max_workers", None)
        self.slots = max(1, workers // threads) if isinstance(workers, int) else 1 << 30
        self.args: tuple[Any, ...] = (kind, spec, *arrays, threads, timeout)

    def submit(self, text: str) -> Any:
        kind, spec, *rest = self.args
        try:
            handle = self.executor.submit(evaluate, kind, spec, text, *rest)
        except RuntimeError as e:  # shut down ("cannot schedule new futures ...")
            raise ConfigError(f"the executor cannot take tasks: {e}") from None
        if not isinstance(handle, self.futures.Future):
            raise ConfigError(
                "executor.submit must return a concurrent.futures.Future, got "
                f"{type(handle).__name__}"
            )
        return handle

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        done, _ = self.futures.wait(
            handles, timeout=timeout, return_when=self.futures.FIRST_COMPLETED
        )
        return list(done)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def cancel(self, handle: Any) -> None:
        handle.cancel()


def _dask_client(executor: Any) -> Any:
    """The Dask client behind ``client.get_executor()``, else ``None``."""
    if type(executor).__module__.split(".")[0] != "distributed":
        return None
    client = getattr(executor, "_client", None)
    return client if callable(getattr(client, "scatter", None)) else None


def _scored(backend: Any, handle: Any, elapsed: float) -> Scored:
    """A finished task's ``(reward, error, seconds)``; a failed task is an invalid
    candidate, a gridmatch error (bad data or settings, never a candidate's fault) is
    raised."""
    try:
        reward, error, seconds = backend.result(handle)
        return (
            None if reward is None else float(reward),
            None if error is None else str(error),
            float(seconds),
        )
    except GridmatchError:
        raise
    except Exception as e:
        text = f"task failed: {type(e).__name__}: {e}"
        return None, text[:_MAX_ERROR], elapsed


def _batch(backend: Any, texts: list[str], timeout: float | None) -> list[Scored]:
    """Evaluate one batch's texts; results in the order of ``texts``."""
    results: list[Scored | None] = [None] * len(texts)
    queue = list(range(len(texts)))[::-1]
    inflight: dict[Any, tuple[int, float]] = {}
    limit = None if timeout is None else timeout + _CANCEL_GRACE_S
    try:
        while queue or inflight:
            while queue and len(inflight) < backend.slots:
                i = queue.pop()
                inflight[backend.submit(texts[i])] = (i, time.monotonic())
            wait_s = _POLL_S
            if limit is not None:
                first = min(t0 for _, t0 in inflight.values())
                wait_s = max(0.0, min(wait_s, first + limit - time.monotonic()))
            for h in backend.wait(list(inflight), wait_s):
                i, t0 = inflight.pop(h)
                results[i] = _scored(backend, h, time.monotonic() - t0)
            if limit is not None:
                now = time.monotonic()
                for h, (i, t0) in list(inflight.items()):
                    if now - t0 > limit:
                        backend.cancel(h)
                        del inflight[h]
                        results[i] = (
                            None,
                            f"timed out after {timeout:.1f} s ({backend.note})",
                            now - t0,
                        )
    except BaseException:
        for h in inflight:
            backend.cancel(h)
        raise
    return [r for r in results if r is not None]


def _metrics(rec: dict[str, Any]) -> dict[str, float]:
    """A step record's progress metrics (what the in-process search reports)."""
    return {
        "reward": float(rec["reward"]),
        "best": float(rec["best_so_far"]),
        "entropy": float(rec["entropy"]),
        "unique": float(rec["unique"]),
        "invalid": float(rec["invalid"]),
    }


def run(
    spec: str,
    kind: str,
    arrays: Sequence[Any],
    executor: Any,
    threads: int,
    timeout: float | None,
    callback: Callable[..., Any] | None,
) -> dict[str, Any]:
    """Run a search with its candidates evaluated by ``executor``.

    Parameters
    ----------
    spec : str
        The search spec (JSON).
    kind : {"kernel", "transform"}
        The search's kind.
    arrays : sequence of ndarray
        The four data arrays of the reward (checked).
    executor : "ray" or concurrent.futures.Executor
        Where candidates are evaluated.
    threads : int
        Threads per candidate.
    timeout : float or None
        Per-candidate time limit in seconds.
    callback : callable or None
        ``callback(step, total, metrics)`` after each step; ``False`` stops.

    Returns
    -------
    dict
        The result, as ``_core.kernel_search`` returns it.
    """
    driver = _core.SearchDriver(spec)
    backend: Any
    if executor == "ray":
        backend = _Ray(kind, spec, arrays, threads, timeout)
    else:
        backend = _Futures(executor, kind, spec, arrays, threads, timeout)
    interrupted = False
    try:
        while True:
            texts = driver.propose()
            if texts is None:
                break
            results = _batch(backend, texts, timeout)
            rec = driver.record(results)
            if callback is not None:
                keep = callback(rec["step"], driver.total_steps, _metrics(rec))
                if keep is not None and not keep:
                    interrupted = True
                    break
    except KeyboardInterrupt:
        if driver.steps_done == 0:
            raise
        interrupted = True
    return driver.outcome(interrupted)
