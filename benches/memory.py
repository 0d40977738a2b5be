"""Peak memory of SVC.fit (against cache_size + data + model), of kNN / evaluate at
100,000 queries x 100,000 gallery items (d = 128, float32), and of a Grid Search
Network's ``embed`` and ``fit`` (fixed steps) streaming catalogues of 5,000 and 50,000
generated JPEGs (``--stream``: its own section, ``memory-stream``).

Every case runs in a fresh Python process: it imports gridmatch, builds its data, records
its resident size (VmRSS), resets the kernel's peak counter (``/proc/self/clear_refs``)
and runs the job; the job's own peak is VmHWM minus the resident size before. The
results replace the ``memory`` section of BENCHMARKS.md.

Usage::

    python benches/memory.py            # SVC, kNN, evaluate (about 5 minutes on 2 cores)
    python benches/memory.py --quick    # small sizes, does not touch BENCHMARKS.md
    python benches/memory.py --stream   # GSN over 5k / 50k JPEGs (+ --quick: 500 / 5k)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import cpu_name, replace_block, vector_extensions

BEGIN, END = "<!-- BEGIN memory -->", "<!-- END memory -->"
MIB = 2**20
#: Allowance for what a fit needs besides the cache, the data and the model (thread
#: stacks, per-problem solver vectors, allocator slack), in bytes.
CONSTANT = 64 * MIB


# ------------------------------------------------------------------ child side
def rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(spec: dict) -> dict:
    import gc
    import warnings

    import numpy as np

    import gridmatch as gm

    gm.set_num_threads(spec.get("threads", 0))
    out: dict = {}
    if spec["job"] in ("gsn-embed", "gsn-fit"):
        return stream_child(spec)
    if spec["job"] == "svc":
        X, y = gm.datasets.load("mnist", "train")
        n = spec["n"]
        X = X[:n].reshape(n, -1).astype(np.float64) / 255.0
        y = y[:n]
        kernel = spec["kernel"]
        clf = gm.svm.SVC(kernel=kernel, cache_size=spec["cache_mb"])
        gc.collect()
        before = rss_bytes("VmRSS")
        exact = reset_peak()
        t0 = time.perf_counter()
        clf.fit(X, y)
        seconds = time.perf_counter() - t0
        peak = rss_bytes("VmHWM")
        model = (
            clf.support_vectors_.nbytes
            + clf.dual_coef_.nbytes
            + clf.support_.nbytes
            + clf.intercept_.nbytes
        )
        # What fit itself must hold besides the input X (float64, already resident): the
        # float32 copy the built-in kernels use; an expression kernel reads X itself.
        data = 0 if kernel not in gm.svm.BUILTIN_KERNELS else X.size * 4
        out = {
            "n": n,
            "d": X.shape[1],
            "kernel": kernel,
            "cache_mb": spec["cache_mb"],
            "data_bytes": data,
            "input_bytes": X.nbytes,
            "model_bytes": model,
            "n_sv": int(len(clf.support_)),
        }
    else:
        rng = np.random.default_rng(0)
        n, d = spec["n"], 128
        Eq = rng.standard_normal((n, d), dtype=np.float32)
        Eg = rng.standard_normal((n, d), dtype=np.float32)
        iq = rng.integers(0, n // 5, n)
        ig = rng.integers(0, n // 5, n)
        gc.collect()
        before = rss_bytes("VmRSS")
        exact = reset_peak()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if spec["job"] == "evaluate":
                gm.retrieval.evaluate(Eq, iq, Eg, ig)
            else:
                gm.retrieval.knn(Eq, Eg, 10)
        seconds = time.perf_counter() - t0
        peak = rss_bytes("VmHWM")
        out = {"n": n, "d": d, "data_bytes": Eq.nbytes + Eg.nbytes}
    out.update(
        job=spec["job"], before=before, peak=peak, own=peak - before, seconds=seconds, exact=exact
    )
    return out


#: Settings of the streaming cases: a small network and image size keep them short.
STREAM = {"image_size": 64, "dim": 64, "batch_size": 64, "steps": 20, "side": 96}


def stream_child(spec: dict) -> dict:
    """``embed`` or ``fit`` (``STREAM['steps']`` steps) over the first n files."""
    import gc

    import gridmatch as gm

    folder = Path(spec["folder"])
    n = spec["n"]
    paths = [folder / f"{i:05d}.jpg" for i in range(n)]
    cat = gm.datasets.ImageCatalogue(paths, [i // 2 for i in range(n)])
    net = gm.GridSearchNetwork(
        backbone="convnet",
        dim=STREAM["dim"],
        batch_size=STREAM["batch_size"],
        image_size=STREAM["image_size"],
        epochs=0,
        device="cpu",
        progress=False,
    ).fit(cat)
    output = 0
    gc.collect()
    before = rss_bytes("VmRSS")
    exact = reset_peak()
    t0 = time.perf_counter()
    if spec["job"] == "gsn-embed":
        E = net.embed(cat, batch_size=STREAM["batch_size"])
        output = E.nbytes
    else:
        net.set_params(epochs=1, steps_per_epoch=STREAM["steps"]).fit(cat)
    seconds = time.perf_counter() - t0
    peak = rss_bytes("VmHWM")
    return {
        "job": spec["job"],
        "n": n,
        "before": before,
        "peak": peak,
        "own": peak - before,
        "output_bytes": output,
        "seconds": seconds,
        "exact": exact,
        "whole_array_bytes": n * 3 * STREAM["image_size"] ** 2 * 4,
    }


#: Runs of each streaming case (medians reported).
STREAM_REPEATS = 3


def median_run(rs: list[dict]) -> dict:
    """The run with the median own peak beyond the output, with every run's value."""
    beyond = sorted(r["own"] - r["output_bytes"] for r in rs)
    mid = beyond[len(beyond) // 2]
    row = dict(next(r for r in rs if r["own"] - r["output_bytes"] == mid))
    row["all_beyond"] = [r["own"] - r["output_bytes"] for r in rs]
    row["seconds"] = sorted(r["seconds"] for r in rs)[len(rs) // 2]
    return row


def stream_files(folder: Path, n: int) -> None:
    """``n`` generated JPEGs (benches/images.py's products, ``STREAM['side']`` px) in
    ``folder``, kept between runs."""
    from images import fashion_images, render

    have = len(list(folder.glob("*.jpg"))) if folder.exists() else 0
    if have >= n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = folder / "_new"
    tmp.mkdir(exist_ok=True)
    for start in range(0, n, 5000):  # chunks: the products array stays small
        count = min(5000, n - start)
        for k, p in enumerate(render(fashion_images(count), tmp, seed=start, size=STREAM["side"])):
            p.replace(folder / f"{start + k:05d}.jpg")
    tmp.rmdir()
    print(f"generated {n} JPEGs in {time.perf_counter() - t0:.0f} s", flush=True)


def stream_section(rows: list[dict], load_before: str, load_after: str) -> list[str]:
    import gridmatch as gm

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    small, large = min(r["n"] for r in rows), max(r["n"] for r in rows)
    lines = [
        "<!-- BEGIN memory-stream -->",
        "## Memory of streaming `GridSearchNetwork` over photo catalogues "
        "(`benches/memory.py --stream`)",
        "",
        f"Machine: {cpu_name()} ({vector_extensions()}), {os.cpu_count()} cores; "
        f"gridmatch {gm.__version__}; {now}. "
        f"Load average {load_before} before and {load_after} after.",
        "",
        f"Generated JPEGs ({STREAM['side']} px, benches/images.py's Fashion-MNIST 'photos'), "
        f"catalogues of the first {small:,} and {large:,}; `backbone='convnet'`, "
        f"`image_size={STREAM['image_size']}`, `dim={STREAM['dim']}`, batches of "
        f"{STREAM['batch_size']}; `fit` runs {STREAM['steps']} steps (one epoch). Each case "
        "runs in a fresh process: the catalogue and the network are built, the peak counter "
        "is reset, then the job runs. 'Own peak' is VmHWM minus the resident size before; "
        "'beyond output' subtracts the embeddings `embed` returns. Goal: the own peak "
        f"beyond the output grows by less than 10 % from {small:,} to {large:,} images. "
        f"Each case ran {len(rows[0].get('all_beyond', [0]))} times (sizes alternating): "
        "the row is the run with the median 'beyond output' (every run's value in the "
        "last column), seconds the median.",
        "",
        "| job | images | whole catalogue as float32 | own peak | beyond output | seconds "
        "| beyond output, each run |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        each = ", ".join(mib(b) for b in r.get("all_beyond", [r["own"] - r["output_bytes"]]))
        lines.append(
            f"| `{r['job'].replace('gsn-', '')}` | {r['n']:,} | {mib(r['whole_array_bytes'])} | "
            f"{mib(r['own'])} | {mib(r['own'] - r['output_bytes'])} | {r['seconds']:.1f} "
            f"| {each} |"
        )
    lines.append("")
    for job in ("gsn-embed", "gsn-fit"):
        a = next(r for r in rows if r["job"] == job and r["n"] == small)
        b = next(r for r in rows if r["job"] == job and r["n"] == large)
        grow = (b["own"] - b["output_bytes"]) / max(1, a["own"] - a["output_bytes"]) - 1
        ok = "met" if grow < 0.10 else "**not met**"
        lines.append(f"- `{job[4:]}`: {grow:+.1%} from {small:,} to {large:,} images ({ok}).")
    lines += ["", "<!-- END memory-stream -->"]
    return lines


def main_stream(quick: bool, folder: Path | None) -> None:
    import tempfile

    sizes = (500, 5000) if quick else (5000, 50_000)
    folder = folder or Path(tempfile.gettempdir()) / f"gridmatch-stream-{STREAM['side']}px"
    stream_files(folder, sizes[1])
    load_before = load_average()
    # The peak includes one batch's transient working set and varies by tens of MiB
    # from run to run: each case runs STREAM_REPEATS times (sizes alternating), medians.
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(1 if quick else STREAM_REPEATS):
        for job in ("gsn-embed", "gsn-fit"):
            for n in sizes:
                r = run({"job": job, "n": n, "folder": str(folder), "threads": 0})
                runs.setdefault((job, n), []).append(r)
    rows = [median_run(rs) for rs in runs.values()]
    lines = stream_section(rows, load_before, load_average())
    print("\n".join(lines))
    if not quick:
        replace_block("memory-stream", "\n".join(lines))


# ----------------------------------------------------------------- parent side
def run(spec: dict) -> dict:
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if r.returncode != 0:
        raise SystemExit(f"{spec} failed:\n{r.stdout}\n{r.stderr}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(json.dumps(res), flush=True)
    return res


def mib(b: float) -> str:
    return f"{b / MIB:,.0f} MiB"


def gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def load_average() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def section(svc: list[dict], big: list[dict], load_before: str, load_after: str) -> list[str]:
    import gridmatch as gm

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        "## Memory (`benches/memory.py`)",
        "",
        f"Machine: {cpu_name()} ({vector_extensions()}), {os.cpu_count()} cores, "
        "gridmatch on all of them "
        f"(`gm.set_num_threads(0)`); gridmatch {gm.__version__}; {now}. Load average "
        f"(1, 5, 15 min) {load_before} before and {load_after} after: the machine was "
        "shared, which changes the seconds, not the memory.",
        "",
        "Each case runs in a fresh process that imports gridmatch and builds its data; the "
        "peak-RSS counter is then reset (`/proc/self/clear_refs`) and the job runs. "
        "'Job's own peak' is the peak resident size during the job (VmHWM) minus the "
        "resident size just before it.",
        "",
        "### `SVC.fit` against `cache_size`",
        "",
        "MNIST training images (first n, 784 features, float64 in [0, 1]), 10 classes. "
        "'Data' is what `fit` must hold besides its input: the float32 copy the built-in "
        "kernels read (an expression kernel reads the float64 input itself: nothing). "
        "'Model' is support vectors + coefficients. 'Bound' is "
        f"`cache_size + data + model + {mib(CONSTANT)}`.",
        "",
        "With a built-in kernel the peak follows `cache_size` up to the size of the "
        "within-class kernel blocks (here 10 x 1,000² x 4 B = 38 MiB for n = 10,000: a "
        "cache at least that large holds them all, a smaller one makes the solver compute "
        "rows on demand into an LRU cache of `cache_size`). Expression kernels "
        "(`gridmatch.expr`) work the same way: their rows are evaluated in Rust on demand "
        "and cached, so no n x n matrix is built (it would take n² x 8 bytes: 122 MiB at "
        "n = 4,000). A Python callable kernel still returns its whole Gram matrix.",
        "",
        "| kernel | n | cache_size | input X (resident) | data | model (n_SV) | job's own peak "
        "| bound | within | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for r in svc:
        bound = r["cache_mb"] * 1e6 + r["data_bytes"] + r["model_bytes"] + CONSTANT
        ok = r["own"] <= bound
        kernel = (
            "expression (paper's)" if r["kernel"] not in gm.svm.BUILTIN_KERNELS else r["kernel"]
        )
        lines.append(
            f"| {kernel} | {r['n']:,} | {r['cache_mb']} MB | {mib(r['input_bytes'])} | "
            f"{mib(r['data_bytes'])} | {mib(r['model_bytes'])} ({r['n_sv']:,}) | "
            f"{mib(r['own'])} | {mib(bound)} | {'yes' if ok else '**no**'} | "
            f"{r['seconds']:.1f} |"
        )
    lines += [
        "",
        f"### kNN and `evaluate` at {big[0]['n']:,} x {big[0]['n']:,} (d = 128, float32)",
        "",
        f"Random normal embeddings (two {mib(big[0]['data_bytes'] / 2)} matrices), "
        f"{big[0]['n'] // 5:,} ids. `knn` with k = 10; "
        "`evaluate` with its default ks = (1, 5, 10, 20, 50), cosine.",
        "",
        "| job | data | peak RSS of the process | job's own peak | under 2 GiB | seconds |",
        "|---|---:|---:|---:|:---:|---:|",
    ]
    for r in big:
        lines.append(
            f"| `{r['job']}` | {mib(r['data_bytes'])} | {gib(r['peak'])} | {mib(r['own'])} | "
            f"{'yes' if r['peak'] < 2 * 2**30 else '**no**'} | {r['seconds']:.1f} |"
        )
    lines += ["", END]
    return lines


def write_section(lines: list[str]) -> None:
    replace_block("memory", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small sizes, no BENCHMARKS.md")
    ap.add_argument(
        "--stream", action="store_true", help="only the GSN streaming cases (own section)"
    )
    ap.add_argument("--files", type=Path, default=None, help="folder of the generated JPEGs")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.stream:
        main_stream(args.quick, args.files)
        return
    load_before = load_average()
    n_svc, n_big = (2000, 20_000) if args.quick else (10_000, 100_000)
    svc = [
        run({"job": "svc", "kernel": "rbf", "n": n_svc, "cache_mb": c}) for c in (2, 20, 100, 400)
    ]
    for n_expr in (n_svc // 5, 2 * n_svc // 5):
        svc.append(
            run(
                {
                    "job": "svc",
                    "kernel": "norm1(min(sin(x * y), sin(dot(x, y))))",
                    "n": n_expr,
                    "cache_mb": 20,
                }
            )
        )
    big = [run({"job": job, "n": n_big}) for job in ("knn", "evaluate")]
    lines = section(svc, big, load_before, load_average())
    print("\n".join(lines))
    if not args.quick:
        write_section(lines)


if __name__ == "__main__":
    main()
