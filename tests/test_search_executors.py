"""Searches evaluated by executors (a local Ray cluster, a Dask LocalCluster, a thread
pool): the same seeded search as in-process, timeouts, a killed worker, bad settings.

The reference is the in-process search (``executor=None``), whose rewards other tests
check against scikit-learn and numpy.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import ray
from dask.distributed import Client, LocalCluster, get_task_stream

import gridmatch as gm
from gridmatch.search import KernelSearch, Space, TransformSearch, _executors

# Linear- and distance-based kernels score well above chance here (see
# test_search_kernel.py); "expdiff" and "exp" give some invalid (non-finite) candidates.
SPACE = Space(
    ["prod", "dot", "l2dist", "abs_diff"],
    ["identity", "neg", "exp", "square", "tanh"],
    ["add", "mul", "first", "expdiff"],
    units=1,
)


@pytest.fixture(scope="module")
def mnist_small(data_root):
    X, y = gm.datasets.load("mnist", "train", root=data_root / "mnist")
    X = X[:1200].reshape(1200, -1).astype(np.float64) / 255.0
    small = X[:200, ::4]  # 196 features
    return {
        "small": ((small[:120], y[:120]), (small[120:200], y[120:200])),
        "medium": ((X[:400], y[:400]), (X[400:600], y[400:600])),
        "large": ((X[:1000], y[:1000]), (X[1000:1200], y[1000:1200])),
    }


def embeddings(seed: int = 0, n_ids: int = 40, dim: int = 8):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, dim))
    ids = np.arange(n_ids)
    return centers + 0.6 * rng.normal(size=centers.shape), ids, centers, ids


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def dask_executor():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    yield client.get_executor()
    client.close()
    cluster.close()


def recording(monkeypatch, log: Path, kill: bool = False) -> None:
    """Make every evaluation, wherever it runs, record where it ran in files in ``log``.

    ``_executors.evaluate`` (what the executors send to their workers) is replaced by a
    wrapper defined here: a closure, which cloudpickle (Ray's and Dask's) sends by value,
    so the workers need not import this module; it refers to nothing of it. Each
    evaluation appends a ``start`` line and, once scored, an ``end`` line
    ``"<event> <pid> <thread ident> <thread name> <text>"`` to its process's file. With
    ``kill``, the first evaluation to start in a worker process once the file
    ``log / "arm"`` exists kills that process (SIGKILL) after its ``start`` line: a
    worker dies mid-task.
    """
    real = _executors.evaluate
    folder = str(log)
    driver = os.getpid()  # never killed: a worker may only kill itself

    def evaluate(kind, spec, text, *rest):
        import os
        import signal
        import threading

        name = threading.current_thread().name
        path = os.path.join(folder, f"events-{os.getpid()}")

        def note(event):
            with open(path, "a") as f:
                f.write(f"{event} {os.getpid()} {threading.get_ident()} {name} {text}\n")

        note("start")
        if kill and os.getpid() != driver and os.path.exists(os.path.join(folder, "arm")):
            try:  # once in the whole search
                os.close(os.open(os.path.join(folder, "killed"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        out = real(kind, spec, text, *rest)
        note("end")
        return out

    monkeypatch.setattr(_executors, "evaluate", evaluate)


def events(log) -> list[tuple[str, tuple]]:
    """The lines :func:`recording` wrote: ``(line, (event, pid, ident, name, text))``."""
    import glob

    out = []
    for path in sorted(glob.glob(os.path.join(str(log), "events-*"))):
        with open(path) as f:
            for line in f:
                event, pid, ident, name, text = line.rstrip("\n").split(" ", 4)
                out.append((line, (event, int(pid), int(ident), name, text)))
    return out


def ran(log) -> list[tuple[int, int, str, str]]:
    """``(pid, thread ident, thread name, text)`` of every evaluation that finished."""
    return [(p, i, n, t) for _, (e, p, i, n, t) in events(log) if e == "end"]


def assert_on_workers(log, search, *, processes: bool) -> None:
    """Every candidate of ``search`` was scored exactly once, away from this process
    (``processes``) or this thread, and the work was spread over several workers."""
    done = ran(log)
    texts = sorted(t for *_, t in done)
    assert texts == sorted({c["expr"] for c in search.result_.candidates}), done
    assert len(texts) == search.result_.n_unique
    if processes:
        pids = {p for p, *_ in done}
        assert os.getpid() not in pids and len(pids) >= 2, pids
    else:
        main = threading.main_thread().ident
        idents = {(p, i) for p, i, *_ in done}
        assert {p for p, _ in idents} == {os.getpid()}, idents
        assert main not in {i for _, i in idents} and len(idents) >= 2, idents
        assert all(n.startswith("pool_") for *_, n, _ in done), done


def timeless(search):
    """A result without its timings: candidates, history, best, interrupted."""
    r = search.result_
    cands = [{k: v for k, v in c.items() if k != "seconds"} for c in r.candidates]
    hist = [{k: v for k, v in h.items() if k != "elapsed"} for h in r.history]
    return cands, hist, r._best, r.interrupted, r.settings


def kernel_search(**kw):
    base = dict(space=SPACE, budget=16, batch_size=4, seed=2, progress=False)
    return KernelSearch(**{**base, **kw})


@pytest.mark.parametrize("controller", ["rl", "random"])
def test_ray_kernel_search_equals_in_process(
    ray_cluster, mnist_small, controller, monkeypatch, tmp_path
):
    tr, va = mnist_small["small"]
    here = kernel_search(controller=controller).fit(*tr, *va)
    recording(monkeypatch, tmp_path)
    there = kernel_search(controller=controller, executor="ray").fit(*tr, *va)
    assert timeless(there) == timeless(here)
    # Scored by Ray's worker processes, not here.
    assert_on_workers(tmp_path, there, processes=True)
    assert len(here.history) == 4 and here.result_.n_unique > 4
    assert there.best_expr == here.best_expr and there.best_score == here.best_score
    assert "executor" not in there.result_.settings


def test_ray_transform_search_two_threads_each(ray_cluster, monkeypatch, tmp_path):
    data = embeddings()
    kw = dict(budget=24, batch_size=6, seed=3, progress=False)
    here = TransformSearch(**kw).fit(*data)
    recording(monkeypatch, tmp_path)
    there = TransformSearch(**kw, executor="ray", cpus_per_candidate=2).fit(*data)
    assert timeless(there) == timeless(here)
    # One task at a time on the 2-CPU cluster, in a worker process.
    pids = {p for p, *_ in ran(tmp_path)}
    assert pids and os.getpid() not in pids, pids
    with pytest.raises(gm.ConfigError, match="more than the Ray cluster's 2 CPUs"):
        TransformSearch(**kw, executor="ray", cpus_per_candidate=3).fit(*data)


def test_dask_searches_equal_in_process(dask_executor, mnist_small, monkeypatch, tmp_path):
    tr, va = mnist_small["small"]
    client = dask_executor._client
    workers = set(client.scheduler_info()["workers"])
    here = kernel_search().fit(*tr, *va)
    recording(monkeypatch, tmp_path / "kernel")
    (tmp_path / "kernel").mkdir()
    with get_task_stream(client) as stream:
        there = kernel_search(executor=dask_executor).fit(*tr, *va)
    assert timeless(there) == timeless(here)
    assert_on_workers(tmp_path / "kernel", there, processes=True)
    # Dask's own record: one task of `evaluate` per candidate, on both workers.
    tasks = [t for t in stream.data if str(t["key"]).startswith("evaluate-")]
    assert len(tasks) == there.result_.n_unique, stream.data
    assert {t["worker"] for t in tasks} == workers, tasks
    data = embeddings(1)
    kw = dict(controller="random", budget=20, batch_size=5, seed=1, progress=False)
    here = TransformSearch(**kw).fit(*data)
    recording(monkeypatch, tmp_path)
    there = TransformSearch(**kw, executor=dask_executor).fit(*data)
    assert timeless(there) == timeless(here)
    assert_on_workers(tmp_path, there, processes=True)


def test_thread_pool_callback_stop_and_progress(mnist_small, monkeypatch, tmp_path):
    tr, va = mnist_small["small"]
    seen = {}

    def stop_after_2(name):
        def cb(step, total, metrics):
            seen.setdefault(name, []).append((step, total, metrics))
            return step < 2

        return cb

    with pytest.warns(gm.InterruptedWarning):
        here = kernel_search(callback=stop_after_2("here")).fit(*tr, *va)
    recording(monkeypatch, tmp_path)
    with (
        ThreadPoolExecutor(2, thread_name_prefix="pool") as pool,
        pytest.warns(gm.InterruptedWarning),
    ):
        there = kernel_search(callback=stop_after_2("there"), executor=pool).fit(*tr, *va)
    assert timeless(there) == timeless(here)
    # Scored on the pool's two threads, not on this one.
    assert_on_workers(tmp_path, there, processes=False)
    assert len(there.history) == 2 and there.result_.interrupted
    assert seen["there"] == seen["here"]
    assert seen["here"][0][1] == 4
    assert sorted(seen["here"][0][2]) == ["best", "entropy", "invalid", "reward", "unique"]


def test_bad_executor_settings(mnist_small):
    tr, va = mnist_small["small"]
    for bad in ["dask", "Ray", 3, object()]:
        with pytest.raises(gm.ConfigError, match="executor must be None, 'ray' or"):
            kernel_search(executor=bad).fit(*tr, *va)
    for bad in [0, -1, 1.5, "2"]:
        with pytest.raises(gm.ConfigError, match="cpus_per_candidate must be"):
            TransformSearch(executor="ray", cpus_per_candidate=bad).fit(*embeddings())


def test_driver_and_reward_misuse(mnist_small):
    tr, va = mnist_small["small"]
    s = kernel_search().fit(*tr, *va)
    spec = json.dumps(s.result_.settings)
    d = gm._core.SearchDriver(spec)
    with pytest.raises(gm.ConfigError, match="no batch was proposed"):
        d.record([])
    texts = d.propose()
    assert texts == [c["expr"] for c in s.result_.candidates if c["step"] == 1]
    with pytest.raises(gm.ConfigError, match="must be recorded before"):
        d.propose()
    with pytest.raises(gm.ShapeError, match="results for"):
        d.record([])
    with pytest.raises(gm.ShapeError, match="seconds must be"):
        d.record([(0.5, None, float("nan"))] * len(texts))
    # Results are judged by the search's rules: a reward past the timeout timed out, a
    # non-finite one is invalid, an error (the executor's own, say) is kept as given.
    d = gm._core.SearchDriver(json.dumps(dict(s.result_.settings, timeout=1.0)))
    cases = [
        ((0.5, None, 0.1), None),
        ((0.5, None, 2.0), "timed out after 1.0 s"),
        (
            (None, "timed out after 1.0 s (task cancelled)", 11.0),
            "timed out after 1.0 s (task cancelled)",
        ),
        ((float("inf"), None, 0.1), "reward is inf"),
    ]
    n = len(d.propose())
    rec = d.record([cases[i % 4][0] for i in range(n)])
    assert rec["step"] == 1 and rec["unique"] == n
    got = [c["error"] for c in d.outcome(False)["candidates"]]
    assert got == [cases[i % 4][1] for i in range(n)]
    # The per-candidate reward is the in-process search's.
    y_idx = np.unique(tr[1], return_inverse=True)[1]
    lookup = {c: i for i, c in enumerate(np.unique(tr[1]).tolist())}
    yv_idx = np.array([lookup.get(v, -1) for v in va[1].tolist()])
    first = s.result_.candidates[0]
    reward, error, seconds = gm._core.kernel_reward(
        spec, first["expr"], (tr[0], y_idx), (va[0], yv_idx), threads=2
    )
    assert (reward if error is None else 0.0) == first["reward"] and seconds >= 0
    with pytest.raises(gm.ExpressionError):
        gm._core.kernel_reward(spec, "x +", (tr[0], y_idx), (va[0], yv_idx))
    with pytest.raises(gm.ConfigError, match="threads must be at least 1"):
        gm._core.kernel_reward(spec, first["expr"], (tr[0], y_idx), (va[0], yv_idx), threads=0)
    with pytest.raises(gm.ShapeError):
        gm._core.kernel_reward(spec, first["expr"], (tr[0], y_idx[:5]), (va[0], yv_idx))


def test_ray_timeout_makes_candidates_invalid_promptly(ray_cluster, mnist_small):
    tr, va = mnist_small["large"]  # 1000 x 784: a candidate takes far more than 0.05 s
    t0 = time.perf_counter()
    s = kernel_search(controller="random", budget=4, batch_size=4, timeout=0.05, executor="ray")
    s.fit(*tr, *va)
    assert time.perf_counter() - t0 < 30
    errors = [c["error"] or "" for c in s.result_.candidates]
    assert sum("timed out after" in e for e in errors) >= len(errors) - 1, errors
    assert s.result_.n_invalid >= len(errors) - 1


def test_ray_force_cancels_a_task_past_its_deadline(ray_cluster, mnist_small, monkeypatch):
    # A negative grace makes the search cancel each task at half its timeout, before the
    # worker's own deadline: the force-cancel path is what scores these candidates.
    tr, va = mnist_small["large"]
    monkeypatch.setattr(_executors, "_CANCEL_GRACE_S", -1.9)  # cancel 0.1 s after submit
    t0 = time.perf_counter()
    s = kernel_search(controller="random", budget=4, batch_size=4, timeout=2.0, executor="ray")
    s.fit(*tr, *va)
    assert time.perf_counter() - t0 < 30
    cands = s.result_.candidates
    assert s.result_.n_invalid == len(cands) > 0, cands
    cancelled = [c["error"] == "timed out after 2.0 s (task cancelled)" for c in cands]
    assert sum(cancelled) >= len(cands) - 1, cands


def test_ray_worker_killed_mid_search_loses_nothing(
    ray_cluster, mnist_small, monkeypatch, tmp_path
):
    # After step 1, the first candidate to start kills its worker (SIGKILL) while it
    # is being scored; Ray retries its task on another worker, and the search ends as
    # in-process.
    tr, va = mnist_small["small"]
    here = kernel_search(budget=8).fit(*tr, *va)
    recording(monkeypatch, tmp_path, kill=True)

    def arm(step, total, metrics):
        if step == 1:
            (tmp_path / "arm").touch()
        return True

    there = kernel_search(budget=8, executor="ray", callback=arm).fit(*tr, *va)
    assert timeless(there) == timeless(here)
    assert all("task failed" not in (c["error"] or "") for c in there.result_.candidates)
    assert (tmp_path / "killed").exists()
    log = [e for _, e in events(tmp_path)]
    # The killed worker started a candidate and never finished it ...
    unfinished = {(p, t) for e, p, _, _, t in log if e == "start"} - {
        (p, t) for e, p, _, _, t in log if e == "end"
    }
    assert len(unfinished) == 1, log
    ((dead, text),) = unfinished
    assert dead != os.getpid()
    # ... and the retried task scored it in another worker process, once.
    assert [p for e, p, _, _, t in log if e == "end" and t == text] != [dead]
    assert len([p for e, p, _, _, t in log if e == "end" and t == text]) == 1
    assert_on_workers(tmp_path, there, processes=True)
