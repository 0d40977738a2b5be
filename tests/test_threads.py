"""Two Python threads running gridmatch work at once get the results they get alone
(the GIL is released during the work, and nothing is shared between the calls)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np

import gridmatch as gm


def run_in_threads(jobs):
    out = [None] * len(jobs)
    errors = []

    def work(i, job):
        try:
            out[i] = job()
        except BaseException as e:  # noqa: BLE001 - re-raised below in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return out


def test_two_svm_fits_at_once_match_sequential_fits():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 20)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    Xt = rng.normal(size=(100, 20)).astype(np.float32)

    def job(kernel, C):
        return lambda: gm.svm.SVC(kernel=kernel, C=C).fit(X, y).decision_function(Xt)

    jobs = [job("rbf", 1.0), job("poly", 10.0)]
    alone = [j() for j in jobs]
    together = run_in_threads(jobs)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def test_two_gsn_fits_at_once_match_sequential_fits():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(64, 28, 28), dtype=np.uint8)
    ids = np.arange(64)

    def job(seed):
        def run():
            net = gm.GridSearchNetwork(
                dim=16, epochs=1, steps_per_epoch=3, batch_size=16, seed=seed, progress=False
            )
            return net.fit(X, ids).embed(X[:8])

        return run

    jobs = [job(0), job(1)]
    alone = [j() for j in jobs]
    together = run_in_threads(jobs)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def test_knn_in_threads_matches():
    rng = np.random.default_rng(2)
    Q = rng.normal(size=(300, 32)).astype(np.float32)
    G = rng.normal(size=(2000, 32)).astype(np.float32)
    jobs = [lambda: gm.retrieval.knn(Q, G, 5), lambda: gm.retrieval.knn(G[:300], G, 5)]
    alone = [j() for j in jobs]
    together = run_in_threads(jobs)
    for (sa, ia), (sb, ib) in zip(alone, together):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(sa, sb)


def test_two_threads_sharing_one_model_do_not_deadlock():
    # One thread embeds (the model is busy, the GIL released; the call takes the GIL
    # back every 25 ms to check for Ctrl-C) while another asks for the same model. The
    # waiting thread must not hold the GIL: it did, and both hung. Run in a child
    # process so that a deadlock fails this test instead of hanging the suite.
    code = textwrap.dedent(
        """
        import threading
        import numpy as np
        import gridmatch as gm

        rng = np.random.default_rng(2)
        X = rng.integers(0, 256, size=(4000, 28, 28), dtype=np.uint8)
        net = gm.GridSearchNetwork(
            dim=16, epochs=1, steps_per_epoch=2, batch_size=16, seed=0, progress=False
        ).fit(X[:64], np.arange(64))
        alone = net.embed(X)
        out = [None, None]

        def work(i):
            out[i] = net.embed(X)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        devices = {net.model_.device for _ in range(20)}  # waits on the model too
        for t in threads:
            t.join()
        assert devices == {"cpu"}, devices
        assert all(np.array_equal(o, alone) for o in out)
        print("ok", flush=True)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
