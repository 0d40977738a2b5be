"""Kernel search benchmark: the paper's protocol, Gram speed and search throughput.

Writes the ``kernel_search`` section of BENCHMARKS.md.

Protocol (the paper's): train on the first N training images (N = 1000, 2000), validate
on the next 500, test on the 10k test set, pixels in [0, 1], C = 1. Standard kernels are
scikit-learn's SVC; the paper's kernel and the searched kernels are evaluated with
gridmatch (Gram matrices from the expression evaluator, gridmatch's SVM when present,
else scikit-learn's SVC on the precomputed Gram — the table says which).

Usage::

    python benches/kernel_search.py --budget 100 --seeds 3 --datasets mnist --sizes 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import gridmatch as gm

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN kernel_search -->", "<!-- END kernel_search -->"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_paper_gram(X: np.ndarray, Y: np.ndarray, chunk: int = 8) -> np.ndarray:
    """The paper's kernel, vectorised numpy (chunks of rows, broadcasting over pairs)."""
    d = X.shape[1]
    dots = np.sin(X @ Y.T / d)
    out = np.empty((len(X), len(Y)))
    for s in range(0, len(X), chunk):
        xy = np.sin(X[s : s + chunk, None, :] * Y[None, :, :])
        np.minimum(xy, dots[s : s + chunk, :, None], out=xy)
        out[s : s + chunk] = np.abs(xy).sum(-1)
    return out


def load(name: str, n_train: int):
    X, y = gm.datasets.load(name, "train")
    Xt, yt = gm.datasets.load(name, "test")
    X = X.reshape(len(X), -1).astype(np.float64) / 255.0
    Xt = Xt.reshape(len(Xt), -1).astype(np.float64) / 255.0
    return (
        (X[:n_train], y[:n_train]),
        (X[n_train : n_train + 500], y[n_train : n_train + 500]),
        (Xt, yt),
    )


def expr_test_accuracy(expr, tr, te) -> tuple[float, str]:
    """Test accuracy of an SVM (C=1) with an expression kernel."""
    svm = getattr(gm, "svm", None)
    if svm is not None and hasattr(svm, "SVC"):
        try:
            clf = svm.SVC(kernel=expr, C=1.0).fit(tr[0], tr[1])
            return float((clf.predict(te[0]) == te[1]).mean()), "gridmatch SVC"
        except (TypeError, ValueError) as e:  # SVC without expression kernels yet
            print("gridmatch SVC rejected the expression kernel:", e, file=sys.stderr)
    from sklearn.svm import SVC

    K = expr.gram(tr[0])
    clf = SVC(kernel="precomputed", C=1.0).fit(K, tr[1])
    return float((clf.predict(expr.gram(te[0], tr[0])) == te[1]).mean()), "sklearn precomputed"


def protocol(args) -> list[str]:
    from sklearn.svm import SVC

    lines = [
        "### Paper protocol (test accuracy %, 10k test images)",
        "",
        f"Search budget {args.budget} candidates (batch {args.batch_size}), "
        f"seeds {list(range(args.seeds))}; RL / random rows: mean ± std over seeds, and the "
        "test accuracy of each seed's best-on-validation kernel.",
        "",
        "| dataset | train | kernel | test acc % | notes |",
        "|---|---|---|---|---|",
    ]
    for name in args.datasets:
        for n in args.sizes:
            tr, va, te = load(name, n)
            rows = []
            std = {
                "linear": SVC(kernel="linear"),
                "rbf gamma=scale": SVC(kernel="rbf", gamma="scale"),
                "rbf gamma=auto (paper's RBF)": SVC(kernel="rbf", gamma="auto"),
                "poly (deg 3)": SVC(kernel="poly"),
                "sigmoid": SVC(kernel="sigmoid"),
            }
            for label, clf in std.items():
                t0 = time.perf_counter()
                acc = (clf.fit(*tr).predict(te[0]) == te[1]).mean()
                rows.append((label, 100 * acc, f"sklearn, {time.perf_counter() - t0:.1f} s"))
                print(name, n, label, acc, flush=True)
            paper = gm.expr.parse(gm.expr.PAPER_KERNEL)
            acc, how = expr_test_accuracy(paper, tr, te)
            rows.append((f"paper `{paper}`", 100 * acc, how))
            print(name, n, "paper", acc, flush=True)
            for controller in ("rl", "random"):
                accs, vals, exprs, thr = [], [], [], []
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    s = gm.search.KernelSearch(
                        controller=controller,
                        budget=args.budget,
                        batch_size=args.batch_size,
                        seed=seed,
                        progress=False,
                    ).fit(*tr, *va)
                    dt = time.perf_counter() - t0
                    thr.append(s.result_.n_unique / dt * 60)
                    acc, how = expr_test_accuracy(s.best_expr, tr, te)
                    accs.append(100 * acc)
                    vals.append(100 * s.best_score)
                    exprs.append(str(s.best_expr))
                    print(name, n, controller, seed, s.best_score, acc, s.best_expr, flush=True)
                best = int(np.argmax(vals))
                rows.append(
                    (
                        f"{controller} search, best of seed {best}: `{exprs[best]}`",
                        accs[best],
                        f"val {vals[best]:.1f}%",
                    )
                )
                rows.append(
                    (
                        f"{controller} search, mean ± std over {args.seeds} seeds",
                        float(np.mean(accs)),
                        f"± {np.std(accs):.2f}; {np.mean(thr):.0f} distinct candidates/min; {how}",
                    )
                )
            for label, acc, note in rows:
                lines.append(f"| {name} | {n} | {label} | {acc:.2f} | {note} |")
    return lines


def speed(args) -> list[str]:
    rng = np.random.default_rng(0)
    d = 784
    k = gm.expr.parse(gm.expr.PAPER_KERNEL)
    lines = [
        "### Paper kernel Gram matrix: gridmatch vs vectorised numpy (float64, d = 784)",
        "",
        "| size | gridmatch s | numpy s | speed-up | max rel. diff |",
        "|---|---|---|---|---|",
    ]
    for n, m in ((1000, 1000), (10000, 1000)):
        X = rng.random((n, d))
        Y = rng.random((m, d))
        reps = args.repeats if n <= 1000 else max(1, args.repeats // 3)
        t_gm = median_time(lambda X=X, Y=Y: k.gram(X, Y), args.repeats)
        np_reps = reps if n <= 1000 else 1
        t_np = median_time(lambda X=X, Y=Y: numpy_paper_gram(X, Y), np_reps)
        sub = slice(0, 50)
        diff = (
            np.abs(k.gram(X[sub], Y) - numpy_paper_gram(X[sub], Y)).max()
            / np.abs(numpy_paper_gram(X[sub], Y)).max()
        )
        lines.append(f"| {n}×{m} | {t_gm:.3f} | {t_np:.3f} | {t_np / t_gm:.1f}× | {diff:.1e} |")
        print(lines[-1], flush=True)
    return lines


def throughput(args) -> list[str]:
    tr, va, _ = load("mnist", 1000)
    out = []
    for controller in ("random", "rl"):
        t0 = time.perf_counter()
        s = gm.search.KernelSearch(
            controller=controller,
            budget=args.throughput_budget,
            batch_size=10,
            seed=0,
            progress=False,
        ).fit(*tr, *va)
        dt = time.perf_counter() - t0
        out.append(
            f"| {controller} | {args.throughput_budget} | {s.result_.n_unique} | "
            f"{s.result_.n_invalid} | {dt:.1f} | {s.result_.n_unique / dt * 60:.0f} |"
        )
        print(out[-1], flush=True)
    return [
        "### Search throughput (MNIST, 1000 train / 500 val, d = 784)",
        "",
        "| controller | sampled | distinct evaluated | invalid | seconds | distinct / min |",
        "|---|---|---|---|---|---|",
        *out,
    ]


def write_section(lines: list[str]) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    block = "\n".join([BEGIN, *lines, END])
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--sizes", nargs="+", type=int, default=[1000, 2000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--throughput-budget", type=int, default=40)
    p.add_argument("--skip", nargs="*", default=[], choices=["speed", "throughput", "protocol"])
    args = p.parse_args()
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = [
        "## Kernel search (`benches/kernel_search.py`)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"gridmatch threads {gm.get_num_threads()}, load average at start {load_avg:.1f} "
        "(shared machine: other builds/benchmarks ran concurrently). Times: median of "
        f"{args.repeats} runs unless noted.",
        "",
    ]
    body: list[str] = []
    if "speed" not in args.skip:
        body += speed(args) + [""]
    if "throughput" not in args.skip:
        body += throughput(args) + [""]
    if "protocol" not in args.skip:
        body += protocol(args) + [""]
    write_section(header + body)


if __name__ == "__main__":
    main()
