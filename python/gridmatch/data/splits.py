"""Split names drawn by product (``ImageCatalogue.with_split``): train products, and
evaluation products whose images are divided between query and gallery."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base.exceptions import ConfigError
from .._base.params import integer

__all__ = ["deal"]


def deal(codes: np.ndarray, train: Any, query: Any, gallery: Any, seed: Any) -> tuple[Any, Any]:
    """``(kept images, split name of every image or None)`` for the product codes ``codes``
    (see ``ImageCatalogue.with_split``, which documents the shares and the errors)."""
    seed = integer(seed, "seed", 0)
    given = {"train": train, "query": query, "gallery": gallery}
    kinds = set()
    for name, v in given.items():
        if v is None:
            continue
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            kinds.add("count")
            if v < 0:
                raise ConfigError(f"{name} must be >= 0, got {v!r}")
        elif isinstance(v, (float, np.floating)):
            kinds.add("fraction")
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be a fraction in [0, 1] or a count, got {v!r}")
        else:
            raise ConfigError(
                f"{name} must be a fraction in [0, 1] or a number of products, got {v!r}"
            )
    if len(kinds) > 1:
        raise ConfigError(
            "give train, query and gallery all as fractions (floats) or all as numbers "
            f"of products (ints), got {', '.join(f'{k}={v!r}' for k, v in given.items())}"
        )
    products = np.unique(codes)
    n_products = len(products)
    fractions = kinds != {"count"}
    whole = 1.0 if fractions else float(n_products)
    shares = {k: (0.0 if v is None else float(v)) for k, v in given.items()}
    total = sum(shares.values())
    if total > whole * (1 + 1e-9):
        what = "1" if fractions else f"the number of products ({n_products})"
        raise ConfigError(
            f"train + query + gallery must add up to at most {what}, got "
            f"{'+'.join(f'{shares[k]:g}' for k in given)} = {total:g}"
        )
    open_parts = [k for k in ("query", "gallery") if given[k] is None]
    for k in open_parts:
        shares[k] = max(whole - total, 0.0) / len(open_parts)
    scale = n_products if fractions else 1.0

    def cut(x: float) -> int:
        return min(n_products, int(np.floor(x * scale + 0.5 + 1e-9)))

    n_train = cut(shares["train"])
    n_eval = cut(shares["train"] + shares["query"] + shares["gallery"]) - n_train
    evaluated = shares["query"] + shares["gallery"]
    ratio = shares["query"] / evaluated if evaluated > 0 else 0.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(products)
    names = np.full(len(codes), None, dtype=object)
    names[np.isin(codes, order[:n_train])] = "train"
    eval_products = np.sort(order[n_train : n_train + n_eval])
    if len(eval_products):
        images = np.flatnonzero(np.isin(codes, eval_products))
        images = images[np.argsort(codes[images], kind="stable")]
        starts = np.flatnonzero(np.diff(codes[images], prepend=-1))
        for members in np.split(images, starts[1:]):
            m = len(members)
            n_query = int(np.floor(ratio * m + 0.5))
            if 0 < ratio < 1:
                n_query = 0 if m == 1 else min(max(n_query, 1), m - 1)
            chosen = rng.permutation(m)
            names[members[chosen[:n_query]]] = "query"
            names[members[chosen[n_query:]]] = "gallery"
    keep = np.flatnonzero(names != None)  # noqa: E711 - elementwise on objects
    if keep.size == 0:
        raise ConfigError(
            f"train={train!r}, query={query!r}, gallery={gallery!r} leave no image of "
            f"the {n_products} products"
        )
    return keep, names
