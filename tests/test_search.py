"""Search spaces, the controller and the search loop (transform search; kernel search in
test_search_kernel.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import gridmatch as gm
from gridmatch.search import KernelSearch, SearchResult, Space, TransformSearch


def embeddings(seed: int = 0, n_ids: int = 40, dim: int = 8):
    """Gallery = one view per id, queries = noisy views; recall depends on the transform."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, dim))
    gallery = centers + 0.3 * rng.normal(size=centers.shape)
    query = centers + 0.6 * rng.normal(size=centers.shape)
    ids = np.arange(n_ids)
    return query, ids, gallery, ids


def recall_at_1(Eq, iq, Eg, ig):
    """Independent numpy recall@1 (cosine)."""
    q = Eq / np.maximum(np.linalg.norm(Eq, axis=1, keepdims=True), 1e-300)
    g = Eg / np.maximum(np.linalg.norm(Eg, axis=1, keepdims=True), 1e-300)
    return float((ig[np.argmax(q @ g.T, axis=1)] == iq).mean())


def test_paper_space_is_the_authors():
    s = Space.paper()
    assert s.kind == "kernel" and s.units == 2 and s.final == "norm1"
    assert len(s.operands) == 7 and len(s.unary) == 18 and len(s.binary) == 8
    assert s.decisions == [7, 7, 18, 18, 8, 8, 8, 18, 18, 8]
    assert s.size == math.prod(s.decisions)
    paper = s.build([6, 5, 7, 7, 4, 7, 0, 0, 0, 7])
    assert paper == gm.expr.parse(gm.expr.PAPER_KERNEL)
    for e in s.sample(300, seed=0):
        assert e.value_type == "scalar"


def test_activation_space_and_custom_space():
    a = Space.activation()
    assert a.kind == "transform"
    for e in a.sample(300, seed=1):
        assert not e.uses_y
    s = Space(
        ["x"],
        ["identity", "2 * u", "sigmoid"],
        ["mul", "a - b"],
        units=1,
        kind="transform",
        final="identity",
    )
    assert s.decisions == [1, 1, 3, 3, 2]
    assert str(s.build([0, 0, 0, 2, 0])) == "x * sigmoid(x)"
    assert str(s.build([0, 0, 1, 0, 1])) == "2 * x - x"
    k = Space(["x - y", "dot"], ["sin"], ["max"], units=1)
    assert str(k.build([0, 1, 0, 0, 0])) == "norm1(max(sin(x - y), sin(dot(x, y))))"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"operands": [], "unary": ["sin"], "binary": ["add"]}, "no operands"),
        ({"operands": ["x"], "unary": [], "binary": ["add"]}, "no unary"),
        ({"operands": ["x"], "unary": ["sin"], "binary": []}, "no binary"),
        ({"operands": ["x"], "unary": ["sine"], "binary": ["add"]}, "unknown unary operation"),
        ({"operands": ["x"], "unary": ["sin"], "binary": ["plus"]}, "unknown binary operation"),
        ({"operands": ["z"], "unary": ["sin"], "binary": ["add"]}, "operand"),
        ({"operands": ["x"], "unary": ["sin(v)"], "binary": ["add"]}, "template"),
        ({"operands": ["x"], "unary": ["sin"], "binary": ["add"], "units": 0}, "units"),
        ({"operands": ["x"], "unary": ["sin"], "binary": ["add"], "final": "identity"}, "scalar"),
        ({"operands": "x", "unary": ["sin"], "binary": ["add"]}, "list of strings"),
        (
            {"operands": ["x", "y"], "unary": ["sin"], "binary": ["add"], "kind": "transform"},
            "operand",
        ),
    ],
)
def test_bad_spaces_raise_value_errors(kwargs, match):
    with pytest.raises(gm.ExpressionError, match=match) as info:
        Space(**kwargs)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": 0}, "budget"),
        ({"budget": -5}, "budget"),
        ({"budget": 2.5}, "budget"),
        ({"batch_size": 0}, "batch_size"),
        ({"controller": "ppo"}, "controller"),
        ({"seed": -1}, "seed"),
        ({"risk_seeking": 0.0}, "risk_seeking"),
        ({"risk_seeking": 1.5}, "risk_seeking"),
        ({"risk_seeking": "top"}, "risk_seeking"),
        ({"risk_seeking": True}, "risk_seeking"),
        ({"risk_seeking": 0.1}, "learns from no sample of a batch of 10"),
        ({"risk_seeking": 1.0, "batch_size": 1}, "learns from no sample of a batch of 1"),
        ({"space": "paper"}, "transform space"),
        ({"space": "nope"}, "space"),
    ],
)
def test_bad_search_settings_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformSearch(progress=False, **kwargs).fit(*embeddings())


def test_not_fitted():
    with pytest.raises(gm.NotFittedError):
        _ = TransformSearch().best_expr
    with pytest.raises(gm.NotFittedError):
        KernelSearch().top(3)


@pytest.mark.parametrize(("controller", "risk"), [("rl", None), ("random", None), ("rl", 0.25)])
def test_transform_search_reproducible_and_consistent(controller, risk):
    data = embeddings()
    before = gm.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            gm.set_num_threads(threads)
            s = TransformSearch(
                controller=controller,
                budget=60,
                batch_size=8,
                seed=3,
                risk_seeking=risk,
                progress=False,
            ).fit(*data)
            runs.append(s)
    finally:
        gm.set_num_threads(before["rayon"])
    a, b = runs
    assert a.result_.candidates == [
        {**c, "seconds": a.result_.candidates[i]["seconds"]}
        for i, c in enumerate(b.result_.candidates)
    ]
    strip = [{k: v for k, v in h.items() if k != "elapsed"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "elapsed"} for h in b.history]
    # Budget and history bookkeeping.
    assert len(a.history) == math.ceil(60 / 8) and a.history[-1]["sampled"] == 60
    assert sum(c["count"] for c in a.result_.candidates) == 60
    assert a.history[-1]["unique"] == a.result_.n_unique
    assert a.history[-1]["invalid"] == a.result_.n_invalid
    best = [h["best_so_far"] for h in a.history]
    assert best == sorted(best)
    # Rewards are recall@1 of the transform, checked with numpy.
    for c in a.result_.candidates[:15]:
        if c["valid"]:
            e = gm.expr.parse(c["expr"])
            Eq, iq, Eg, ig = data
            assert c["reward"] == pytest.approx(recall_at_1(e.apply(Eq), iq, e.apply(Eg), ig))
    assert a.best_score == max(c["reward"] for c in a.result_.candidates)
    top = a.top(3)
    assert [r for _, r in top] == sorted((c["reward"] for c in a.result_.candidates), reverse=True)[
        :3
    ]
    assert top[0][0] == a.best_expr
    if controller == "random":
        assert all(h["entropy"] == pytest.approx(a.history[0]["entropy"]) for h in a.history)
    # A different seed gives a different search.
    other = TransformSearch(
        controller=controller, budget=60, batch_size=8, seed=4, risk_seeking=risk, progress=False
    ).fit(*data)
    assert [c["expr"] for c in other.result_.candidates] != [
        c["expr"] for c in a.result_.candidates
    ]


def test_risk_seeking_learns_from_the_top_of_each_batch():
    data = embeddings()
    kw = dict(controller="rl", budget=48, batch_size=8, seed=3, lr=0.05, progress=False)
    plain = TransformSearch(**kw).fit(*data)
    risky = TransformSearch(**kw, risk_seeking=0.25).fit(*data)
    rewards = [c["reward"] for c in risky.result_.candidates for _ in range(c["count"])]
    # same first batch (same seed, nothing learnt yet), different policies afterwards
    first = [c["expr"] for c in plain.result_.candidates][:3]
    assert [c["expr"] for c in risky.result_.candidates][:3] == first
    assert [c["expr"] for c in plain.result_.candidates] != [
        c["expr"] for c in risky.result_.candidates
    ]
    # the baseline of a risk-seeking update is a reward of its batch (the quantile);
    # the EMA baseline of plain REINFORCE generally is not
    assert all(any(h["baseline"] == pytest.approx(r) for r in rewards) for h in risky.history)
    assert all(h["baseline"] <= h["reward_max"] for h in risky.history)
    # the result records (and its plot names) the controller's settings
    assert risky.result_.settings["risk_seeking"] == 0.25
    assert plain.result_.settings["risk_seeking"] is None
    assert risky.plot().get_title() == "rl (risk-seeking 0.25) search"
    assert plain.plot().get_title() == "rl search"
    # the core checks the spec too (the Python layer checks first): the stored settings
    # are the spec that crossed into Rust
    spec = dict(plain.result_.settings, batch_size=10, risk_seeking=0.05)
    with pytest.raises(gm.ConfigError, match="learns from no sample of a batch of 10"):
        gm._core.transform_search(json.dumps(spec), *data)
    with pytest.raises(gm.ConfigError, match="unknown field `bogus`"):
        gm._core.transform_search(json.dumps(dict(spec, risk_seeking=None, bogus=1)), *data)
    with pytest.raises(gm.ConfigError, match="needs a transform space"):
        gm._core.transform_search(json.dumps(dict(spec, kind="kernel", risk_seeking=None)), *data)


def test_invalid_candidates_get_zero_reward():
    space = Space(
        ["x"], ["identity", "u / (u - u)"], ["first"], units=1, kind="transform", final="identity"
    )
    s = TransformSearch(
        space=space, controller="random", budget=20, batch_size=5, progress=False
    ).fit(*embeddings())
    by_expr = {c["expr"]: c for c in s.result_.candidates}
    assert set(by_expr) == {"x", "x / (x - x)"}
    bad = by_expr["x / (x - x)"]
    assert not bad["valid"] and bad["reward"] == 0.0 and "non-finite" in bad["error"]
    assert by_expr["x"]["valid"] and s.result_.n_invalid == 1
    assert s.history[-1]["cache_hits"] > 0


def test_callback_stops_with_partial_result_and_progress_bar(capsys):
    seen = []

    def cb(step, total, metrics):
        seen.append((step, total, sorted(metrics)))
        return step < 2

    with pytest.warns(gm.InterruptedWarning):
        s = TransformSearch(budget=100, batch_size=10, progress=True, callback=cb).fit(
            *embeddings()
        )
    assert len(s.history) == 2 and s.result_.interrupted
    assert seen[0] == (1, 10, ["best", "entropy", "invalid", "reward", "unique"])


def test_result_plot_and_repr():
    import matplotlib

    matplotlib.use("Agg")
    s = TransformSearch(budget=20, batch_size=10, progress=False).fit(*embeddings())
    ax = s.plot()
    assert len(ax.lines) == 2
    assert isinstance(s.result_, SearchResult) and "best_score" in repr(s.result_)


def test_torch_inputs_and_any_ids():
    import torch

    Eq, iq, Eg, ig = embeddings()
    names = np.array([f"item{i}" for i in iq])
    a = TransformSearch(budget=10, progress=False).fit(
        torch.from_numpy(Eq), names, torch.from_numpy(Eg), names
    )
    b = TransformSearch(budget=10, progress=False).fit(Eq, iq, Eg, ig)
    assert a.best_score == b.best_score
    with pytest.raises(gm.ShapeError):
        TransformSearch(budget=10, progress=False).fit(Eq, iq[:-1], Eg, ig)
    with pytest.raises(gm.ShapeError):
        TransformSearch(budget=10, progress=False).fit(Eq[:, :3], iq, Eg, ig)
