"""ImageCatalogue.with_split: split names drawn by product, as DeepFashion In-shop's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gridmatch as gm
from gridmatch.datasets import ImageCatalogue


def products_catalogue(tmp_path, sizes, ids=None):
    """A catalogue of ``len(sizes)`` products with ``sizes[i]`` files each (the files
    are never decoded, so they hold a byte)."""
    paths, labels = [], []
    for p, m in enumerate(sizes):
        for v in range(m):
            f = tmp_path / f"p{p}" / f"{v}.jpg"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"x")
            paths.append(f)
            labels.append(f"sku{p}" if ids is None else ids[p])
    # shuffled, so that the catalogue's order is not the products'
    order = np.random.default_rng(1).permutation(len(paths))
    return ImageCatalogue([paths[i] for i in order], [labels[i] for i in order])


def parts_of(cat):
    return {s: cat.subset(s) for s in ("train", "query", "gallery") if s in set(cat.split)}


def test_with_split_deals_products_as_inshop(tmp_path):
    cat = products_catalogue(tmp_path, [4] * 10)
    out = cat.with_split(train=0.5, query=0.25, gallery=0.25, seed=0)
    # every image kept once, in the catalogue's order, codes and ids unchanged
    assert list(out.paths) == list(cat.paths)
    np.testing.assert_array_equal(out.codes, cat.codes)
    assert out.split is not None and not out.split.flags.writeable
    parts = parts_of(out)
    train_ids = set(parts["train"].ids)
    q_ids, g_ids = set(parts["query"].ids), set(parts["gallery"].ids)
    # by hand: 5 of the 10 products train (20 images); each of the other 5 products
    # gives 2 images to the query and 2 to the gallery
    assert len(train_ids) == 5 and len(parts["train"]) == 20
    assert not train_ids & (q_ids | g_ids)
    assert q_ids == g_ids and len(q_ids) == 5
    assert len(parts["query"]) == 10 and len(parts["gallery"]) == 10
    for sku in q_ids:
        assert list(parts["query"].ids).count(sku) == 2
    # the README's use: every query has a match in the gallery
    q, g = parts["query"], parts["gallery"]
    onehot = np.eye(10, dtype=np.float32)  # an embedding that knows the products
    Eq, Eg = onehot[q.codes], onehot[g.codes]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = gm.retrieval.evaluate(Eq, q.codes, Eg, g.codes, ks=(1,))
    assert metrics["n_queries_without_match"] == 0 and metrics["recall@1"] == 1.0


def test_with_split_is_seeded(tmp_path):
    cat = products_catalogue(tmp_path, [3] * 12)
    a = cat.with_split(train=0.5, seed=3)
    b = cat.with_split(train=0.5, seed=3)
    c = cat.with_split(train=0.5, seed=4)
    assert list(a.split) == list(b.split)
    assert list(a.split) != list(c.split)
    # query and gallery not given: they share the rest equally
    parts = parts_of(a)
    assert len(set(parts["train"].ids)) == 6 and len(set(parts["query"].ids)) == 6
    # half of 3 images rounded to the nearest (halves up): 2 queries and 1 gallery image
    assert len(parts["query"]) == 12 and len(parts["gallery"]) == 6


def test_with_split_counts_rest_left_out_and_single_images(tmp_path):
    cat = products_catalogue(tmp_path, [1, 5, 2, 3, 4, 1, 2, 6], ids=list(range(8)))
    out = cat.with_split(train=3, query=2, gallery=2, seed=0)
    parts = parts_of(out)
    assert len(set(parts["train"].ids)) == 3
    evaluated = set(parts["query"].ids) | set(parts["gallery"].ids)
    assert len(evaluated) == 4 and not evaluated & set(parts["train"].ids)
    # one product (7 = 8 - 3 - 4) is left out with all its images
    kept = set(out.ids.tolist())
    assert len(kept) == 7 and len(out) == sum(int((cat.ids == i).sum()) for i in kept)
    assert len(set(out.paths)) == len(out) and set(out.paths) <= set(cat.paths)
    for sku in evaluated:
        m = int((cat.ids == sku).sum())
        nq = int((parts["query"].ids == sku).sum()) if "query" in parts else 0
        # half of each product's images (rounded), one each side; a single image is a
        # gallery image (as a query it could match nothing)
        want = 0 if m == 1 else min(max(int(np.floor(m / 2 + 0.5)), 1), m - 1)
        assert nq == want, (sku, m, nq)
    # only training, and only evaluation
    assert set(cat.with_split(train=1.0).split) == {"train"}
    only = cat.with_split(query=1.0, gallery=0.0)
    assert set(only.split) == {"query"} and len(only) == len(cat)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train": -0.1}, r"train must be a fraction in \[0, 1\] or a count, got -0.1"),
        ({"query": 1.5}, r"query must be a fraction in \[0, 1\]"),
        ({"gallery": -1}, r"gallery must be >= 0, got -1"),
        ({"train": "half"}, r"train must be a fraction in \[0, 1\] or a number of products"),
        ({"train": True}, r"train must be a fraction"),
        ({"train": float("nan")}, r"train must be a fraction"),
        ({"train": 0.6, "query": 0.3, "gallery": 0.2}, r"add up to at most 1, got .* = 1.1"),
        ({"train": 5, "query": 4}, r"at most the number of products \(8\)"),
        ({"train": 2, "query": 0.5}, r"all as fractions \(floats\) or all as numbers"),
        ({"train": 0.0, "query": 0.0, "gallery": 0.0}, r"leave no image"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ],
)
def test_with_split_bad_settings(tmp_path, kwargs, match):
    cat = products_catalogue(tmp_path, [2] * 8)
    with pytest.raises(gm.ConfigError, match=match):
        cat.with_split(**kwargs)


def test_with_split_unknown_part_names_it(tmp_path):
    cat = products_catalogue(tmp_path, [2] * 4)
    with pytest.raises(TypeError, match="'val'"):
        cat.with_split(train=0.5, val=0.5)


def test_subset_of_a_catalogue_without_split_points_to_with_split(tmp_path):
    cat = products_catalogue(tmp_path, [2] * 4)
    with pytest.raises(ValueError, match=r"no split names.*with_split"):
        cat.subset("query")
