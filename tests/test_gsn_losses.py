"""Losses of the Grid Search Network: values and gradients against PyTorch references.

Each reference below is written independently of the Rust code (loops over pairs and
triplets where the Rust code is vectorised) and differentiated by torch.autograd.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gridmatch import _core

#: Each loss's parameters when a test does not set them (the values the test hook used
#: to default to).
HOOK_DEFAULTS = {
    "double-margin": {"hi": 0.9, "lo": 0.0, "balance": False},
    "grid-softmax": {"temperature": 0.1},
    "triplet": {"margin": 0.2},
    "contrastive": {"margin": 0.2},
    "ntxent": {"temperature": 0.1},
    "multi-similarity": {"alpha": 2.0, "beta": 50.0, "base": 0.5},
}


def rust(loss, a, b, **kw):
    """The Rust loss (named, with parameters) and its gradient, through its spec."""
    spec = {"name": loss, **HOOK_DEFAULTS.get(loss, {}), **kw}
    value, grad = _core._loss_and_grad(json.dumps(spec), a, b)
    return value, grad


def torch_grad(fn, a):
    a = a.clone().requires_grad_(True)
    value = fn(a)
    (g,) = torch.autograd.grad(value, a)
    return float(value.detach()), g


def unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n, d, generator=g, dtype=torch.float64)
    return e / e.norm(dim=1, keepdim=True)


def grid_case(seed, q=6, cells=9, positives=2):
    g = torch.Generator().manual_seed(seed)
    sim = torch.rand(q, cells, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.zeros(q, cells, dtype=torch.float64)
    for i in range(q):
        y[i, torch.randperm(cells, generator=g)[:positives]] = 1
    return sim, y


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("hi,lo", [(0.9, 0.0), (0.7, 0.2)])
def test_double_margin_matches_torch(seed, hi, lo):
    sim, y = grid_case(seed)

    def ref(s):
        total = 0.0
        for i in range(s.shape[0]):
            for c in range(s.shape[1]):
                if y[i, c] == 1:
                    total = total + torch.clamp(hi - s[i, c], min=0) ** 2
                else:
                    total = total + torch.clamp(s[i, c] - lo, min=0) ** 2
        return total / s.shape[0]

    v, g = rust("double-margin", sim, y, hi=hi, lo=lo)
    rv, rg = torch_grad(ref, sim)
    assert v == pytest.approx(rv, rel=1e-10)
    torch.testing.assert_close(g, rg, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("positives", [1, 3])
@pytest.mark.parametrize("hi,lo", [(0.9, 0.0), (0.6, 0.3)])
def test_balanced_double_margin_matches_torch(seed, positives, hi, lo):
    sim, y = grid_case(seed, positives=positives)

    def ref(s):
        total = 0.0
        for i in range(s.shape[0]):
            pos = [torch.clamp(hi - s[i, c], min=0) ** 2 for c in range(9) if y[i, c] == 1]
            neg = [torch.clamp(s[i, c] - lo, min=0) ** 2 for c in range(9) if y[i, c] == 0]
            total = total + sum(pos) / len(pos) + sum(neg) / len(neg)
        return total / s.shape[0]

    v, g = rust("double-margin", sim, y, hi=hi, lo=lo, balance=True)
    rv, rg = torch_grad(ref, sim)
    assert v == pytest.approx(rv, rel=1e-10)
    torch.testing.assert_close(g, rg, rtol=1e-9, atol=1e-12)
    # the paper's sum form differs whenever there is more than one negative cell
    v_sum, _ = rust("double-margin", sim, y, hi=hi, lo=lo, balance=False)
    assert v_sum != pytest.approx(v)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_grid_softmax_matches_torch(seed, temperature):
    sim, y = grid_case(seed, positives=3)

    def ref(s):
        losses = []
        for i in range(s.shape[0]):
            logz = torch.logsumexp(s[i] / temperature, 0)
            pos = [s[i, c] / temperature - logz for c in range(s.shape[1]) if y[i, c] == 1]
            losses.append(-sum(pos) / len(pos))
        return sum(losses) / len(losses)

    v, g = rust("grid-softmax", sim, y, temperature=temperature)
    rv, rg = torch_grad(ref, sim)
    assert v == pytest.approx(rv, rel=1e-10)
    torch.testing.assert_close(g, rg, rtol=1e-9, atol=1e-12)


LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_semihard_matches_torch(seed):
    e = unit(len(LABELS), 5, seed)
    margin = 0.2

    def ref(x):
        d = 2 - 2 * x @ x.T
        terms = []
        n = len(LABELS)
        for a in range(n):
            negs = [k for k in range(n) if LABELS[k] != LABELS[a]]
            for p in range(n):
                if p == a or LABELS[p] != LABELS[a]:
                    continue
                outside = [k for k in negs if d[a, k] > d[a, p]]
                if outside:
                    dn = torch.stack([d[a, k] for k in outside]).min()
                else:
                    dn = torch.stack([d[a, k] for k in negs]).max()
                terms.append(torch.clamp(d[a, p] - dn + margin, min=0))
        return torch.stack(terms).mean()

    v, g = rust("triplet", e, LABELS, margin=margin)
    rv, rg = torch_grad(ref, e)
    assert v == pytest.approx(rv, rel=1e-9)
    torch.testing.assert_close(g, rg, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_contrastive_matches_torch(seed):
    e = unit(len(LABELS), 5, seed)
    margin = 1.0

    def ref(x):
        terms = []
        n = len(LABELS)
        for i in range(n):
            for j in range(i + 1, n):
                d2 = torch.clamp(2 - 2 * (x[i] * x[j]).sum(), min=1e-12)
                if LABELS[i] == LABELS[j]:
                    terms.append(d2)
                else:
                    terms.append(torch.clamp(margin - d2.sqrt(), min=0) ** 2)
        return torch.stack(terms).mean()

    v, g = rust("contrastive", e, LABELS, margin=margin)
    rv, rg = torch_grad(ref, e)
    assert v == pytest.approx(rv, rel=1e-9)
    torch.testing.assert_close(g, rg, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_ntxent_matches_torch(seed, temperature):
    e = unit(len(LABELS), 5, seed)

    def ref(x):
        s = x @ x.T / temperature
        n = len(LABELS)
        losses = []
        for i in range(n):
            others = torch.stack([s[i, a] for a in range(n) if a != i])
            logz = torch.logsumexp(others, 0)
            pos = [s[i, p] - logz for p in range(n) if p != i and LABELS[p] == LABELS[i]]
            losses.append(-sum(pos) / len(pos))
        return torch.stack(losses).mean()

    v, g = rust("ntxent", e, LABELS, temperature=temperature)
    rv, rg = torch_grad(ref, e)
    assert v == pytest.approx(rv, rel=1e-9)
    torch.testing.assert_close(g, rg, rtol=1e-8, atol=1e-12)


def test_ntxent_two_views_is_simclr():
    """With two views per label, the multi-positive form is SimCLR's NT-Xent."""
    e = unit(8, 4, 3)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    v, _ = rust("ntxent", e, labels, temperature=0.2)
    s = e @ e.T / 0.2
    s.fill_diagonal_(-float("inf"))
    target = torch.tensor([4, 5, 6, 7, 0, 1, 2, 3])
    ref = torch.nn.functional.cross_entropy(s, target)
    assert v == pytest.approx(float(ref), rel=1e-10)


def test_unknown_loss_is_a_value_error():
    sim, y = grid_case(0)
    with pytest.raises(ValueError, match="unknown loss"):
        rust("hinge", sim, y)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("alpha", "beta", "base"), [(2.0, 50.0, 0.5), (1.0, 10.0, 0.3)])
def test_multi_similarity_matches_pytorch_metric_learning(seed, alpha, beta, base):
    from pytorch_metric_learning.distances import DotProductSimilarity
    from pytorch_metric_learning.losses import MultiSimilarityLoss

    e = unit(len(LABELS), 5, seed)
    # The Rust loss takes the network's already normalised embeddings: the reference
    # that does not normalise again has the same gradient ...
    same = MultiSimilarityLoss(
        alpha=alpha, beta=beta, base=base, distance=DotProductSimilarity(normalize_embeddings=False)
    )
    rv, rg = torch_grad(lambda x: same(x, LABELS), e)
    v, g = rust("multi-similarity", e, LABELS, alpha=alpha, beta=beta, base=base)
    assert v == pytest.approx(rv, rel=1e-10)
    torch.testing.assert_close(g, rg, rtol=1e-8, atol=1e-12)
    # ... and PML's default (which normalises) the same value, and the same gradient
    # once the radial part, which normalisation removes, is projected out.
    dv, dg = torch_grad(
        lambda x: MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)(x, LABELS), e
    )
    assert v == pytest.approx(dv, rel=1e-10)
    tangent = g - (g * e).sum(1, keepdim=True) * e
    torch.testing.assert_close(tangent, dg, rtol=1e-8, atol=1e-12)


def test_multi_similarity_with_a_label_alone_matches_pytorch_metric_learning():
    # label 9 has no positive: its anchor has only the negative term
    from pytorch_metric_learning.distances import DotProductSimilarity
    from pytorch_metric_learning.losses import MultiSimilarityLoss

    labels = torch.cat([LABELS, torch.tensor([9])])
    e = unit(len(labels), 6, 7)
    ref = MultiSimilarityLoss(distance=DotProductSimilarity(normalize_embeddings=False))
    rv, rg = torch_grad(lambda x: ref(x, labels), e)
    v, g = rust("multi-similarity", e, labels)
    assert v == pytest.approx(rv, rel=1e-10)
    torch.testing.assert_close(g, rg, rtol=1e-8, atol=1e-12)


def test_loss_objects_give_their_specs_and_clone():
    from sklearn.base import clone

    import gridmatch as gm

    dm = gm.losses.DoubleMargin(hi=0.8, lo=0.1, balance=False)
    assert dm.spec() == {"name": "double-margin", "hi": 0.8, "lo": 0.1, "balance": False}
    assert clone(dm) == dm and clone(dm) is not dm
    assert gm.losses.from_spec(dm.spec()) == dm
    for name in gm.losses.NAMES:
        obj = gm.losses.resolve(name)
        assert obj.name == name and gm.losses.from_spec(obj.spec()) == obj
        # the Rust spec reader accepts what Python writes
        a = torch.rand(4, 9, dtype=torch.float64) if obj.is_grid else unit(12, 5, 0)
        b = (torch.arange(36) % 9 < 2).reshape(4, 9).double() if obj.is_grid else LABELS
        proxies = [unit(int(LABELS.max()) + 1, 5, 1)] if obj.needs_proxies else []
        v = _core._loss_and_grad(json.dumps(obj.spec()), a, b, *proxies)[0]
        assert np.isfinite(v)
    gsn = gm.GridSearchNetwork(loss=gm.losses.MultiSimilarity(beta=40.0))
    twin = clone(gsn)
    assert twin.loss == gsn.loss and twin.loss is not gsn.loss
    assert twin.get_params()["loss"].beta == 40.0


@pytest.mark.parametrize(
    ("loss", "match"),
    [
        ("DoubleMargin(hi=0.1, lo=0.5)", "hi must be greater than lo"),
        ("DoubleMargin(balance='yes')", "balance must be a bool"),
        ("GridSoftmax(temperature=0)", "temperature must be > 0"),
        ("NTXent(temperature=float('nan'))", "temperature must be finite"),
        ("Triplet(margin=-1)", "margin must be >= 0"),
        ("MultiSimilarity(alpha=0)", "alpha must be > 0"),
        ("MultiSimilarity(base='x')", "base must be a number"),
    ],
)
def test_bad_loss_parameters_are_value_errors(loss, match):
    import gridmatch as gm

    obj = eval(f"gm.losses.{loss}")
    with pytest.raises(ValueError, match=match):
        obj.spec()
    with pytest.raises(ValueError, match=match):
        gm.GridSearchNetwork(loss=obj, epochs=0).fit(
            np.zeros((8, 8, 8), np.uint8), np.arange(8) % 4
        )


def test_rust_checks_specs_too():
    sim, y = grid_case(0)
    for spec, match in [
        ({"name": "double-margin", "hi": 0.1, "lo": 0.5, "balance": True}, "hi must be greater"),
        ({"name": "triplet"}, "margin"),
        ({"name": "triplet", "margin": 0.2, "hi": 1.0}, "unknown field"),
        ({"name": "grid-softmax", "temperature": -1.0}, "temperature must be > 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            _core._loss_and_grad(json.dumps(spec), sim, y)
