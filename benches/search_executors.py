"""Search executors benchmark: kernel-search throughput in-process vs on Ray.

Writes the ``search_executors`` section of BENCHMARKS.md (``--no-write``: print only).

The kernel search of the throughput benchmark (MNIST pixels in [0, 1], the first
``--n-train`` training images, the next ``--n-val`` for validation, C = 1, the paper's
space, random controller so every run evaluates the same candidates, seed 0), run

- in-process with gridmatch's pool at 1 thread and at ``--threads`` threads, after a
  warm-up search,
- on a local Ray cluster of 1 and of 2 CPUs (``ray.init(num_cpus=k)``, one candidate per
  CPU: ``cpus_per_candidate=1``), after a warm-up search that starts the workers.

Reported: distinct candidates evaluated per minute, and Ray's per-candidate overhead:
wall time per candidate on a 1-CPU cluster minus wall time per candidate in-process on
1 thread (the same candidates, one at a time in both), with the mean evaluation time
measured inside the workers beside it.

Usage::

    python benches/search_executors.py --budget 60 --n-train 1000
    python benches/search_executors.py --budget 4 --n-train 100 --n-val 50 --no-write
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _common import cpu_name, quiet_label, replace_block, vector_extensions

import gridmatch as gm

NAME = "search_executors"


def load(n_train: int, n_val: int):
    X, y = gm.datasets.load("mnist", "train")
    X = X.reshape(len(X), -1).astype(np.float64) / 255.0
    return (X[:n_train], y[:n_train]), (X[n_train : n_train + n_val], y[n_train : n_train + n_val])


def run(args, tr, va, **kw) -> tuple[float, gm.search.KernelSearch]:
    t0 = time.perf_counter()
    s = gm.search.KernelSearch(
        controller="random",
        budget=args.budget,
        batch_size=args.batch_size,
        seed=0,
        progress=False,
        **kw,
    ).fit(*tr, *va)
    return time.perf_counter() - t0, s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = ap.parse_args()
    import ray

    load_avg = os.getloadavg()[0]
    tr, va = load(args.n_train, args.n_val)
    rows, per_cand = [], {}
    before = gm.get_num_threads()["rayon"]
    warm = argparse.Namespace(**{**vars(args), "budget": 2, "batch_size": 2})
    try:
        for threads in (1, args.threads):
            gm.set_num_threads(threads)
            run(warm, tr, va)  # the controller's and the pool's first-use costs
            dt, s = run(args, tr, va)
            n = s.result_.n_unique
            per_cand[f"in-process {threads}"] = dt / n
            rows.append(("in-process", f"{threads} thread(s)", n, dt))
            print(rows[-1], flush=True)
    finally:
        gm.set_num_threads(before)
    worker_mean = {}
    for cpus in (1, 2):
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            run(warm, tr, va, executor="ray")  # starts the workers
            dt, s = run(args, tr, va, executor="ray")
        finally:
            ray.shutdown()
        n = s.result_.n_unique
        per_cand[f"ray {cpus}"] = dt / n
        worker_mean[cpus] = float(np.mean([c["seconds"] for c in s.result_.candidates]))
        rows.append(("ray", f"{cpus} CPU(s)", n, dt))
        print(rows[-1], flush=True)
    overhead = per_cand["ray 1"] - per_cand["in-process 1"]
    lines = [
        f"<!-- BEGIN {NAME} -->",
        "## Search executors: kernel search in-process vs Ray",
        "",
        f"Machine: {cpu_name()} ({vector_extensions()}), load average {load_avg:.2f} at the start "
        f"({quiet_label(load_avg)}). MNIST, {args.n_train} train / {args.n_val} val, "
        f"d = 784, random controller, budget {args.budget}, batch {args.batch_size}, seed 0 "
        "(every run evaluates the same candidates); Ray: a local cluster of k CPUs, "
        "cpus_per_candidate = 1, workers warmed up first.",
        "",
        "| executor | CPUs | distinct evaluated | seconds | distinct / min |",
        "|---|---|---|---|---|",
        *(f"| {e} | {c} | {n} | {dt:.1f} | {n / dt * 60:.0f} |" for e, c, n, dt in rows),
        "",
        f"Ray's per-candidate overhead (1-CPU cluster vs in-process on 1 thread, wall time "
        f"per candidate): {overhead * 1e3:.0f} ms; mean evaluation time measured in the "
        f"workers: {worker_mean[1] * 1e3:.0f} ms (1 CPU), {worker_mean[2] * 1e3:.0f} ms "
        "(2 CPUs).",
        f"<!-- END {NAME} -->",
    ]
    print("\n".join(lines))
    if not args.no_write:
        replace_block(NAME, "\n".join(lines))


if __name__ == "__main__":
    main()
