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
from _common import ROOT, cpu_name, replace_block

THREADS = 2
BEGIN, END = "<!-- BEGIN retrieval -->", "<!-- END retrieval -->"


def set_threads(n: int) -> None:
    import faiss
    import torch

    import gridmatch as gm

    gm.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    torch.set_num_threads(n)


VECTOR_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)


def vector_extensions() -> str:
    """The CPU's vector extensions that matter here (from /proc/cpuinfo's flags)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return ", ".join(f for f in VECTOR_FLAGS if f in have) or "none listed"
    except OSError:
        pass
    return "unknown"


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


def peak_note(kernel: str) -> str:
    """What the per-core f32 peak is on the machine kinds these runs have had (no
    hardware counters in these VMs: clocks measured with dependent-add chains)."""
    if kernel.startswith("AVX-512"):
        return (
            "about 208 GFLOP/s on an Intel Xeon with 2 AVX-512 FMA units, measured with an "
            "AVX-512 FMA loop; about 113 on the AVX-512 AMD EPYC (Zen 4)"
        )
    if kernel.startswith("AVX2"):
        return (
            "2 x 2 x 8 x 2.76 GHz = 88 GFLOP/s on the AVX2-only AMD EPYC, its clock "
            "measured with a chain of dependent adds"
        )
    return "not estimated for the portable kernel"


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


def gib(kib: int) -> str:
    return f"{kib / 2**20:.2f} GiB"


def report(info: dict, knn_rows: list, evs: list, mem: list, gemms: list) -> str:
    ev = evs[0]
    lines = [
        BEGIN,
        "## Retrieval: exact kNN and metrics (`benches/retrieval.py`)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores (vector extensions: "
        f"{info['vector']}; gridmatch's kernel: {info['kernel']}), {THREADS} threads on both sides "
        f"(`gm.set_num_threads(2)`, `faiss.omp_set_num_threads(2)`, "
        f"`torch.set_num_threads(2)`); {info['when']}; faiss {info['faiss']}, "
        f"pytorch-metric-learning {info['pml']}, torch {info['torch']}. Load average "
        f"{info['load_before']} (1, 5, 15 min) at the start, {info['load_after']} at the end"
        + (
            "; **a loaded machine**: wall times are inflated for both sides and CPU seconds "
            "(all threads of the process, `time.process_time`) are the steadier measure."
            if info["loaded"]
            else "; a quiet machine."
        )
        + f" Medians of {info['repeats']} alternating runs.",
        "",
        '### kNN: `gm.retrieval.knn(metric="ip")` vs `faiss.IndexFlatIP.search`, k = 10',
        "",
        "| queries x gallery x dim | faiss wall s | gridmatch wall s | speed-up (wall) "
        "| faiss CPU s | gridmatch CPU s | speed-up (CPU) | gridmatch GFLOP per CPU s "
        "| same indices |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in knn_rows:
        lines.append(
            f"| {r['n_q']:,} x {r['n_g']:,} x {r['d']} | {r['faiss_wall']:.2f} "
            f"| {r['gm_wall']:.2f} | **{r['faiss_wall'] / r['gm_wall']:.2f}x** "
            f"| {r['faiss_cpu']:.2f} | {r['gm_cpu']:.2f} "
            f"| {r['faiss_cpu'] / r['gm_cpu']:.2f}x | {r['gflop'] / r['gm_cpu']:.0f} "
            f"| {100 * r['same_indices']:.2f} % |"
        )
    lines += [
        "",
        "Differing indices are exact score ties or float32 rounding between two GEMMs "
        f"(largest score difference {max(r['max_score_diff'] for r in knn_rows):.1e}, on "
        "inner products of magnitude ~10-100). 'GFLOP per CPU s' counts the GEMM's "
        "2 n m d flops (the CPU's f32 FMA peak per core is FMA units x 2 x lanes x "
        f"clock: {peak_note(info['kernel'])}).",
        "",
        f"### Metrics: `gm.retrieval.evaluate` vs `AccuracyCalculator`, {ev['d']}-d",
        "",
        "AccuracyCalculator with precision_at_1, mean_average_precision_at_r and "
        'r_precision, `k="max_bin_count"` (its fast setting) or `k=None` (its default), '
        'and its default faiss kNN (L2); gridmatch with `metric="l2"`, '
        "also computing recall@1/5/10/20/50. Ids: about 5 embeddings per id, so R is small "
        "as on In-shop.",
        "",
        "| queries x gallery | AccuracyCalculator `k` | AccuracyCalculator wall s "
        "| gridmatch wall s | speed-up (wall) | AccuracyCalculator CPU s | gridmatch CPU s "
        "| speed-up (CPU) | of which faiss search, wall / CPU s "
        "| largest metric difference | MAP@R |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in evs:
        split = f"{e['faiss_wall']:.2f} / {e['faiss_cpu']:.2f}" if e.get("faiss_wall") else "-"
        lines.append(
            f"| {e['n']:,} x {e['n']:,} | `{e['pml_k']}` | {e['pml_wall']:.2f} "
            f"| {e['gm_wall']:.2f} | **{e['pml_wall'] / e['gm_wall']:.1f}x** "
            f"| {e['pml_cpu']:.2f} | {e['gm_cpu']:.2f} | {e['pml_cpu'] / e['gm_cpu']:.1f}x "
            f"| {split} | {e['max_metric_diff']:.1e} | {e['metrics']['map@r']:.4f} |"
        )
    lines += [
        "",
        "The largest metric difference is over precision@1, MAP@R and R-precision; "
        f"{ev['without_match']} of the {ev['n']:,} queries have no match and are excluded "
        "by both. With `k=None` (AccuracyCalculator's default) it ranks the whole gallery "
        "and holds several n x n matrices (int64 and float64), so that setting is timed "
        "at a smaller size: at 20k x 20k it would need well over 10 GiB.",
        "",
    ]
    if mem:
        n = mem[0]["n"]
        lines += [
            f"### Peak memory at {n:,} queries x {n:,} gallery x 128",
            "",
            "Each job in a fresh process that imports torch, faiss and gridmatch and builds "
            "the data (two 51 MB float32 matrices and the ids); then the peak-RSS counter is "
            "reset (`/proc/self/clear_refs`) and the job runs. 'Peak RSS' is the process's "
            "peak during the job (VmHWM, including the libraries and the data), 'before' "
            "its resident size just before, 'job's own' the difference.",
            "",
            "| job | peak RSS | before the job | job's own | seconds |",
            "|---|---|---|---|---|",
        ]
        for m in mem:
            if m.get("error"):
                lines.append(
                    f"| {m['label']} | **failed** at {gib(m['peak_kib'])}: `{m['error']}` "
                    f"| {gib(m['before_kib'])} | {gib(m['peak_kib'] - m['before_kib'])} "
                    f"| {m['seconds']:.1f} |"
                )
                continue
            lines.append(
                f"| {m['label']} | {gib(m['peak_kib'])} | {gib(m['before_kib'])} "
                f"| {gib(m['peak_kib'] - m['before_kib'])} | {m['seconds']:.1f} |"
            )
        lines.append("")
    elif info.get("old_memory"):
        # The table as it stands, with its first note (saying which run it is from).
        table, kept, note = info["old_memory"].partition("\n(Peak-memory table kept")
        note = kept.lstrip() + note.split("\n")[0] if kept else ""
        lines += [table.rstrip(), "", note or "(Peak-memory table kept from the previous run.)", ""]
    lines += goals(knn_rows, evs, mem, info.get("old_memory_goals", []))
    lines += [
        "Why gridmatch is faster: the score tiles are computed by gridmatch's own f32 "
        "micro-kernels (AVX-512: 8 query rows x 48 gallery rows, 24 zmm accumulators; AVX2 + "
        "FMA: 6 x 16, scanned in 6 x 32 blocks; chosen at run time, the `gemm` crate elsewhere)"
        " on packed panels (the gallery packed once, each chunk of 256 queries once), one tile "
        "per rayon task, and scanned while still in cache by a streaming top-k selector that "
        "skips 32 scores per vector compare. Every score is one sequential FMA chain, "
        "bit-identical across the kernels. faiss runs its BLAS sgemm on 4096 x 1024 blocks, "
        "then a separate heap pass over each block. `evaluate` needs no top-50 list per query: "
        "it scores each query's relevant items first (the same FMA chain, so bit-identical to "
        "the tiles), keeps only the top R per query for MAP@R and R-precision, and counts "
        "during the scan how many gallery items rank before the best relevant one, which is the"
        " exact rank of the first hit that recall@k and precision@1 need (when sum R is small "
        "next to the gallery; else it keeps the top max(max(ks), max R) as before). Nothing n x"
        " K is ever materialised. With AVX2, that rank-counting search first runs an exact "
        "integer prefilter: queries quantized to 7 bits and the gallery to 6 bits per vector, "
        "their products computed with `vpmaddubsw` (32 multiply-adds per instruction), and a "
        "rigorous bound on the difference to the float32 score (Cauchy-Schwarz on the "
        "quantization residuals plus the FMA chain's own rounding) drops every item that "
        "cannot reach the query's best R or rank before its best relevant item; the few "
        "others are scored by the same FMA chain, so the metrics are bit-for-bit those of "
        "the full scan (`src/retrieval/prefilter.rs`).",
        "",
    ]
    if gemms:
        lines += [
            "GEMM candidates (`examples/gemm_choice.rs`, `--gemm-choice`): single-thread "
            "GFLOPS of third-party GEMMs on the engine's tile shapes, best of 5 (the engine "
            "no longer calls them on AVX2 / AVX-512 CPUs; the `gemm` crate is its fallback)."
            "",
            "| tile (q x g x d) | " + " | ".join(dict.fromkeys(r["gemm"] for r in gemms)) + " |",
            "|---|" + "---|" * len(dict.fromkeys(r["gemm"] for r in gemms)),
        ]
        for shape in dict.fromkeys((r["m"], r["n"], r["k"]) for r in gemms):
            vals = [f"{r['gflops']:.0f}" for r in gemms if (r["m"], r["n"], r["k"]) == shape]
            lines.append(f"| {shape[0]} x {shape[1]} x {shape[2]} | " + " | ".join(vals) + " |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def old_memory_section() -> tuple[str, list[str]]:
    """The peak-memory table and goal lines of the current BENCHMARKS.md (kept when
    ``--no-memory`` skips those runs)."""
    import re

    from _common import BENCHMARKS

    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    block = re.search(re.escape(BEGIN) + "(.*?)" + re.escape(END), text, flags=re.S)
    if not block:
        return "", []
    body = block.group(1)
    table = re.search(r"(### Peak memory.*?)\n### Goals", body, flags=re.S)
    old_goals = [ln for ln in body.splitlines() if ln.startswith("- peak memory under 2 GiB")]
    return (table.group(1) if table else ""), old_goals


def goals(knn_rows: list, evs: list, mem: list, old_memory_goals=()) -> list[str]:
    """The issue's goals, met or not, from this run's numbers."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    out = ["### Goals", ""]
    for r in knn_rows:
        ratio = r["faiss_wall"] / r["gm_wall"]
        out.append(
            f"- kNN no slower than faiss at {r['d']}-d: {verdict(ratio >= 1)} "
            f"({ratio:.2f}x wall, {r['faiss_cpu'] / r['gm_cpu']:.2f}x CPU)."
        )
    for e in evs:
        ratio = e["pml_wall"] / e["gm_wall"]
        out.append(
            f"- evaluate >= 5x faster than AccuracyCalculator (`k={e['pml_k']}`, "
            f"{e['n']:,}): {verdict(ratio >= 5)} ({ratio:.1f}x)."
        )
    if evs and evs[0].get("faiss_wall"):
        e = evs[0]
        out.append(
            f"  AccuracyCalculator's own faiss search (`IndexFlatL2`, k = max_bin_count) "
            f"takes {e['faiss_wall']:.2f} s of its {e['pml_wall']:.2f} s (wall; CPU "
            f"{e['faiss_cpu']:.2f} of {e['pml_cpu']:.2f} s): the rest is its torch metric "
            "code. gridmatch's whole evaluation costs "
            f"{e['gm_cpu']:.2f} CPU s, {2 * e['n'] ** 2 * e['d'] / 1e9 / e['gm_cpu']:.0f} "
            "GFLOP per CPU second counting the 2 n m d flops of the score GEMM alone."
        )
    for m in mem:
        if m["job"].endswith("evaluate") or m["job"].endswith("knn"):
            ok = not m.get("error") and m["peak_kib"] < 2 * 2**20
            out.append(
                f"- peak memory under 2 GiB at 100k x 100k, {m['label']}: {verdict(ok)} "
                f"({gib(m['peak_kib'])} peak{', then failed' if m.get('error') else ''})."
            )
    out += list(old_memory_goals) if not mem else []
    out.append("")
    return out


def write_section(text: str) -> None:
    replace_block("retrieval", text)


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
