"""Datasets: MNIST and Fashion-MNIST, photo catalogues, the shop benchmarks.

:func:`load` reads MNIST and Fashion-MNIST from IDX files, looking in, in order:

1. the ``root`` argument (the folder holding the files, or its parent),
2. ``$GRIDMATCH_DATA/<name>/``,
3. ``~/.cache/gridmatch/<name>/``,
4. ``/usr/share/datasets/<name>/`` (Debian's ``dataset-fashion-mnist`` package),

and otherwise downloads them from the official mirrors into
``~/.cache/gridmatch/<name>/``, verifying their MD5 checksums. Offline, with no files
found, it raises :class:`~gridmatch.exceptions.DataError` saying where to put them.
The IDX parser is Rust; malformed files raise ``DataError``, never crash.

Photo catalogues (paths and product ids, never pixels) are :class:`ImageCatalogue`
(``from_folder``, ``from_csv``, ``from_inshop``, ``from_paths``); DeepFashion In-shop's
on-disk format is :class:`InShop`. :class:`ImageLoader` streams a catalogue as
augmented, normalised torch batches (decoded in Rust worker threads).
:func:`fashion_shop` builds the shop benchmark of distorted views (:func:`distort`).

The code lives in :mod:`gridmatch.data` (one module per concept); this module is where
users find it.
"""

from __future__ import annotations

from .data.catalogue import ImageCatalogue
from .data.datasets import CLASS_NAMES, NAMES, SAMPLE_SIZES, find, load, load_sample, md5_of_idx
from .data.inshop import InShop
from .data.loader import ImageLoader
from .data.shop import ShopBenchmark, ShopSplit, distort, fashion_shop

__all__ = [
    "CLASS_NAMES",
    "NAMES",
    "SAMPLE_SIZES",
    "ImageCatalogue",
    "ImageLoader",
    "InShop",
    "ShopBenchmark",
    "ShopSplit",
    "distort",
    "fashion_shop",
    "find",
    "load",
    "load_sample",
    "md5_of_idx",
]
