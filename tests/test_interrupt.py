"""Ctrl-C (SIGINT) during long fits and searches returns control within 2 seconds."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

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
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigint_returns_control_promptly(case):
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(CASES[case])
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # well inside the work
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        line = proc.stdout.readline().strip()
        elapsed = time.perf_counter() - sent
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert elapsed < 2.0, (line, elapsed)
    if case == "svc":
        assert line == "interrupted", line
    else:
        assert line == "partial True True", line
