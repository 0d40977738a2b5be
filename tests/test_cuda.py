"""CUDA against CPU: the same results on the GPU as on the CPU.

Skipped where libtorch sees no CUDA device (CI has none); ``benches/gpu.sh`` runs this
file on the GPU host. Exact comparisons use data whose inner products are exact in
float32 (multiples of 1/4 in 16 dimensions), so ties are true ties on both devices.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch

import gridmatch as gm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def coarse(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    """Embeddings on a 1/4 grid with many exact duplicates: exact float32 products."""
    rng = np.random.default_rng(seed)
    E = np.round(rng.normal(size=(n, d)) * 4) / 4
    E[n // 2 : n // 2 + n // 10] = E[: n // 10]  # exact duplicates: tied scores
    return E.astype(np.float32)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_knn_on_cuda_equals_cpu_with_ties(metric, exclude_self):
    E = coarse(1500)
    cpu = gm.retrieval.knn(E, E, 12, metric=metric, exclude_self=exclude_self)
    gpu = gm.retrieval.knn(E, E, 12, metric=metric, exclude_self=exclude_self, device="cuda")
    np.testing.assert_array_equal(gpu[1], cpu[1])  # ties to the lower index on both
    np.testing.assert_array_equal(gpu[0], cpu[0])
    if exclude_self:
        assert not (cpu[1] == np.arange(len(E))[:, None]).any()


def test_knn_on_cuda_with_cuda_tensors_returns_cuda_tensors():
    E = coarse(800, seed=1)
    Et = torch.from_numpy(E).cuda()
    s, i = gm.retrieval.knn(Et, Et, 5, device="cuda")
    assert s.device.type == "cuda" and i.device.type == "cuda"
    ref_s, ref_i = gm.retrieval.knn(E, E, 5)
    np.testing.assert_array_equal(i.cpu().numpy(), ref_i)
    np.testing.assert_allclose(s.cpu().numpy(), ref_s, rtol=1e-6)


@pytest.mark.parametrize("metric", ["ip", "l2"])  # exact scores on both devices
def test_evaluate_on_cuda_equals_cpu(metric):
    E = coarse(2000, seed=2)
    ids = np.arange(2000) % 300
    kw = dict(ks=(1, 5, 10, 20), metric=metric, exclude_self=True)
    cpu = gm.retrieval.evaluate(E, ids, E, ids, **kw)
    gpu = gm.retrieval.evaluate(E, ids, E, ids, device="cuda", **kw)
    assert gpu.keys() == cpu.keys()
    for k in cpu:
        assert gpu[k] == pytest.approx(cpu[k], rel=1e-12, abs=1e-12), k


@pytest.fixture(scope="module")
def images():
    X, _ = gm.datasets.load_sample("fashion-mnist", "train")
    return X[:300], np.arange(300) // 3


def test_gsn_initialisation_is_the_same_on_cuda_and_cpu(images):
    X, ids = images
    kw = dict(dim=32, epochs=0, seed=3, progress=False)
    cpu = gm.GridSearchNetwork(device="cpu", **kw).fit(X, ids)
    gpu = gm.GridSearchNetwork(device="cuda", **kw).fit(X, ids)
    assert gpu.model_.device.startswith("cuda") and cpu.model_.device == "cpu"
    np.testing.assert_allclose(gpu.embed(X[:50]), cpu.embed(X[:50]), atol=1e-3)


@pytest.mark.parametrize("mode", ["batch", "stitched"])
def test_gsn_trains_on_cuda_and_loads_on_cpu(images, mode):
    X, ids = images
    gsn = gm.GridSearchNetwork(
        dim=32,
        epochs=3,
        steps_per_epoch=20,
        batch_size=32,
        mode=mode,
        device="cuda",
        seed=0,
        progress=False,
    ).fit(X, ids)
    assert gsn.model_.device.startswith("cuda")
    losses = [h["loss"] for h in gsn.history_]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    E = gsn.embed(X[:40])
    assert isinstance(E, np.ndarray) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=1e-5)
    Et = gsn.embed(torch.from_numpy(X[:40]).cuda())  # CUDA tensors in, CUDA tensors out
    assert Et.device.type == "cuda"
    np.testing.assert_array_equal(Et.cpu().numpy(), E)
    with tempfile.TemporaryDirectory() as d:
        gsn.save(d)
        back = gm.GridSearchNetwork.load(d, device="cpu")
        again = gm.GridSearchNetwork.load(d)  # the saved device
    assert back.model_.device == "cpu" and again.model_.device.startswith("cuda")
    np.testing.assert_allclose(back.embed(X[:40]), E, atol=1e-3)
    np.testing.assert_allclose(again.embed(X[:40]), E, atol=1e-5)


def test_gsn_same_seed_same_model_on_cuda(images):
    X, ids = images
    kw = dict(dim=16, epochs=1, steps_per_epoch=5, batch_size=16, device="cuda", progress=False)
    a = gm.GridSearchNetwork(seed=1, **kw).fit(X, ids).embed(X[:20])
    b = gm.GridSearchNetwork(seed=1, **kw).fit(X, ids).embed(X[:20])
    c = gm.GridSearchNetwork(seed=2, **kw).fit(X, ids).embed(X[:20])
    np.testing.assert_allclose(a, b, atol=1e-5)  # cuDNN may pick other algorithms
    assert not np.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_gsn_mixed_precision_on_cuda(images, precision, dtype):
    """16-bit autocast on the GPU: features as PyTorch's ``torch.autocast("cuda")``
    computes them, and training (fp16 with its loss scaler) converges."""
    X, ids = images
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    ).eval()
    kw = dict(backbone=m, dim=16, normalize=None, device="cuda", progress=False)
    gsn = gm.GridSearchNetwork(epochs=0, precision=precision, **kw).fit(X, ids)
    x = torch.from_numpy(X[:64, None].astype(np.float32) / 255).cuda()
    with torch.no_grad():
        ref32 = m.cuda()(x).float().cpu().numpy()
        with torch.autocast("cuda", dtype=dtype):
            ref16 = m(x).float().cpu().numpy()
    rounding = np.abs(ref16 - ref32).max()
    assert rounding > 0
    np.testing.assert_allclose(gsn.features(X[:64]), ref16, rtol=0, atol=0.1 * rounding)
    trained = gm.GridSearchNetwork(
        epochs=3, steps_per_epoch=10, batch_size=32, lr=3e-3, precision=precision, **kw
    ).fit(X, ids)
    losses = [h["loss"] for h in trained.history_]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    if precision == "fp16":  # at most the first steps overflow at scale 2^16
        assert sum(h["overflow_steps"] for h in trained.history_) <= 3, trained.history_
