"""The ArcFace proxy loss against pytorch-metric-learning's ``ArcFaceLoss``: values and
gradients (embeddings and proxies) with the same weights, its initial proxies, and its
parameters' checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gridmatch as gm
from gridmatch import _core

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")


def case(seed, n, dim, classes, dtype=torch.float64):
    """Unnormalised embeddings, standard-normal proxies ``(classes, dim)``, labels."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, dim, generator=g, dtype=dtype) * 3
    proxies = torch.randn(classes, dim, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (n,), generator=g)
    return emb, labels, proxies


def ours(emb, labels, proxies, **params):
    spec = json.dumps({"name": "arcface", **params})
    return _core._loss_and_grad(spec, emb, labels, proxies)


def pml(emb, labels, proxies, **params):
    """pml's loss with ``W = proxies.T``; its value and gradients (proxies' layout)."""
    loss = pml_losses.ArcFaceLoss(proxies.shape[0], proxies.shape[1], **params)
    loss.W = torch.nn.Parameter(proxies.T.clone())
    e = emb.clone().requires_grad_(True)
    value = loss(e, labels)
    value.backward()
    return float(value.detach()), e.grad, loss.W.grad.T


def past_the_bend(emb, labels, proxies, margin):
    """How many samples are at more than ``180° − margin`` from their proxy."""
    e = torch.nn.functional.normalize(emb)
    w = torch.nn.functional.normalize(proxies)
    cos = (e * w[labels]).sum(1)
    return int((torch.rad2deg(torch.acos(cos)) > 180 - margin).sum())


@pytest.mark.parametrize(
    ("seed", "n", "dim", "classes", "params"),
    [
        (0, 16, 8, 5, {"margin": 28.6, "scale": 64.0}),
        (1, 24, 32, 12, {"margin": 28.6, "scale": 64.0}),
        (2, 10, 4, 3, {"margin": 2.0, "scale": 10.0}),
        (3, 12, 6, 20, {"margin": 0.0, "scale": 1.0}),
        (4, 30, 3, 4, {"margin": 100.0, "scale": 16.0}),
    ],
)
def test_arcface_matches_pml_in_float64(seed, n, dim, classes, params):
    emb, labels, proxies = case(seed, n, dim, classes)
    value, g_emb, g_proxies = ours(emb, labels, proxies, **params)
    ref, r_emb, r_proxies = pml(emb, labels, proxies, **params)
    assert value == pytest.approx(ref, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(g_emb, r_emb, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g_proxies, r_proxies, rtol=1e-9, atol=1e-12)
    if params["margin"] == 100.0:
        # both branches of the target logit are exercised
        assert 0 < past_the_bend(emb, labels, proxies, 100.0) < n


def test_arcface_matches_pml_in_float32_with_the_defaults():
    emb, labels, proxies = case(5, 64, 128, 40, torch.float32)
    value, g_emb, g_proxies = ours(emb, labels, proxies, margin=28.6, scale=64.0)
    ref, r_emb, r_proxies = pml(emb, labels, proxies)  # pml's defaults: 28.6, 64
    assert g_emb.dtype == torch.float32
    assert value == pytest.approx(ref, rel=1e-5)
    torch.testing.assert_close(g_emb, r_emb, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(g_proxies, r_proxies, rtol=1e-4, atol=1e-6)


def test_arcface_gradient_stays_finite_on_the_proxy():
    """An embedding exactly on its proxy (cos θ = 1) gives pml a NaN gradient; ours is
    finite and the value is still pml's."""
    emb, labels, proxies = case(6, 6, 8, 3)
    emb[0] = proxies[labels[0]] * 2
    value, g_emb, g_proxies = ours(emb, labels, proxies, margin=28.6, scale=64.0)
    ref, r_emb, _ = pml(emb, labels, proxies)
    assert value == pytest.approx(ref, rel=1e-12)
    assert torch.isfinite(g_emb).all() and torch.isfinite(g_proxies).all()
    assert not torch.isfinite(r_emb[0]).all()
    torch.testing.assert_close(g_emb[1:], r_emb[1:], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 7])
def test_initial_proxies_are_pmls_weights(seed):
    torch.manual_seed(seed)
    ref = pml_losses.ArcFaceLoss(num_classes=11, embedding_size=6).W.detach()
    got = _core._arcface_proxies(11, 6, seed)
    assert got.shape == (11, 6) and got.dtype == torch.float32
    torch.testing.assert_close(got, ref.T, rtol=0, atol=0)


def test_arcface_object_spec_and_name():
    from sklearn.base import clone

    obj = gm.losses.resolve("arcface")
    assert isinstance(obj, gm.losses.ArcFace) and not obj.is_grid and obj.needs_proxies
    assert obj.spec() == {"name": "arcface", "margin": 28.6, "scale": 64.0}
    small = gm.losses.ArcFace(margin=5, scale=30)
    assert clone(small) == small and gm.losses.from_spec(small.spec()) == small
    assert not any(gm.losses.resolve(n).needs_proxies for n in gm.losses.NAMES if n != "arcface")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"margin": 180}, r"margin must be .*in \[0, 180\)"),
        ({"margin": -1}, r"margin must be .*in \[0, 180\)"),
        ({"margin": float("nan")}, r"margin must be .*in \[0, 180\)"),
        ({"margin": "x"}, "margin must be"),
        ({"scale": 0}, "scale must be > 0"),
        ({"scale": float("inf")}, "scale must be finite"),
    ],
)
def test_bad_arcface_parameters_are_config_errors(params, match):
    with pytest.raises(gm.ConfigError, match=match):
        gm.losses.ArcFace(**params).spec()
    # the core checks a spec too
    if not isinstance(params.get("margin"), str):
        spec = {"margin": 28.6, "scale": 64.0, **params}
        emb, labels, proxies = case(0, 4, 3, 2)
        with pytest.raises(gm.ConfigError, match=list(params)[0]):
            ours(emb, labels, proxies, **spec)


def test_bad_arcface_inputs_are_clear_errors():
    emb, labels, proxies = case(0, 4, 3, 2)
    with pytest.raises(gm.ShapeError, match=r"class indices in 0\.\.2"):
        ours(emb, labels + 1, proxies, margin=28.6, scale=64.0)
    with pytest.raises(gm.ShapeError, match="same dim"):
        ours(emb[:, :2], labels, proxies, margin=28.6, scale=64.0)
    with pytest.raises(gm.ShapeError, match="int64"):
        ours(emb, labels.int(), proxies, margin=28.6, scale=64.0)
    spec = json.dumps({"name": "arcface", "margin": 28.6, "scale": 64.0})
    with pytest.raises(gm.ConfigError, match="arcface loss needs proxies"):
        _core._loss_and_grad(spec, emb, labels)
    with pytest.raises(gm.ConfigError, match="triplet loss takes no proxies"):
        _core._loss_and_grad(json.dumps({"name": "triplet", "margin": 0.2}), emb, labels, proxies)


def test_arcface_trains_its_proxies_with_the_network():
    # ids = MNIST classes: one proxy per class, learned beside the head; the embeddings
    # of held-out images then retrieve their class far better than the untrained ones
    X, y = gm.datasets.load("mnist", "train")
    keep = np.isin(y, [0, 1, 5, 8])
    X, y = X[keep][:1400], y[keep][:1400].astype(np.int64)
    kw = dict(dim=16, batch_size=32, grid=(2, 2), steps_per_epoch=15, progress=False, seed=0)
    kw.update(device="cpu", augment=0.0, lr=3e-3)
    net = gm.GridSearchNetwork(loss=gm.losses.ArcFace(margin=20.0, scale=16.0), epochs=3, **kw)
    net.fit(X[:1000], y[:1000])
    losses = [h["loss"] for h in net.history_]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.6 * losses[0], losses
    untrained = gm.GridSearchNetwork(epochs=0, **kw).fit(X[:1000], y[:1000])

    def recall1(model):
        E = model.embed(X[1000:])
        ev = gm.retrieval.evaluate(E, y[1000:], E, y[1000:], ks=(1,), exclude_self=True)
        return ev["recall@1"], ev["map@r"]

    (r_t, m_t), (r_0, m_0) = recall1(net), recall1(untrained)
    assert m_t > m_0 + 0.2 and r_t >= r_0, (r_t, m_t, r_0, m_0)
