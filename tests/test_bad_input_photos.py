"""Bad input to the photo side of gm.datasets: ImageCatalogue and ImageLoader; see
test_bad_input.py for the suite."""

from __future__ import annotations

import os
import tempfile
from functools import cache

import numpy as np
import pytest
from _bad_input import IMG, NAN, TMP, Case, check_case
from PIL import Image

from gridmatch.datasets import ImageCatalogue, ImageLoader
from gridmatch.exceptions import ConfigError, DataError, ShapeError


@cache
def folder() -> str:
    """Four 30x20 PNGs (0.png .. 3.png), a text file named bad.png and a CSV listing
    0.png; products are folders of their own only in :func:`products`."""
    d = tempfile.mkdtemp(prefix="photos", dir=TMP.name)
    for i in range(4):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(os.path.join(d, f"{i}.png"))
    with open(os.path.join(d, "bad.png"), "w") as f:
        f.write("not an image")
    with open(os.path.join(d, "list.csv"), "w") as f:
        f.write("path,id\n0.png,1\n")
    return d


def paths(*names: str) -> list[str]:
    return [os.path.join(folder(), n) for n in names]


def catalogue() -> ImageCatalogue:
    return ImageCatalogue.from_paths(paths("0.png", "1.png", "2.png", "3.png"), [0, 0, 1, 1])


def gone() -> ImageCatalogue:
    """A catalogue of one image whose file was deleted after the catalogue was made."""
    d = tempfile.mkdtemp(prefix="gone", dir=TMP.name)
    p = os.path.join(d, "x.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p)
    cat = ImageCatalogue.from_paths([p], [0])
    os.remove(p)
    return cat


def loader(**kw) -> ImageLoader:
    return ImageLoader(catalogue(), **kw)


def first_batch(cat: ImageCatalogue, **kw):
    return next(iter(ImageLoader(cat, **{"image_size": 16, "augment": False, **kw})))


CASES: list[Case] = [
    # --- gm.datasets.ImageCatalogue ---------------------------------------------------
    Case(
        "catalogue/no paths",
        lambda: ImageCatalogue.from_paths([], []),
        ShapeError,
        r"a catalogue needs at least one image; paths is empty",
    ),
    Case(
        "catalogue/a single path",
        lambda: ImageCatalogue.from_paths(paths("0.png")[0], [0]),
        ShapeError,
        r"paths must be a sequence of paths, got the single path",
    ),
    Case(
        "catalogue/path not a path",
        lambda: ImageCatalogue.from_paths([3], [0]),
        ShapeError,
        r"paths\[0\] = 3 is not a path",
    ),
    Case(
        "catalogue/missing file",
        lambda: ImageCatalogue.from_paths(paths("0.png", "nope.png"), [0, 1]),
        DataError,
        r"paths\[1\]: no such image file .*nope\.png",
    ),
    Case(
        "catalogue/duplicate path",
        lambda: ImageCatalogue.from_paths(paths("0.png", "0.png"), [0, 1]),
        DataError,
        r"duplicate path .*0\.png \(paths\[0\] and paths\[1\]\)",
    ),
    Case(
        "catalogue/ids length",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), [0]),
        ShapeError,
        r"paths has 2 entries but ids has 1",
    ),
    Case(
        "catalogue/ids nan",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), [0, NAN]),
        ShapeError,
        r"ids\[1\] is NaN; every image needs a product id",
    ),
    Case(
        "catalogue/ids float",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), np.array([0.5, 1.0])),
        ShapeError,
        r"ids must hold strings or integers, got floats",
    ),
    Case(
        "catalogue/ids None",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), ["a", None]),
        ShapeError,
        r"ids\[1\] is None",
    ),
    Case(
        "catalogue/ids empty string",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), ["a", ""]),
        ShapeError,
        r"ids\[1\] is an empty string",
    ),
    Case(
        "catalogue/ids mixed",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), [1, "a"]),
        ShapeError,
        r"ids mix strings and integers",
    ),
    Case(
        "catalogue/ids 2-D",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), np.zeros((2, 1), int)),
        ShapeError,
        r"ids must be 1-D, got shape \(2, 1\)",
    ),
    Case(
        "catalogue/classes length",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), [0, 1], classes=[1]),
        ShapeError,
        r"paths has 2 entries but classes has 1",
    ),
    Case(
        "catalogue/split not names",
        lambda: ImageCatalogue.from_paths(paths("0.png", "1.png"), [0, 1], split=[1, 2]),
        ShapeError,
        r"split must hold split names \(strings\)",
    ),
    Case(
        "catalogue/folder missing",
        lambda: ImageCatalogue.from_folder(os.path.join(folder(), "nope")),
        DataError,
        r"nope: not a folder",
    ),
    Case(
        "catalogue/folder of images, no products",
        lambda: ImageCatalogue.from_folder(folder()),
        DataError,
        r"0\.png: image directly in .*expected one folder per product",
    ),
    Case(
        "catalogue/folder no extensions",
        lambda: ImageCatalogue.from_folder(folder(), extensions=[]),
        ConfigError,
        r"extensions must name at least one file name ending",
    ),
    Case(
        "catalogue/folder extensions not strings",
        lambda: ImageCatalogue.from_folder(folder(), extensions=[3]),
        ConfigError,
        r"extensions must be file name endings .*got \[3\]",
    ),
    Case(
        "catalogue/folder extensions a number",
        lambda: ImageCatalogue.from_folder(folder(), extensions=3),
        ConfigError,
        r"extensions must be file name endings .*got 3",
    ),
    Case(
        "catalogue/csv missing",
        lambda: ImageCatalogue.from_csv(os.path.join(folder(), "nope.csv")),
        DataError,
        r"nope\.csv: no such CSV file",
    ),
    Case(
        "catalogue/csv a folder",
        lambda: ImageCatalogue.from_csv(folder()),
        DataError,
        r"cannot read CSV",
    ),
    Case(
        "catalogue/csv id_type",
        lambda: ImageCatalogue.from_csv(os.path.join(folder(), "list.csv"), id_type="float"),
        ConfigError,
        r"id_type must be 'auto', 'int' or 'str', got 'float'",
    ),
    Case(
        "catalogue/csv image outside root",
        lambda: ImageCatalogue.from_csv(
            os.path.join(folder(), "list.csv"), root=os.path.join(folder(), "nope")
        ),
        DataError,
        r"list\.csv:2: no such image file",
    ),
    Case(
        "catalogue/subset without split names",
        lambda: catalogue().subset("query"),
        ConfigError,
        r"this catalogue has no split names; cannot select 'query'",
    ),
    Case(
        "catalogue/subset mask length",
        lambda: catalogue().subset(np.ones(3, bool)),
        ShapeError,
        r"mask has 3 entries, catalogue has 4",
    ),
    Case(
        "catalogue/subset index range",
        lambda: catalogue().subset([7]),
        ShapeError,
        r"indices must lie in \[-4, 4\), got 7",
    ),
    Case(
        "catalogue/subset floats",
        lambda: catalogue().subset(np.array([0.5])),
        ShapeError,
        r"which must be a split name, a bool mask or ints",
    ),
    Case(
        "catalogue/codes_of unknown id",
        lambda: catalogue().codes_of([7]),
        ShapeError,
        r"id 7 is not in this catalogue",
    ),
    Case(
        "catalogue/id_of out of range",
        lambda: catalogue().id_of([7]),
        ShapeError,
        r"codes must lie in \[0, 2\), got 7",
    ),
    Case("catalogue/load size=0", lambda: catalogue().load(0), ConfigError, r"size must be a pos"),
    Case(
        "catalogue/load mode",
        lambda: catalogue().load(8, mode="CMYK"),
        ConfigError,
        r"mode must be 'RGB' or 'L', got 'CMYK'",
    ),
    Case(
        "catalogue/load max_bytes not a number",
        lambda: catalogue().load(8, max_bytes="1G"),
        ConfigError,
        r"max_bytes must be a positive integer, got '1G'",
    ),
    Case(
        "catalogue/load max_pixels=0",
        lambda: catalogue().load(8, max_pixels=0),
        ConfigError,
        r"max_pixels must be a positive integer, got 0",
    ),
    Case(
        "catalogue/load over max_bytes",
        lambda: catalogue().load(64, max_bytes=1000),
        ShapeError,
        r"load\(64\) of 4 images needs .* over max_bytes",
    ),
    Case(
        "catalogue/load file gone",
        lambda: gone().load(8),
        DataError,
        r"x\.png: image file no longer exists",
    ),
    Case(
        "catalogue/load not an image",
        lambda: ImageCatalogue.from_paths(paths("bad.png"), [0]).load(8),
        DataError,
        r"cannot read image .*bad\.png",
    ),
    # --- gm.datasets.ImageLoader ------------------------------------------------------
    Case(
        "loader/not a catalogue",
        lambda: ImageLoader(IMG),
        ConfigError,
        r"catalogue must be a gridmatch.datasets.ImageCatalogue, got ndarray",
    ),
    Case(
        "loader/empty catalogue",
        lambda: ImageLoader(catalogue().subset(np.zeros(4, bool))),
        ShapeError,
        r"the catalogue is empty",
    ),
    Case("loader/batch_size=0", lambda: loader(batch_size=0), ConfigError, r"batch_size must be"),
    Case(
        "loader/batch_size float",
        lambda: loader(batch_size=2.0),
        ConfigError,
        r"batch_size must be a positive integer, got 2.0",
    ),
    Case(
        "loader/image_size=0",
        lambda: loader(image_size=0),
        ConfigError,
        r"image_size must be an integer in \[1, 16384\], got 0",
    ),
    Case(
        "loader/memory",
        lambda: loader(image_size=16384, batch_size=4096),
        ConfigError,
        r"a batch of 4 images at 16384 px is .*: more than half of this machine.s .* memory",
    ),
    Case("loader/augment str", lambda: loader(augment="yes"), ConfigError, r"augment must be a b"),
    Case("loader/shuffle None", lambda: loader(shuffle=None), ConfigError, r"shuffle must be a b"),
    Case("loader/seed<0", lambda: loader(seed=-1), ConfigError, r"seed must be an integer in"),
    Case("loader/workers=0", lambda: loader(workers=0), ConfigError, r"workers must be None or"),
    Case("loader/prefetch<0", lambda: loader(prefetch=-1), ConfigError, r"prefetch must be None"),
    Case(
        "loader/normalize",
        lambda: loader(normalize="unit"),
        ConfigError,
        r"normalize must be None or 'imagenet', got 'unit'",
    ),
    Case(
        "loader/on_error",
        lambda: loader(on_error="ignore"),
        ConfigError,
        r"on_error must be 'raise' or 'skip', got 'ignore'",
    ),
    Case("loader/max_pixels=0", lambda: loader(max_pixels=0), ConfigError, r"max_pixels must be"),
    Case(
        "loader/scale reversed",
        lambda: loader(scale=(0.9, 0.1)),
        ConfigError,
        r"scale must satisfy low <= high, got \(0.9, 0.1\)",
    ),
    Case(
        "loader/scale nan",
        lambda: loader(scale=(NAN, 1.0)),
        ConfigError,
        r"scale\[0\] must be a fraction in \(0, 1\], got nan",
    ),
    Case("loader/ratio", lambda: loader(ratio=(2, 1)), ConfigError, r"ratio must satisfy low <="),
    Case("loader/flip", lambda: loader(flip=1.5), ConfigError, r"flip must be a fraction in"),
    Case("loader/jitter<0", lambda: loader(jitter=-0.1), ConfigError, r"jitter must be a fraction"),
    Case(
        "loader/jitter pair",
        lambda: loader(jitter=(0.1, 0.2)),
        ConfigError,
        r"jitter must be a strength or \(brightness, contrast, saturation\)",
    ),
    Case("loader/occlusion", lambda: loader(occlusion=2), ConfigError, r"occlusion must be a fra"),
    Case("loader/blur nan", lambda: loader(blur=NAN), ConfigError, r"blur must be a fraction"),
    Case(
        "loader/blur_sigma 0",
        lambda: loader(blur_sigma=(0, 1)),
        ConfigError,
        r"blur_sigma\[0\] must be > 0",
    ),
    Case("loader/degrees inf", lambda: loader(degrees=float("inf")), ConfigError, r"degrees must"),
    Case(
        "loader/translate",
        lambda: loader(translate=(2, 0)),
        ConfigError,
        r"translate\[0\] must be a number in",
    ),
    Case("loader/shear", lambda: loader(shear=95), ConfigError, r"shear must lie in \(-90, 90\)"),
    Case("loader/set_epoch<0", lambda: loader().set_epoch(-1), ConfigError, r"epoch must be an"),
    Case(
        "loader/file gone",
        lambda: first_batch(gone()),
        DataError,
        r"x\.png: no such image file",
    ),
    Case(
        "loader/not an image",
        lambda: first_batch(ImageCatalogue.from_paths(paths("0.png", "bad.png"), [0, 1])),
        DataError,
        r"bad\.png: not a JPEG, PNG or WebP image",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
    check_case(case)
