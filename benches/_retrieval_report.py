"""The write-up of benches/retrieval.py: its BENCHMARKS.md section and goal lines."""

from __future__ import annotations

import re

from _common import BENCHMARKS, replace_block

#: Threads on every side of the comparison.
THREADS = 2
BEGIN, END = "<!-- BEGIN retrieval -->", "<!-- END retrieval -->"


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
