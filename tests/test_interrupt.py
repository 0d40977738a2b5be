"""Ctrl-C (SIGINT) during long fits and searches returns control within 2 seconds."""

from __future__ import annotations

import signal
import textwrap
import time

import pytest
from _subproc import Child

PRELUDE = """
import signal, sys, time, warnings
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
import gridmatch as gm
rng = np.random.default_rng(0)
"""

CASES = {
    # A 20000-sample, 10-class RBF problem: far more SMO work than the test waits.
    "svc": """
X = rng.normal(size=(20000, 200)).astype(np.float32)
y = rng.integers(0, 10, 20000)
print("ready", flush=True)
try:
    gm.svm.SVC(C=10.0).fit(X, y)
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
""",
    # A kernel search far longer than the test (small, fast steps): Ctrl-C after some
    # steps stops it with the partial result.
    "search": """
X = rng.random(size=(300, 20)).astype(np.float32)
y = rng.integers(0, 3, 300)
s = gm.search.KernelSearch(budget=100000, seed=0, progress=False)
print("ready", flush=True)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    try:
        s.fit(X[:200], y[:200], X[200:], y[200:])
        kinds = {type(x.message).__name__ for x in w}
        print("partial", s.result_.interrupted, "InterruptedWarning" in kinds, flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""",
    # GSN training far longer than the test (10,000 tiny epochs): Ctrl-C stops it and
    # keeps the model trained so far. In a child process, so that a regression cannot
    # abort the pytest run itself.
    "gsn": """
X = rng.integers(0, 256, size=(100, 28, 28), dtype=np.uint8)
ids = np.arange(100) % 20
gsn = gm.GridSearchNetwork(dim=16, batch_size=16, steps_per_epoch=2, epochs=10_000,
                           progress=False, grid=(2, 2))
print("ready", flush=True)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    try:
        gsn.fit(X, ids)
        kinds = {type(x.message).__name__ for x in w}
        print("partial", gsn.interrupted_, "InterruptedWarning" in kinds, flush=True)
        print("epochs", len(gsn.history_), gsn.embed(X[:2]).shape, flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigint_returns_control_promptly(case):
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(CASES[case])
    with Child(code) as child:
        assert child.line(timeout=120) == "ready"  # imports and data set-up
        time.sleep(1.5)  # well inside the work
        sent = time.perf_counter()
        child.proc.send_signal(signal.SIGINT)
        line = child.line(timeout=30)  # a regression fails here instead of hanging
        elapsed = time.perf_counter() - sent
        more = child.line(timeout=30) if case == "gsn" and line.startswith("partial") else ""
        code_, err = child.finish(timeout=60)
    assert code_ == 0, err
    assert elapsed < 2.0, (line, elapsed)
    if case == "svc":
        assert line == "interrupted", line
    else:
        assert line == "partial True True", line
    if case == "gsn":
        words = more.split(maxsplit=2)
        assert words[0] == "epochs" and 0 < int(words[1]) < 10_000, more
        assert words[2] == "(2, 16)", more
