"""Benchmark gm.retrieval.Index's faiss backend against faiss called directly.

Side by side in one run, on the same data, 2 threads on both sides: for an IVF index
(``IVF4096,Flat``, ``nprobe=16``) and an HNSW index (``HNSW32``, ``efSearch=64``), the
build time (train on the same sample + add; median of alternating builds) and the
query time (10k queries, k = 10)
through ``gm.retrieval.Index(backend="faiss")`` and through faiss's own
``index_factory`` / ``train`` / ``add`` / ``search``; the overhead of the wrapper; and
recall@10 of both against exact search through gridmatch's Rust engine
(``gm.retrieval.Index(backend="exact")``).

Data: no real embedding set of 1M x 128 is available here, so the vectors are synthetic
and clustered (4096 Gaussian clusters in 128-d, float32, L2 metric), the kind of data IVF
and HNSW are built for; queries are drawn from the same clusters.

Writes its section of BENCHMARKS.md (between the ``index`` markers).

Requirements: ``pip install faiss-cpu`` (in requirements-dev.txt). Run:
``python benches/index.py`` (1M x 128: tens of minutes on 2 busy cores, a few GiB of
memory); ``--quick`` runs 100k x 128 with 1k queries to check the script (and does not
touch BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from _common import cpu_name, quiet_label, replace_block, vector_extensions

THREADS = 2
K = 10
#: name -> (factory, search parameters)
INDEXES = {
    "IVF": ("IVF4096,Flat", {"nprobe": 16}),
    "HNSW": ("HNSW32", {"efSearch": 64}),
}


def clustered(n: int, d: int, centers: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d), dtype=np.float32)
    out = np.empty((n, d), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        out[s : s + m] = c[rng.integers(0, centers, m)]
        out[s : s + m] += 0.5 * rng.standard_normal((m, d), dtype=np.float32)
    return out


def clock(fn):
    """Wall and CPU seconds of ``fn()`` and its result."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(got, truth)]) / truth.shape[1])


def bench_one(name: str, E, Q, sample, truth, repeats: int, build_repeats: int) -> dict:
    import faiss

    import gridmatch as gm

    factory, params = INDEXES[name]
    d = E.shape[1]

    def build_gm():
        # train_size=None: train on all of the sample, as faiss does below (same rows,
        # same faiss k-means defaults: both sides call the same IndexIVF.train)
        index = gm.retrieval.Index(
            d, metric="l2", backend="faiss", factory=factory, gpu=False, train_size=None
        )
        index.train(sample)
        index.add(E)
        return index

    def build_faiss():
        index = faiss.index_factory(d, factory, faiss.METRIC_L2)
        index.train(sample)
        index.add(E)
        return index

    # Builds alternate (gridmatch first, then faiss first, ...) and each side's previous
    # index is freed before it builds again, so that neither side always runs first (the
    # first large allocations of a process are slower on some VMs: fresh memory) and a
    # load that changes during the run falls on both sides.
    g_b, f_b, g_bc, f_bc = [], [], [], []
    gi = fi = None
    for r in range(build_repeats):
        for side in ("gm", "faiss") if r % 2 == 0 else ("faiss", "gm"):
            if side == "gm":
                gi = None
                w, c, gi = clock(build_gm)
                g_b.append(w)
                g_bc.append(c)
            else:
                fi = None
                w, c, fi = clock(build_faiss)
                f_b.append(w)
                f_bc.append(c)
            print(f"  {name}: {side} build {w:.1f} s ({c:.1f} s CPU)", flush=True)

    def search_faiss():
        space = faiss.ParameterSpace()
        for key, value in params.items():
            space.set_index_parameter(fi, key, value)
        return fi.search(Q, K)

    g_q, f_q, g_qc, f_qc = [], [], [], []
    for r in range(repeats):  # alternate, so that both see the same (noisy) machine
        for side in ("faiss", "gm") if r % 2 == 0 else ("gm", "faiss"):
            if side == "faiss":
                w, c, (_, f_ids) = clock(search_faiss)
                f_q.append(w)
                f_qc.append(c)
            else:
                w, c, (_, g_ids) = clock(lambda: gi.search(Q, K, **params))
                g_q.append(w)
                g_qc.append(c)
    return {
        "name": name,
        "factory": factory,
        "params": ", ".join(f"{k}={v}" for k, v in params.items()),
        "gm_build": statistics.median(g_b),
        "faiss_build": statistics.median(f_b),
        "gm_build_cpu": statistics.median(g_bc),
        "faiss_build_cpu": statistics.median(f_bc),
        "gm_builds": g_b,
        "faiss_builds": f_b,
        "gm_query": statistics.median(g_q),
        "faiss_query": statistics.median(f_q),
        "gm_query_cpu": statistics.median(g_qc),
        "faiss_query_cpu": statistics.median(f_qc),
        "gm_recall": recall(g_ids, truth),
        "faiss_recall": recall(f_ids, truth),
        "same_ids": float(np.mean(g_ids == f_ids)),
    }


def pct(a: float, b: float) -> str:
    return f"{100 * (a - b) / b:+.1f} %"


def report(info: dict, rows: list) -> str:
    lines = [
        "<!-- BEGIN index -->",
        '## Vector index: `gm.retrieval.Index(backend="faiss")` vs faiss (`benches/index.py`)',
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores (vector extensions: {info['vector']}); "
        f"{THREADS} threads on both sides (`faiss.omp_set_num_threads(2)`, "
        f"`gm.set_num_threads(2)`); {info['when']}; faiss {info['faiss']}. Load average "
        f"{info['load_before']} (1, 5, 15 min) at the start, {info['load_after']} at the end: "
        f"{quiet_label(info['load1'])}.",
        "",
        f"Data: **synthetic clustered vectors** (no real embedding set of this size is "
        f"available here): {info['n']:,} x {info['d']} float32 from 4096 Gaussian clusters, "
        f"{info['nq']:,} queries from the same clusters, squared-L2 metric, k = {K}. Both "
        f"sides train on the same sample of {info['n_train']:,} vectors, add all "
        f"{info['n']:,} and search with the same parameters. Build = train + add, median of "
        f"{info['build_repeats']} builds per side in alternating order (gridmatch first, "
        f"then faiss first, ...); query = median of {info['repeats']} runs per side, "
        f"alternating likewise. Recall@{K} against exact "
        f'search through gridmatch\'s Rust engine (`Index(backend="exact")`, '
        f"{info['exact_s']:.1f} s for the {info['nq']:,} queries).",
        "",
        "| index | search params | faiss build s | Index build s | build overhead (wall / CPU) "
        "| faiss query s | Index query s | query overhead (wall / CPU) | recall@10 faiss "
        "| recall@10 Index | same ids |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['factory']}` | {r['params']} | {r['faiss_build']:.1f} | {r['gm_build']:.1f} "
            f"| {pct(r['gm_build'], r['faiss_build'])} / "
            f"{pct(r['gm_build_cpu'], r['faiss_build_cpu'])} "
            f"| {r['faiss_query']:.2f} | {r['gm_query']:.2f} "
            f"| {pct(r['gm_query'], r['faiss_query'])} / "
            f"{pct(r['gm_query_cpu'], r['faiss_query_cpu'])} "
            f"| {r['faiss_recall']:.4f} | {r['gm_recall']:.4f} | {100 * r['same_ids']:.2f} % |"
        )
    lines += [
        "",
        "The wrapper adds input checks (shape; NaN/inf through the array's min and max, "
        "which allocate nothing), the `IndexIDMap2` id map (HNSW; IVF stores the ids "
        "itself) and the id lookup of the results. It keeps no copy of the vectors for "
        "index types that store them unchanged (`Flat`, `IVF...,Flat`, `HNSW...`): "
        "`recall` and `save` read them back from faiss (other types, PQ / SQ, keep a "
        "float32 copy). 'same ids' is the share of result places where both sides return "
        "the same id (HNSW's multi-threaded insertion can build two slightly different "
        "graphs from the same data).",
        "",
        "### Goals",
        "",
    ]
    for r in rows:
        worst = max(
            (r["gm_build"] - r["faiss_build"]) / r["faiss_build"],
            (r["gm_query"] - r["faiss_query"]) / r["faiss_query"],
        )
        verdict = "met" if worst <= 0.05 else "**not met**"
        lines.append(
            f"- `{r['factory']}` overhead <= 5 % (build and query, wall): {verdict} "
            f"(worst {100 * worst:+.1f} %)."
        )
    lines += ["", "<!-- END index -->"]
    return "\n".join(lines)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k x 128, 1k queries (no write)")
    ap.add_argument("--repeats", type=int, default=3, help="query runs per side")
    ap.add_argument("--build-repeats", type=int, default=3, help="builds per side")
    ap.add_argument("--only", choices=sorted(INDEXES), nargs="*", help="a subset of indexes")
    args = ap.parse_args()

    import faiss

    import gridmatch as gm

    gm.set_num_threads(THREADS)
    faiss.omp_set_num_threads(THREADS)
    n, nq = (100_000, 1_000) if args.quick else (1_000_000, 10_000)
    d, n_train = 128, 262_144
    info = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "vector": vector_extensions(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "faiss": faiss.__version__,
        "load_before": load(),
        "load1": os.getloadavg()[0],
        "n": n,
        "nq": nq,
        "d": d,
        "repeats": args.repeats,
        "build_repeats": args.build_repeats,
    }
    allv = clustered(n + nq, d, 4096, seed=0)
    E, Q = allv[:n], np.ascontiguousarray(allv[n:])
    del allv
    rng = np.random.default_rng(1)
    sample = E[np.sort(rng.choice(n, size=min(n_train, n), replace=False))]
    info["n_train"] = len(sample)
    exact = gm.retrieval.Index(d, metric="l2")
    exact.add(E)
    t0 = time.perf_counter()
    truth = exact.search(Q, K)[1]
    info["exact_s"] = time.perf_counter() - t0
    del exact
    print(f"exact ground truth: {info['exact_s']:.1f} s", flush=True)
    rows = []
    for name in args.only or list(INDEXES):
        r = bench_one(name, E, Q, sample, truth, args.repeats, args.build_repeats)
        print(json.dumps(r), flush=True)
        rows.append(r)
    info["load_after"] = load()
    text = report(info, rows)
    print(text)
    if not args.quick and not args.only:
        replace_block("index", text)


if __name__ == "__main__":
    main()
