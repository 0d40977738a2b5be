"""SearchResult files: round trips, files of earlier versions, tampering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gridmatch as gm
from gridmatch import _core
from gridmatch.exceptions import DataError

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def search_result():
    E = RNG.normal(size=(30, 6))
    ids = np.arange(30) % 10
    s = gm.search.TransformSearch(budget=8, batch_size=4, seed=1, progress=False)
    return s.fit(E, ids, E + 0.1, ids).result_


def test_search_result_round_trip(tmp_path, search_result):
    path = search_result.save(tmp_path / "search.safetensors")
    back = gm.search.SearchResult.load(path)
    assert back.candidates == search_result.candidates
    assert back.history == search_result.history
    assert back.best_expr == search_result.best_expr
    assert back.best_score == search_result.best_score
    assert back.controller == search_result.controller
    assert back.settings == search_result.settings
    assert (back.settings["budget"], back.settings["seed"]) == (8, 1)
    assert back.top(3) == search_result.top(3)


def test_search_result_without_settings_still_loads(tmp_path, search_result):
    # files written before settings were recorded
    back = gm.search.SearchResult.load(
        _search_file(tmp_path, search_result, lambda d: d.pop("settings"))
    )
    assert back.settings == {} and back.candidates == search_result.candidates


def _search_file(tmp_path, search_result, edit) -> Path:
    arrays, meta = _core.store_load(search_result.save(tmp_path / "s.safetensors"))
    doc = json.loads(meta["gridmatch"])
    edit(doc)
    p = tmp_path / "t.safetensors"
    _core.store_save(str(p), [], {"gridmatch": json.dumps(doc)})
    return p


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(version=9), r"format version 9"),
        (lambda d: d.update(format="x"), r"not a saved SearchResult"),
        (lambda d: d["candidates"][0].update(expr="sin("), r"invalid SearchResult"),
        (lambda d: d.update(best=10**6), r"not a candidate index"),
        (lambda d: d.pop("history"), r"invalid SearchResult \(KeyError"),
        (lambda d: d.update(settings=[1]), r"settings must be a JSON object"),
    ],
    ids=["version", "format", "bad expression", "best index", "missing history", "settings"],
)
def test_search_result_bad_files(tmp_path, search_result, edit, match):
    with pytest.raises(DataError, match=match):
        gm.search.SearchResult.load(_search_file(tmp_path, search_result, edit))


def test_search_result_changed_bytes(tmp_path, search_result):
    raw = Path(search_result.save(tmp_path / "s.safetensors")).read_bytes()
    for i in range(0, len(raw), 11):
        bad = bytearray(raw)
        bad[i] ^= 0x08
        (tmp_path / "b.safetensors").write_bytes(bytes(bad))
        with pytest.raises(DataError):
            gm.search.SearchResult.load(tmp_path / "b.safetensors")
    with pytest.raises(DataError, match="not a saved SearchResult"):
        svc = gm.svm.SVC().fit(RNG.normal(size=(40, 5)), np.arange(40) % 3)
        gm.search.SearchResult.load(svc.save(tmp_path / "svc.safetensors"))
