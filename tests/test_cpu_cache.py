"""The CPU caching allocator (gridmatch._core.CpuCacheWindow): what libtorch computes is
unchanged, the pool is used while a window is open and freed when it closes, and live +
pooled bytes stay within twice the largest live total reached."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _gsn_photos import gsn
from test_gsn_catalogue import product_photos

from gridmatch import _core


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    return product_photos(tmp_path_factory.mktemp("photos-cache"), n_products=6, views=3)


def test_torch_results_in_a_window_equal_numpy_and_outlive_it():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    expect = a.astype(np.float64) @ a.T.astype(np.float64)
    before = _core.cpu_cache_stats()
    with _core.CpuCacheWindow():
        for _ in range(4):  # 300 x 300 x 4 B = 352 KiB products: pooled and reused
            t = torch.from_numpy(a)
            got = (t @ t.T).numpy().astype(np.float64)
            np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-3)
        kept = torch.from_numpy(a) @ torch.from_numpy(a).T  # lives on after the window
        inside = _core.cpu_cache_stats()
    after = _core.cpu_cache_stats()
    assert inside["windows"] == before["windows"] + 1
    assert inside["hits"] >= before["hits"] + 3, (before, inside)
    assert after["windows"] == before["windows"] and after["pooled_bytes"] == 0, after
    np.testing.assert_allclose(kept.numpy(), expect, rtol=1e-4, atol=1e-3)
    del kept  # freed by libtorch's own path now (the window is closed)


def test_windows_nest_and_the_pool_is_freed_by_the_last():
    with _core.CpuCacheWindow():
        x = torch.ones(1 << 18)  # 1 MiB
        with _core.CpuCacheWindow() as inner:
            assert _core.cpu_cache_stats()["windows"] == 2
            with inner:  # re-entering an open window object is a no-op
                assert _core.cpu_cache_stats()["windows"] == 2
        del x
        assert _core.cpu_cache_stats()["pooled_bytes"] >= 1 << 20  # kept for reuse
    s = _core.cpu_cache_stats()
    assert s["windows"] == 0 and s["pooled_bytes"] == 0, s


def size_class(n: int) -> int:
    """The pool's size class of an n-byte request: n rounded up to a multiple of 1/16 of
    its highest power of two."""
    step = (1 << (n.bit_length() - 1)) // 16
    return -(-n // step) * step


def test_the_pool_stays_within_twice_the_largest_live_total():
    """Sizes 1..40 MiB, each freed before the next: without a bound the pool would hold
    every one of them (820 MiB); live + pooled bytes stay within twice the largest live
    total (here the largest block so far), older classes being freed first."""
    mib = 1 << 20
    before = _core.cpu_cache_stats()
    peak = 0
    with _core.CpuCacheWindow():
        for k in range(1, 41):
            t = torch.empty(k * mib // 4)  # k MiB of float32
            t.fill_(1.0)
            peak = max(peak, size_class(k * mib))
            del t
            pooled = _core.cpu_cache_stats()["pooled_bytes"]
            assert size_class(k * mib) <= pooled <= 2 * peak, (k, pooled)
        s = _core.cpu_cache_stats()
    assert s["evicted_bytes"] - before["evicted_bytes"] > 500 * mib, (before, s)
    assert s["pooled_bytes"] <= 2 * peak


def test_embed_and_fit_are_bit_identical_without_the_pool(cat, monkeypatch):
    """The pool changes where blocks come from, never a value: training and embedding a
    catalogue with it (the default) and with GRIDMATCH_CPU_CACHE=0 agree bit for bit,
    and the default run served requests from the pool."""
    kw = dict(epochs=2, steps_per_epoch=3, lr=3e-3, batch_size=12)
    hits = _core.cpu_cache_stats()["hits"]
    a = gsn(**kw).fit(cat)
    ea = a.embed(cat, batch_size=4)
    assert _core.cpu_cache_stats()["hits"] > hits
    monkeypatch.setenv("GRIDMATCH_CPU_CACHE", "0")
    hits = _core.cpu_cache_stats()["hits"]
    b = gsn(**kw).fit(cat)
    eb = b.embed(cat, batch_size=4)
    assert _core.cpu_cache_stats()["hits"] == hits  # switched off: no request pooled
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    np.testing.assert_array_equal(ea, eb)
    assert _core.cpu_cache_stats()["windows"] == 0


def test_windows_on_several_threads_at_once_change_no_result(cat):
    """Two threads embed with two networks while a third computes with torch (its CPU
    tensors go through the pool while a window is open): every result equals the one
    computed alone, and the pool is freed when the last window closes."""
    import threading

    nets = [gsn(seed=s).fit(cat) for s in (1, 2)]
    rng = np.random.default_rng(1)
    X = rng.random((40, 3, 32, 32), dtype=np.float32)
    alone = [n.embed(X, batch_size=8) for n in nets]
    a = torch.from_numpy(rng.standard_normal((256, 256)).astype(np.float32))
    product = a @ a
    got: dict = {}
    errors: list = []

    def embed(k):
        try:
            got[k] = [nets[k].embed(X, batch_size=8) for _ in range(5)]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def torch_work():
        try:
            got["torch"] = [a @ a for _ in range(50)]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=embed, args=(k,)) for k in (0, 1)]
    threads.append(threading.Thread(target=torch_work))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for k in (0, 1):
        for e in got[k]:
            np.testing.assert_array_equal(e, alone[k])
    for p in got["torch"]:
        torch.testing.assert_close(p, product)  # a wrong block would be far off
    s = _core.cpu_cache_stats()
    assert s["windows"] == 0 and s["pooled_bytes"] == 0, s
