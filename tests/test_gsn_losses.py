"""Losses of the Grid Search Network: values and gradients against PyTorch references.

Each reference below is written independently of the Rust code (loops over pairs and
triplets where the Rust code is vectorised) and differentiated by torch.autograd.
"""

from __future__ import annotations

import pytest
import torch

from gridmatch import _core


def rust(loss, a, b, **kw):
    value, grad = _core._loss_and_grad(loss, a, b, **kw)
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
