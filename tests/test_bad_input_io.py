"""Bad input to the package's file and terminal side: gm.datasets, gm.plot and the
command line; see test_bad_input.py for the suite."""

from __future__ import annotations

import numpy as np
import pytest
from _bad_input import (
    IDS,
    IMG,
    IMG_IDS,
    META,
    NAN,
    Case,
    CliError,
    E,
    check_case,
    cli,
    inshop,
    load_nowhere,
    npy_file,
    strings,
    with_value,
)

import gridmatch as gm
import gridmatch.plot as gmplot
from gridmatch.exceptions import (
    DataError,
    DeviceError,
    ShapeError,
)

CASES: list[Case] = [
    # --- gm.datasets ------------------------------------------------------------------
    Case(
        "datasets/name", lambda: gm.datasets.load("cifar"), ValueError, r"unknown dataset 'cifar'"
    ),
    Case(
        "datasets/split",
        lambda: gm.datasets.load("mnist", "val"),
        ValueError,
        r"split must be 'train' or 'test'",
    ),
    Case(
        "datasets/not found",
        lambda: load_nowhere(),
        DataError,
        r"mnist \(train\) not found. Put the IDX files",
    ),
    Case(
        "datasets/find split",
        lambda: gm.datasets.find("mnist", "val"),
        ValueError,
        r"split must be",
    ),
    Case(
        "datasets/sample name",
        lambda: gm.datasets.load_sample("cifar"),
        ValueError,
        r"unknown dataset",
    ),
    Case(
        "md5_of_idx/range",
        lambda: gm.datasets.md5_of_idx(np.array([300])),
        ValueError,
        r"outside \[0, 255\]",
    ),
    Case(
        "md5_of_idx/float",
        lambda: gm.datasets.md5_of_idx(np.array([0.5])),
        ValueError,
        r"array must hold integers",
    ),
    Case("distort/2-D", lambda: gm.datasets.distort(IMG[0]), ShapeError, r"X must be \(n, h, w\)"),
    Case(
        "distort/floats",
        lambda: gm.datasets.distort(IMG / 255.0),
        ShapeError,
        r"X must hold uint8 pixel values",
    ),
    Case(
        "distort/range",
        lambda: gm.datasets.distort(IMG.astype(np.int64) * 2),
        ShapeError,
        r"\[0, 255\]",
    ),
    Case("distort/strings", lambda: gm.datasets.distort(strings((2, 4, 4))), ShapeError, r"uint8"),
    Case(
        "distort/strength<0",
        lambda: gm.datasets.distort(IMG, strength=-1.0),
        ValueError,
        r"strength must be a finite number >= 0",
    ),
    Case(
        "distort/strength nan",
        lambda: gm.datasets.distort(IMG, strength=NAN),
        ValueError,
        r"strength must be a finite number",
    ),
    Case(
        "distort/seed<0",
        lambda: gm.datasets.distort(IMG, seed=-1),
        ValueError,
        r"seed must be an integer >= 0",
    ),
    Case(
        "fashion_shop/split",
        lambda: gm.datasets.fashion_shop("val"),
        ValueError,
        r"split must be 'train' or 'test'",
    ),
    Case(
        "fashion_shop/views",
        lambda: gm.datasets.fashion_shop("test", views=1),
        ValueError,
        r"views must be >= 2",
    ),
    Case("InShop/missing", lambda: inshop(None), DataError, r"no list_eval_partition.txt"),
    Case("InShop/empty file", lambda: inshop(""), DataError, r"too short"),
    Case(
        "InShop/count",
        lambda: inshop("x\nheader\n"),
        DataError,
        r"first line must be the image count",
    ),
    Case(
        "InShop/rows",
        lambda: inshop("2\nheader\nimg/a.jpg id_00000001 train\n"),
        DataError,
        r"header says 2 images, found 1",
    ),
    Case(
        "InShop/status",
        lambda: inshop("1\nheader\nimg/a.jpg id_00000001 val\n"),
        DataError,
        r":3: expected",
    ),
    Case(
        "InShop/id", lambda: inshop("1\nheader\nimg/a.jpg id_x train\n"), DataError, r"bad item id"
    ),
    Case(
        "InShop/split",
        lambda: inshop("1\nheader\nimg/a.jpg id_00000001 train\n").ids("test"),
        ValueError,
        r"split must be one of",
    ),
    Case(
        "InShop/missing image",
        lambda: inshop("1\nheader\nimg/a.jpg id_00000001 train\n").load("train"),
        DataError,
        r"cannot read image",
    ),
    # --- gm.plot ----------------------------------------------------------------------
    Case(
        "plot/panel k=0",
        lambda: gmplot.retrieval_panel(IMG[:2], IMG, np.zeros((2, 3), int), [0, 1], IMG_IDS, k=0),
        ValueError,
        r"k=0 must be between 1",
    ),
    Case(
        "plot/panel indices range",
        lambda: gmplot.retrieval_panel(IMG[:2], IMG, np.full((2, 5), 99), [0, 1], IMG_IDS),
        ValueError,
        r"indices refer to gallery images that do not exist",
    ),
    Case(
        "plot/panel indices float",
        lambda: gmplot.retrieval_panel(IMG[:2], IMG, np.full((2, 5), 0.5), [0, 1], IMG_IDS),
        ValueError,
        r"indices must hold integer",
    ),
    Case(
        "plot/panel ids",
        lambda: gmplot.retrieval_panel(IMG[:2], IMG, np.zeros((2, 5), int), [0], IMG_IDS),
        ValueError,
        r"query_ids / gallery_ids",
    ),
    Case(
        "plot/panel 1-D",
        lambda: gmplot.retrieval_panel(IMG[0, 0], IMG, np.zeros((2, 5), int), [0, 1], IMG_IDS),
        ValueError,
        r"query_images",
    ),
    Case(
        "plot/training_curves empty",
        lambda: gmplot.training_curves({}),
        ValueError,
        r"histories is empty",
    ),
    Case(
        "plot/training_curves metrics",
        lambda: gmplot.training_curves({"a": []}, metrics=()),
        ValueError,
        r"metrics is empty",
    ),
    Case(
        "plot/search_curves empty",
        lambda: gmplot.search_curves({}),
        ValueError,
        r"histories is empty",
    ),
    Case(
        "plot/embedding nan",
        lambda: gmplot.embedding_2d(with_value(E, NAN), IDS),
        ValueError,
        r"NaN or inf",
    ),
    Case(
        "plot/embedding strings",
        lambda: gmplot.embedding_2d(strings((3, 2)), [0, 1, 0]),
        ValueError,
        r"embeddings must hold real numbers",
    ),
    Case(
        "plot/embedding labels", lambda: gmplot.embedding_2d(E, IDS[:-1]), ValueError, r"n=9 labels"
    ),
    Case(
        "plot/embedding one point",
        lambda: gmplot.embedding_2d(E[:1], IDS[:1]),
        ValueError,
        r"at least 2 points",
    ),
    Case(
        "plot/embedding method",
        lambda: gmplot.embedding_2d(E, IDS, method="umap"),
        ValueError,
        r"method must be",
    ),
    Case(
        "plot/embedding max_points",
        lambda: gmplot.embedding_2d(E, IDS, max_points=0),
        ValueError,
        r"max_points must be an integer >= 2",
    ),
    Case(
        "plot/embedding class_names",
        lambda: gmplot.embedding_2d(E, IDS, class_names=["a"]),
        ValueError,
        r"class_names has 1 names",
    ),
    Case(
        "plot/embedding meta",
        lambda: gmplot.embedding_2d(META, IDS),
        DeviceError,
        r"embeddings.*'meta'",
    ),
    Case(
        "plot/confusion lengths",
        lambda: gmplot.confusion_matrix([1, 2], [1]),
        ValueError,
        r"equal length",
    ),
    Case(
        "plot/confusion empty",
        lambda: gmplot.confusion_matrix([], []),
        ValueError,
        r"y_true is empty",
    ),
    # --- the command line (exit status 2 and one "gridmatch: error:" line) --------------
    Case(
        "cli/unknown command", lambda: cli("fly"), CliError, r"(?s)exit 2: .*invalid choice: 'fly'"
    ),
    Case(
        "cli/search-transform missing file",
        lambda: cli("search-transform", "/nonexistent/e.npz"),
        CliError,
        r"exit 2: gridmatch: error: cannot read /nonexistent/e.npz",
    ),
    Case(
        "cli/search-transform not npz",
        lambda: cli("search-transform", npy_file(E)),
        CliError,
        r"exit 2: gridmatch: error: .* is not an .npz archive",
    ),
    Case(
        "cli/evaluate missing file",
        lambda: cli("evaluate", "/nonexistent/q.npy", npy_file(IDS)),
        CliError,
        r"exit 2: gridmatch: error: cannot read query embeddings",
    ),
    Case(
        "cli/evaluate nan",
        lambda: cli("evaluate", npy_file(with_value(E, NAN)), npy_file(IDS)),
        CliError,
        r"exit 2: gridmatch: error: .*non-finite",
    ),
    Case(
        "cli/evaluate ids length",
        lambda: cli("evaluate", npy_file(E), npy_file(IDS[:3])),
        CliError,
        r"exit 2: gridmatch: error: .*3 ids but its embeddings have 10 rows",
    ),
    Case(
        "cli/search-kernel budget",
        lambda: cli("search-kernel", "--budget", "-1", "--train", "50", "--val", "20"),
        CliError,
        r"exit 2: gridmatch: error: budget must be a positive integer",
    ),
    Case(
        "cli/search-kernel risk-seeking",
        lambda: cli("search-kernel", "--risk-seeking", "2", "--train", "50", "--val", "20"),
        CliError,
        r"exit 2: gridmatch: error: risk_seeking must be a fraction in \(0, 1\]",
    ),
    Case(
        "cli/search-kernel top",
        lambda: cli("search-kernel", "--top", "0", "--train", "50", "--val", "20"),
        CliError,
        r"exit 2: gridmatch: error: --top must be a positive integer, got 0",
    ),
    Case(
        "cli/search-kernel negative train",
        lambda: cli("search-kernel", "--train", "-5", "--val", "20"),
        CliError,
        r"exit 2: gridmatch: error: --train must be an integer >= 2, got -5",
    ),
    Case(
        "cli/search-kernel negative holdout",
        lambda: cli("search-kernel", "--train", "50", "--val", "20", "--holdout", "-1"),
        CliError,
        r"exit 2: gridmatch: error: --holdout must be an integer >= 0, got -1",
    ),
    Case(
        "cli/search-kernel more images than the dataset",
        lambda: cli("search-kernel", "--train", "50000", "--val", "9000", "--holdout", "2000"),
        CliError,
        r"exit 2: gridmatch: error: --train 50000 \+ --val 9000 \+ --holdout 2000 images: "
        r"mnist has only 60000 training images",
    ),
    Case(
        "cli/search-transform out in a missing directory",
        lambda: cli("search-transform", npy_file(E), "--out", "/nonexistent/dir/r.safetensors"),
        CliError,
        r"exit 2: gridmatch: error: --out '/nonexistent/dir/r.safetensors' is not a file path",
    ),
    Case(
        "plot/save not a figure",
        lambda: gmplot.save(None, "/tmp/never.png"),
        TypeError,
        r"fig must be a matplotlib Figure",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
    check_case(case)
