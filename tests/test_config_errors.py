"""Bad settings raise gm.ConfigError naming the parameter, what it must be and the value.

Every estimator checks its settings through one module (``gridmatch._base.params``), so the
same kind of bad value gets the same message from each; the rules' boundaries are
checked here too (the values on either side of each bound).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import gridmatch as gm
from gridmatch._base import params as _params
from gridmatch.search import KernelSearch, TransformSearch
from gridmatch.svm import SVC

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 4))
Y = np.arange(12) % 2
IMG = RNG.integers(0, 256, size=(16, 28, 28), dtype=np.uint8)
IDS = np.arange(16) % 4
E = RNG.normal(size=(10, 8))
EIDS = np.arange(10) % 5
NAN, INF = float("nan"), float("inf")


def _expect(call, name: str, value: object, expected: str) -> gm.ConfigError:
    """``call()`` raises a ConfigError: ``{name} must be {expected}, got {value!r}``."""
    with pytest.raises(gm.ConfigError) as info:
        call()
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, gm.GridmatchError)
    assert str(err) == f"{name} must be {expected}, got {value!r}"
    return err


SVC_CASES = [
    ("C", 0, "> 0"),
    ("C", -1.0, "> 0"),
    ("C", NAN, "finite"),
    ("C", "1", "a number > 0"),
    ("C", True, "a number > 0"),
    ("tol", INF, "finite"),
    ("cache_size", 0.0, "> 0"),
    ("degree", -1, "an integer >= 0"),
    ("degree", 2.0, "an integer >= 0"),
    ("coef0", NAN, "finite"),
    ("gamma", "wide", "'scale', 'auto' or a number > 0"),
    ("gamma", 0.0, "> 0"),
    ("max_iter", 0, "-1 or a positive integer"),
    ("decision_function_shape", "ovx", "'ovr' or 'ovo'"),
    ("class_weight", "auto", "None, 'balanced' or a dict"),
    ("n_jobs", 0, "None, -1 or a positive integer"),
    ("n_jobs", -2, "None, -1 or a positive integer"),
    ("probability", 1, "a bool"),
    (
        "random_state",
        -1,
        "None, an integer in [0, 4294967295] or a numpy.random.RandomState",
    ),
]


@pytest.mark.parametrize(("name", "value", "expected"), SVC_CASES)
def test_svc_bad_settings(name, value, expected):
    _expect(lambda: SVC(**{name: value}).fit(X, Y), name, value, expected)


def test_svc_bad_kernel_type_is_a_config_error():
    with pytest.raises(gm.ConfigError, match=r"kernel must be one of .*got int"):
        SVC(kernel=3).fit(X, Y)


GSN_CASES = [
    ("dim", 0, "a positive integer"),
    ("dim", True, "a positive integer"),
    ("epochs", -1, "an integer >= 0"),
    ("batch_size", 1, "an integer >= 2"),
    ("steps_per_epoch", 0, "None or a positive integer"),
    ("seed", -1, "an integer >= 0"),
    ("lr", 0.0, "> 0"),
    ("lr", INF, "finite"),
    ("weight_decay", -0.1, ">= 0"),
    ("augment", "strong", "a number >= 0"),
    ("grid", (3,), "(rows, cols), a positive integer each"),
    ("grid", (0, 3), "(rows, cols), a positive integer each"),
    ("positives", 0, "a positive integer"),
    ("backbone", "vgg", "'convnet', 'resnet18', 'resnet50' or a torch.nn.Module"),
    ("mode", "single", "'batch' or 'stitched'"),
    ("optimizer", "rmsprop", "'adam' or 'sgd'"),
    ("schedule", "linear", "'constant', 'cosine' or 'step'"),
    ("device", "tpu", "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("progress", "yes", "a bool"),
    ("distributed", "yes", "'auto', True or False"),
]


@pytest.mark.parametrize(("name", "value", "expected"), GSN_CASES)
def test_gsn_bad_settings(name, value, expected):
    gsn = gm.GridSearchNetwork(**{"epochs": 1, "batch_size": 8, "grid": (2, 2), name: value})
    _expect(lambda: gsn.fit(IMG, IDS), name, value, expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"positives": 4}, r"positives must be in \[1, 4\) for a 2x2 grid, got 4"),
        ({"batch_size": 3}, r"batch_size=3 must hold at least 2 ids"),
        ({"mode": "stitched", "loss": "triplet"}, r"mode='stitched' needs a grid loss"),
        ({"loss": "hinge"}, r"loss must be one of"),
        ({"negatives": "hardest"}, r"negatives must be one of"),
        ({"loss": gm.losses.GridSoftmax(temperature=0)}, r"temperature must be > 0, got 0"),
        ({"loss": gm.losses.DoubleMargin(balance=1)}, r"balance must be a bool, got 1"),
        ({"loss": gm.losses.DoubleMargin(hi=0.1, lo=0.5)}, r"hi must be greater than lo"),
        ({"loss": gm.losses.MultiSimilarity(beta=-1)}, r"beta must be > 0, got -1"),
    ],
)
def test_gsn_inconsistent_settings_and_bad_losses(kwargs, match):
    gsn = gm.GridSearchNetwork(**{"epochs": 1, "batch_size": 8, "grid": (2, 2), **kwargs})
    with pytest.raises(gm.ConfigError, match=match):
        gsn.fit(IMG, IDS)


def test_gsn_embed_batch_size_is_a_config_error():
    gsn = gm.GridSearchNetwork(epochs=0, dim=8, progress=False).fit(IMG, IDS)
    _expect(lambda: gsn.embed(IMG, batch_size=0), "batch_size", 0, "a positive integer")


SEARCH_CASES = [
    ("budget", 0, "a positive integer"),
    ("budget", 2.5, "a positive integer"),
    ("batch_size", -1, "a positive integer"),
    ("seed", -1, "an integer >= 0"),
    ("controller", "ppo", "'rl' or 'random'"),
    ("lr", 0, "> 0"),
    ("entropy_weight", -1.0, ">= 0"),
    ("baseline_decay", 1.0, "a fraction in [0, 1)"),
    ("risk_seeking", 0.0, "a fraction in (0, 1] or None"),
    ("risk_seeking", NAN, "a fraction in (0, 1] or None"),
    ("timeout", 0, "> 0 or None"),
    ("progress", 1, "a bool"),
]


@pytest.mark.parametrize(("name", "value", "expected"), SEARCH_CASES)
@pytest.mark.parametrize("search", ["kernel", "transform"])
def test_search_bad_settings(search, name, value, expected):
    if search == "kernel":
        s = KernelSearch(**{"budget": 4, "batch_size": 2, name: value})
        call = lambda: s.fit(X, Y, X, Y)  # noqa: E731
    else:
        s = TransformSearch(**{"budget": 4, "batch_size": 2, name: value})
        call = lambda: s.fit(E, EIDS, E, EIDS)  # noqa: E731
    _expect(call, name, value, expected)


def test_search_settings_are_checked_before_the_data():
    # the settings are the first thing fit checks: a bad setting with bad data names the
    # setting (and no search runs)
    with pytest.raises(gm.ConfigError, match="budget"):
        KernelSearch(budget=0).fit(X[:, :0], Y, X, Y)
    with pytest.raises(gm.ConfigError, match="C must be > 0, got 0"):
        KernelSearch(C=0, progress=False).fit(X, Y, X, Y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"space": "nope"}, r"space must be a gridmatch.search.Space, 'paper' or 'activation'"),
        ({"space": "activation"}, r"this search needs a kernel space"),
        ({"risk_seeking": 0.1, "batch_size": 10}, r"learns from no sample of a batch of 10"),
    ],
)
def test_kernel_search_space_and_consistency_errors(kwargs, match):
    with pytest.raises(gm.ConfigError, match=match):
        KernelSearch(**{"budget": 4, "progress": False, **kwargs}).fit(X, Y, X, Y)


# ---------------------------------------------------------------------- the rules
@pytest.mark.parametrize(
    ("value", "ok"),
    [(0, False), (1, True), (np.int64(5), True), (True, False), (1.0, False), ("1", False)],
)
def test_integer_rule_boundaries(value, ok):
    if ok:
        assert _params.integer(value, "k", low=1) == int(value)
        assert type(_params.integer(value, "k", low=1)) is int
    else:
        _expect(lambda: _params.integer(value, "k", low=1), "k", value, "a positive integer")


@pytest.mark.parametrize(
    ("low", "high", "bad", "expected"),
    [
        (0, None, -1, "an integer >= 0"),
        (2, 5, 6, "an integer in [2, 5]"),
        (None, 3, 4, "an integer <= 3"),
    ],
)
def test_integer_rule_states_the_range(low, high, bad, expected):
    _expect(lambda: _params.integer(bad, "n", low, high), "n", bad, expected)
    assert _params.integer(3, "n", low, high) == 3


@pytest.mark.parametrize(
    ("value", "ok"),
    [(0.0, True), (0.999, True), (1.0, False), (-1e-12, False), (INF, False), (NAN, False)],
)
def test_half_open_interval_rule(value, ok):
    call = lambda: _params.real(value, "decay", 0, 1, high_open=True)  # noqa: E731
    if ok:
        assert call() == value
    else:
        _expect(call, "decay", value, "a fraction in [0, 1)")


def test_real_rule_accepts_numpy_and_none_when_optional():
    assert _params.real(np.float32(0.5), "x", low=0) == 0.5
    assert _params.real(None, "x", low=0, optional=True) is None
    _expect(lambda: _params.real(None, "x", low=0), "x", None, "a number >= 0")
    _expect(lambda: _params.real(1j, "x"), "x", 1j, "a number")


def test_n_jobs_and_random_state_rules():
    assert _params.n_jobs(None) == 0
    assert _params.n_jobs(3) == 3
    assert _params.n_jobs(-1) >= 1
    rs = np.random.RandomState(1)
    assert _params.random_state(rs) is rs
    # the same generator scikit-learn makes of the seed
    assert _params.random_state(7).randint(1000) == np.random.RandomState(7).randint(1000)


def test_config_error_is_exported_and_documented():
    assert gm.ConfigError is gm.exceptions.ConfigError
    assert "ConfigError" in gm.__all__ and "ConfigError" in gm.exceptions.__all__
    assert issubclass(gm.ConfigError, gm.GridmatchError)
    assert issubclass(gm.ConfigError, ValueError)
    assert re.search(r"``ConfigError``", gm.exceptions.__doc__)
    assert gm.ConfigError.__doc__


# ------------------------------------------------------------------- retrieval
EQ = E.astype(np.float32)

RETRIEVAL_CASES = [
    ("evaluate", {"metric": "euclidean"}, r"unknown metric 'euclidean'"),
    ("evaluate", {"device": "tpu"}, r"unknown device 'tpu'"),
    ("evaluate", {"ks": ()}, r"ks is empty"),
    ("evaluate", {"ks": (1, 0)}, r"each k in ks must be >= 1, got 0"),
    ("evaluate", {"ks": "5"}, r"ks must be an int or a sequence"),
    ("evaluate", {"block_size": (1, 2, 3)}, r"block_size must be an int or a \(queries"),
    ("evaluate", {"exclude_self": "yes"}, r"exclude_self must be a bool, got 'yes'"),
    ("knn", {"metric": "euclidean"}, r"unknown metric 'euclidean'"),
    ("knn", {"metric": ["cosine"]}, r"unknown metric \['cosine'\]"),
    ("knn", {"device": "tpu"}, r"unknown device 'tpu'"),
    ("knn", {"k": 0}, r"k must be >= 1, got 0"),
    ("knn", {"k": 1.5}, r"k must be a positive integer, got 1.5"),
    ("knn", {"k": np.True_}, r"k must be a positive integer"),
    ("knn", {"block_size": 0}, r"block_size must be >= 1, got 0"),
    ("knn", {"exclude_self": 1}, r"exclude_self must be a bool, got 1"),
]


@pytest.mark.parametrize(("function", "kwargs", "match"), RETRIEVAL_CASES)
def test_retrieval_bad_settings_are_config_errors(function, kwargs, match):
    if function == "knn":
        call = lambda: gm.retrieval.knn(EQ, EQ, **{"k": 1, **kwargs})  # noqa: E731
    else:
        call = lambda: gm.retrieval.evaluate(EQ, EIDS, EQ, EIDS, **kwargs)  # noqa: E731
    with pytest.raises(gm.ConfigError, match=match) as info:
        call()
    assert isinstance(info.value, ValueError)


def test_exclude_self_takes_bools_only():
    with pytest.raises(gm.ConfigError, match=r"exclude_self must be a bool, got 0"):
        gm.retrieval.knn(EQ, EQ, 1, exclude_self=0)  # was taken as False
    # a numpy bool is one; the reference: leave-one-out by hand (numpy)
    _, idx = gm.retrieval.knn(EQ, EQ, 1, exclude_self=np.True_)
    S = EQ @ EQ.T / np.outer(np.linalg.norm(EQ, axis=1), np.linalg.norm(EQ, axis=1))
    np.fill_diagonal(S, -np.inf)
    np.testing.assert_array_equal(idx[:, 0], S.argmax(1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"seed": "0"}, r"seed must be an integer >= 0, got '0'"),
        ({"keep_vectors": "yes"}, r"keep_vectors must be a bool, got 'yes'"),
    ],
)
def test_index_bad_settings_are_config_errors(kwargs, match):
    with pytest.raises(gm.ConfigError, match=match):
        gm.retrieval.Index(**{"dim": 8, **kwargs})


def test_index_search_and_load_bad_settings_are_config_errors(tmp_path):
    index = gm.retrieval.Index(8)
    index.add(EQ)
    with pytest.raises(gm.ConfigError, match=r"k must be a positive integer, got 0"):
        index.search(EQ, k=0)
    with pytest.raises(gm.ConfigError, match=r"the exact backend has no search parameters"):
        index.search(EQ, k=1, nprobe=4)
    path = index.save(tmp_path / "i.safetensors")
    with pytest.raises(gm.ConfigError, match=r"gpu must be None, True or False, got 'yes'"):
        gm.retrieval.Index.load(path, gpu="yes")
