"""Run the headline benchmarks (README's table) one after another: ``make bench``.

Each job is one of the scripts beside this file, run in its own process; every script
writes its own section of BENCHMARKS.md, with the machine, its vector extensions, the
sizes, the threads and the load average at its start. A headline figure must come from a
quiet machine (load average below 1 on 2 cores), so before each job this waits up to
``--wait`` seconds for the 1-minute load average to fall below ``--quiet``, and says so
when it does not (the script's own record then shows the load it ran under).

Usage: ``python benches/run_all.py [JOB ...]`` (default: every job; ``--list`` names
them). The long studies (GSN quality tables, kernel-search protocols, memory at 100k)
are not headline jobs: run their scripts directly (see each script's ``--help``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: job name -> (script and arguments, what it measures)
JOBS: dict[str, tuple[list[str], str]] = {
    "gram": (
        ["kernel_search.py", "--skip", "throughput", "learning", "protocol"],
        "paper-kernel Gram vs vectorised numpy (real MNIST pixels and random data)",
    ),
    "svm": (["svm.py"], "SVC fit / predict vs scikit-learn, Fashion-MNIST 5k / 10k / 20k"),
    "retrieval": (
        ["retrieval.py", "--no-memory"],
        "exact kNN vs faiss IndexFlatIP; evaluate vs pytorch-metric-learning",
    ),
    "index": (
        ["index.py"],
        "Index(backend='faiss') vs faiss directly, 1M x 128: build, query, recall@10",
    ),
    "throughput": (
        ["kernel_search.py", "--skip", "speed", "learning", "protocol"],
        "kernel-search candidates per minute (paper protocol)",
    ),
    "gsn-speed": (["gsn.py", "--skip-quality"], "GSN training step vs a PyTorch eager loop"),
    "executors": (
        ["search_executors.py"],
        "kernel-search candidates per minute in-process vs Ray (1, 2 CPUs); Ray's overhead",
    ),
    "images": (
        ["images.py"],
        "ImageLoader vs DataLoader(num_workers=2) + torchvision v2, generated 256-px JPEGs",
    ),
    "gsn-disk": (
        ["gsn_disk.py"],
        "GSN ResNet-18 training steps/s and embedding from JPEGs vs PyTorch + DataLoader",
    ),
    "photo-quality": (
        ["photo_quality.py"],
        "GSN retrieval quality vs raw pixels / untrained net, generated In-shop-layout photos",
    ),
    "memory-stream": (
        ["memory.py", "--stream"],
        "GSN embed / fit (fixed steps) peak RSS over 5k and 50k generated JPEGs",
    ),
}


def wait_until_quiet(limit: float, wait: float) -> float:
    """Poll the 1-minute load average until it is below ``limit`` or ``wait`` s passed."""
    deadline = time.monotonic() + wait
    load = os.getloadavg()[0]
    while load >= limit and time.monotonic() < deadline:
        time.sleep(10)
        load = os.getloadavg()[0]
    return load


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jobs", nargs="*", help="jobs to run (default: all)")
    ap.add_argument("--list", action="store_true", help="name the jobs and exit")
    ap.add_argument("--quiet", type=float, default=1.0, help="load average counted as quiet")
    ap.add_argument("--wait", type=float, default=300.0, help="seconds to wait for quiet")
    args = ap.parse_args()
    if args.list:
        for name, (cmd, what) in JOBS.items():
            print(f"{name:12s} {what}  [{' '.join(cmd)}]")
        return 0
    unknown = [j for j in args.jobs if j not in JOBS]
    if unknown:
        ap.error(f"unknown job(s) {unknown}; choose from {sorted(JOBS)}")
    failed = []
    for name in args.jobs or list(JOBS):
        cmd, what = JOBS[name]
        load = wait_until_quiet(args.quiet, args.wait)
        label = "quiet" if load < args.quiet else f"NOT quiet (limit {args.quiet})"
        print(f"== {name}: {what}\n   load average {load:.2f} at start: {label}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]], cwd=HERE.parent)
        print(f"   {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
