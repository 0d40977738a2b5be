"""Benchmark gm.retrieval against faiss and pytorch-metric-learning.

Side by side in one run, on the same data, 2 threads on both sides:

1. ``gm.retrieval.knn`` vs ``faiss.IndexFlatIP`` (exact inner-product search),
   10k queries x 100k gallery, 128-d and 512-d, k = 10.
2. ``gm.retrieval.evaluate`` vs pytorch-metric-learning's ``AccuracyCalculator``
   (precision@1, MAP@R, R-precision; its default faiss kNN, ``k="max_bin_count"``),
   20k queries x 20k gallery, 128-d, In-shop-like ids (a few images per id).
3. Peak memory (max RSS of a fresh process) of both evaluations, and of both kNN
   searches, at 100k x 100k.

Writes its section of BENCHMARKS.md (between the ``retrieval`` markers).

Requirements: ``pip install faiss-cpu pytorch-metric-learning`` (both are in
requirements-dev.txt). Run: ``python benches/retrieval.py`` (about 10-20 minutes on 2
busy cores); ``--quick`` runs small sizes to check the script, ``--no-memory`` skips
the 100k x 100k peak-memory runs, ``--gemm-choice`` adds the GEMM candidates table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import ROOT, cpu_name, vector_extensions
from _retrieval_report import THREADS, old_memory_section, report, write_section


def set_threads(n: int) -> None:
    import faiss
    import torch

    import gridmatch as gm

    gm.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    torch.set_num_threads(n)


def engine_kernel() -> str:
    """The score kernel gridmatch's engine picks on this CPU (as src/retrieval/kernel.rs
    does: AVX-512F, else AVX2 + FMA, else the gemm crate; GRIDMATCH_KNN_KERNEL caps it)."""
    flags = set(vector_extensions().split(", "))
    cap = os.environ.get("GRIDMATCH_KNN_KERNEL")
    if "avx512f" in flags and cap not in ("avx2", "portable"):
        return "AVX-512 8 x 48 micro-kernel"
    if {"avx2", "fma"} <= flags and cap != "portable":
        return "AVX2 + FMA 6 x 16 micro-kernel, scanned in 6 x 32 blocks"
    return "the gemm crate"


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def timed(fn, repeats: int):
    """Median wall and CPU (all threads) seconds over ``repeats`` runs, and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def inshop_like(n: int, d: int, per_id: float, seed: int):
    """Clustered embeddings with ~per_id images per id (L2-normalised, float32)."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, int(n / per_id))
    ids = rng.integers(0, n_ids, n)
    centers = rng.standard_normal((n_ids, d), dtype=np.float32)
    E = centers[ids] + 1.5 * rng.standard_normal((n, d), dtype=np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    return E, ids


# ------------------------------------------------------------------------------- knn


def bench_knn(n_q: int, n_g: int, d: int, k: int, repeats: int) -> dict:
    import faiss

    import gridmatch as gm

    rng = np.random.default_rng(d)
    g = rng.standard_normal((n_g, d), dtype=np.float32)
    q = rng.standard_normal((n_q, d), dtype=np.float32)
    index = faiss.IndexFlatIP(d)
    index.add(g)
    # Alternate the two, so that both see the same (noisy) machine.
    f_wall, f_cpu, g_wall, g_cpu = [], [], [], []
    for _ in range(repeats):
        w, c, (D, I_f) = timed(lambda: index.search(q, k), 1)
        f_wall.append(w)
        f_cpu.append(c)
        w, c, (S, J) = timed(lambda: gm.retrieval.knn(q, g, k, metric="ip"), 1)
        g_wall.append(w)
        g_cpu.append(c)
    same = float((I_f == J).mean())
    score_err = float(np.abs(D - S).max())
    return {
        "d": d,
        "n_q": n_q,
        "n_g": n_g,
        "k": k,
        "faiss_wall": statistics.median(f_wall),
        "faiss_cpu": statistics.median(f_cpu),
        "gm_wall": statistics.median(g_wall),
        "gm_cpu": statistics.median(g_cpu),
        "same_indices": same,
        "max_score_diff": score_err,
        "gflop": 2 * n_q * n_g * d / 1e9,
    }


# -------------------------------------------------------------------------- evaluate


def pml_calculator(k="max_bin_count"):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    return AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r", "r_precision"), k=k
    )


def bench_evaluate(n: int, d: int, repeats: int, k="max_bin_count") -> dict:
    import logging

    import torch

    import gridmatch as gm

    logging.getLogger("PML").setLevel(logging.ERROR)
    E, ids = inshop_like(2 * n, d, per_id=5, seed=1)
    Eq, iq, Eg, ig = E[:n], ids[:n], E[n:], ids[n:]
    calc = pml_calculator(k)
    tq, tiq, tg, tig = map(torch.from_numpy, (Eq, iq, Eg, ig))
    p_wall, p_cpu, g_wall, g_cpu, f_wall, f_cpu = [], [], [], [], [], []
    import warnings

    import faiss

    # AccuracyCalculator's own kNN: faiss IndexFlatL2 with k = the largest id count (its
    # "max_bin_count"), timed alone to split its time into search and metric code.
    k_faiss = int(np.bincount(np.unique(ig, return_inverse=True)[1].ravel()).max())

    def faiss_only():
        index = faiss.IndexFlatL2(d)
        index.add(Eg)
        return index.search(Eq, k_faiss)

    for _ in range(repeats):
        w, c, pml = timed(lambda: calc.get_accuracy(tq, tiq, tg, tig), 1)
        p_wall.append(w)
        p_cpu.append(c)
        if k == "max_bin_count":
            w, c, _ = timed(faiss_only, 1)
            f_wall.append(w)
            f_cpu.append(c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w, c, res = timed(lambda: gm.retrieval.evaluate(Eq, iq, Eg, ig, metric="l2"), 1)
        g_wall.append(w)
        g_cpu.append(c)
    diff = max(
        abs(res["precision@1"] - pml["precision_at_1"]),
        abs(res["map@r"] - pml["mean_average_precision_at_r"]),
        abs(res["r_precision"] - pml["r_precision"]),
    )
    return {
        "n": n,
        "d": d,
        "pml_k": str(k),
        "pml_wall": statistics.median(p_wall),
        "pml_cpu": statistics.median(p_cpu),
        "faiss_wall": statistics.median(f_wall) if f_wall else None,
        "faiss_cpu": statistics.median(f_cpu) if f_cpu else None,
        "gm_wall": statistics.median(g_wall),
        "gm_cpu": statistics.median(g_cpu),
        "max_metric_diff": diff,
        "metrics": {k: res[k] for k in ("recall@1", "precision@1", "map@r", "r_precision")},
        "without_match": res["n_queries_without_match"],
    }


# ---------------------------------------------------------------------- peak memory


def child(which: str, n: int, d: int) -> None:
    """Run one job in this (fresh) process and print its peak RSS as JSON."""
    import logging

    import faiss  # noqa: F401 - loaded before the measurement, like the other libraries
    import torch  # noqa: F401

    import gridmatch  # noqa: F401

    set_threads(THREADS)
    logging.getLogger("PML").setLevel(logging.ERROR)
    E, ids = inshop_like(2 * n, d, per_id=5, seed=2)
    Eq, iq, Eg, ig = E[:n].copy(), ids[:n].copy(), E[n:].copy(), ids[n:].copy()
    del E, ids
    gc.collect()
    base = rss_kib("VmRSS")
    reset = reset_peak()
    t0 = time.perf_counter()
    try:
        run_job(which, Eq, iq, Eg, ig, d)
        error = None
    except (RuntimeError, MemoryError) as e:
        error = str(e).splitlines()[-1][:200]
    dt = time.perf_counter() - t0
    # With the peak reset, VmHWM is the peak during the job; else the process's peak.
    peak = rss_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"job": which, "peak_kib": peak, "before_kib": base, "seconds": dt, "error": error}
    print(json.dumps(out))


def run_job(which, Eq, iq, Eg, ig, d):
    import warnings

    import faiss
    import torch

    import gridmatch as gm

    if which == "gm_evaluate":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.retrieval.evaluate(Eq, iq, Eg, ig, metric="l2")
    elif which == "pml_evaluate":
        pml_calculator().get_accuracy(*map(torch.from_numpy, (Eq, iq, Eg, ig)))
    elif which == "gm_knn":
        gm.retrieval.knn(Eq, Eg, 10, metric="ip")
    elif which == "faiss_knn":
        index = faiss.IndexFlatIP(d)
        index.add(Eg)
        index.search(Eq, 10)
    else:
        raise SystemExit(f"unknown job {which}")


def rss_kib(field: str) -> int:
    """VmRSS / VmHWM of this process from /proc (KiB); ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> bool:
    """Reset the peak-RSS counter (Linux: 5 > /proc/self/clear_refs), so that the peak
    measured afterwards excludes building the data."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory(which: str, n: int, d: int) -> dict:
    cmd = [sys.executable, __file__, "--child", which, str(n), str(d)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"job": which, "peak_kib": 0, "before_kib": 0, "seconds": 0, "error": err}
    return json.loads(lines[-1])


# --------------------------------------------------------------------- GEMM choice


def gemm_choice() -> list[dict]:
    """Single-thread GFLOPS of the GEMM candidates (examples/gemm_choice.rs)."""
    import sysconfig

    import torch

    # Build with this interpreter (libtorch is found through its torch package).
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, LIBTORCH_USE_PYTORCH="1", VIRTUAL_ENV=sys.prefix)
    env.update(PYO3_PYTHON=sys.executable, PATH=bindir + os.pathsep + env.get("PATH", ""))
    libs = [
        os.path.join(os.path.dirname(torch.__file__), "lib"),
        sysconfig.get_config_var("LIBDIR"),
    ]
    env["LD_LIBRARY_PATH"] = ":".join([*libs, env.get("LD_LIBRARY_PATH", "")])
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "gemm_choice"]
    try:
        out = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=1800
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print(f"GEMM comparison skipped: {e}", file=sys.stderr)
        return []
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (checks the script)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true", help="skip the 100k x 100k runs")
    ap.add_argument(
        "--gemm-choice",
        action="store_true",
        help="also time the GEMM candidates of examples/gemm_choice.rs (builds it with cargo)",
    )
    ap.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    ap.add_argument("--child", nargs=3, metavar=("JOB", "N", "D"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return

    import faiss
    import pytorch_metric_learning
    import torch

    set_threads(THREADS)
    info = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "faiss": faiss.__version__,
        "pml": pytorch_metric_learning.__version__,
        "torch": torch.__version__,
        "load_before": load(),
        "loaded": os.getloadavg()[0] >= 1.0 if hasattr(os, "getloadavg") else True,
        "vector": vector_extensions(),
        "kernel": engine_kernel(),
        "repeats": args.repeats,
    }
    scale = 10 if args.quick else 1
    knn_rows = []
    for d in (128, 512):
        r = bench_knn(10_000 // scale, 100_000 // scale, d, 10, args.repeats)
        print(json.dumps(r), flush=True)
        knn_rows.append(r)
    evs = [bench_evaluate(20_000 // scale, 128, args.repeats)]
    evs.append(bench_evaluate(5_000 // scale, 128, args.repeats, k=None))
    for ev in evs:
        print(json.dumps(ev), flush=True)
    mem = []
    if args.no_memory and not args.quick:
        info["old_memory"], info["old_memory_goals"] = old_memory_section()
    if not args.no_memory:
        n = 100_000 // scale
        labels = {
            "gm_evaluate": "gridmatch `evaluate`",
            "pml_evaluate": "AccuracyCalculator (`max_bin_count`, faiss kNN)",
            "gm_knn": "gridmatch `knn`, k = 10",
            "faiss_knn": "faiss `IndexFlatIP`, k = 10",
        }
        for job, label in labels.items():
            m = peak_memory(job, n, 128)
            m.update(label=label, n=n)
            print(json.dumps(m), flush=True)
            mem.append(m)
    gemms = gemm_choice() if args.gemm_choice else []
    info["load_after"] = load()
    text = report(info, knn_rows, evs, mem, gemms)
    print(text)
    if not args.no_write and not args.quick:
        write_section(text)


if __name__ == "__main__":
    main()
