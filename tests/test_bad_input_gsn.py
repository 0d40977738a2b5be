"""Bad input to gm.GridSearchNetwork; see test_bad_input.py for the suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _bad_input import (
    GSN_FAST,
    IMG,
    IMG_IDS,
    INF,
    NAN,
    Case,
    check_case,
    fitted_gsn,
    gsn_fit,
    strings,
    with_value,
)

import gridmatch as gm
from gridmatch.exceptions import (
    ConfigError,
    DataError,
    DeviceError,
    NotFittedError,
    ShapeError,
)

CASES: list[Case] = [
    # --- gm.GridSearchNetwork ---------------------------------------------------------
    Case(
        "GSN/nan",
        lambda: gsn_fit(X_=with_value(IMG, NAN, (0, 0, 0))),
        ShapeError,
        r"X contains NaN",
    ),
    Case(
        "GSN/strings", lambda: gsn_fit(X_=strings((16, 8, 8))), ShapeError, r"X must hold numbers"
    ),
    Case("GSN/complex", lambda: gsn_fit(X_=IMG + 1j), ShapeError, r"X must hold numbers"),
    Case("GSN/2-D", lambda: gsn_fit(X_=IMG[0]), ShapeError, r"X must be \(n, h, w\)"),
    Case("GSN/5-D", lambda: gsn_fit(X_=IMG[:, None, None]), ShapeError, r"got 5 dimensions"),
    Case(
        "GSN/2 channels",
        lambda: gsn_fit(X_=np.zeros((16, 2, 8, 8))),
        ShapeError,
        r"1 or 3 channels",
    ),
    Case(
        "GSN/empty", lambda: gsn_fit(X_=IMG[:0], ids=IMG_IDS[:0]), ShapeError, r"at least one image"
    ),
    Case("GSN/tiny images", lambda: gsn_fit(X_=IMG[:, :3, :3]), ShapeError, r"at least 4x4"),
    Case(
        "GSN/meta",
        lambda: gsn_fit(X_=torch.zeros((16, 28, 28), device="meta")),
        DeviceError,
        r"X.*'meta'",
    ),
    Case(
        "GSN/ids length",
        lambda: gsn_fit(ids=IMG_IDS[:-1]),
        ShapeError,
        r"ids must be 1-D with one value per image \(16\)",
    ),
    Case(
        "GSN/single id",
        lambda: gsn_fit(ids=np.zeros(16)),
        ShapeError,
        r"ids must hold at least 2 distinct values",
    ),
    Case(
        "GSN/grid > images",
        lambda: gsn_fit(X_=IMG[:6], ids=IMG_IDS[:6], grid=(3, 3)),
        ValueError,
        r"grid=\(3, 3\) has 9 cells but X holds only 6",
    ),
    Case(
        "GSN/positives >= cells",
        lambda: gsn_fit(positives=4),
        ValueError,
        r"positives must be in \[1, 4\)",
    ),
    Case(
        "GSN/positives=0",
        lambda: gsn_fit(positives=0),
        ValueError,
        r"positives must be a positive integer",
    ),
    Case(
        "GSN/grid 0 rows", lambda: gsn_fit(grid=(0, 3)), ValueError, r"grid must be \(rows, cols\)"
    ),
    Case("GSN/grid shape", lambda: gsn_fit(grid=(3,)), ValueError, r"grid must be \(rows, cols\)"),
    Case(
        "GSN/batch too small",
        lambda: gsn_fit(batch_size=3),
        ValueError,
        r"batch_size=3 must hold at least 2 ids",
    ),
    Case("GSN/dim=0", lambda: gsn_fit(dim=0), ValueError, r"dim must be a positive integer"),
    Case("GSN/epochs<0", lambda: gsn_fit(epochs=-1), ValueError, r"epochs must be an integer >= 0"),
    Case(
        "GSN/steps_per_epoch=0",
        lambda: gsn_fit(steps_per_epoch=0),
        ValueError,
        r"steps_per_epoch must be None or a positive integer",
    ),
    Case("GSN/lr=0", lambda: gsn_fit(lr=0.0), ValueError, r"lr must be > 0"),
    Case("GSN/lr inf", lambda: gsn_fit(lr=INF), ValueError, r"lr must be finite"),
    Case(
        "GSN/temperature=0",
        lambda: gsn_fit(loss=gm.losses.GridSoftmax(temperature=0.0)),
        ValueError,
        r"temperature must be > 0",
    ),
    Case(
        "GSN/weight_decay<0",
        lambda: gsn_fit(weight_decay=-1.0),
        ValueError,
        r"weight_decay must be >= 0",
    ),
    Case("GSN/augment nan", lambda: gsn_fit(augment=NAN), ValueError, r"augment must be finite"),
    Case(
        "GSN/margin<0",
        lambda: gsn_fit(loss=gm.losses.Triplet(margin=-1.0)),
        ValueError,
        r"margin must be >= 0",
    ),
    Case(
        "GSN/hi <= lo",
        lambda: gsn_fit(loss=gm.losses.DoubleMargin(hi=0.0, lo=0.5)),
        ValueError,
        r"hi must be greater than lo",
    ),
    Case("GSN/seed<0", lambda: gsn_fit(seed=-1), ValueError, r"seed must be an integer >= 0"),
    Case("GSN/loss", lambda: gsn_fit(loss="hinge"), ValueError, r"loss must be one of"),
    Case("GSN/device", lambda: gsn_fit(device="tpu"), ValueError, r"device must be 'auto', 'cpu'"),
    Case(
        "GSN/balance",
        lambda: gsn_fit(loss=gm.losses.DoubleMargin(balance="yes")),
        ValueError,
        r"balance must be a bool",
    ),
    Case(
        "GSN/weights missing",
        lambda: gsn_fit(weights="/nonexistent/w.safetensors"),
        DataError,
        r"weights file .* does not exist",
    ),
    Case(
        "GSN/X_val without ids_val",
        lambda: gm.GridSearchNetwork(**GSN_FAST).fit(IMG, IMG_IDS, X_val=IMG),
        ValueError,
        r"give both X_val and ids_val",
    ),
    Case(
        "GSN/X_val image size",
        lambda: gm.GridSearchNetwork(**GSN_FAST).fit(
            IMG, IMG_IDS, X_val=IMG[:, :20, :20], ids_val=IMG_IDS
        ),
        ShapeError,
        r"X_val images",
    ),
    Case(
        "GSN/classes length",
        lambda: gm.GridSearchNetwork(**GSN_FAST).fit(IMG, IMG_IDS, classes=IMG_IDS[:3]),
        ShapeError,
        r"classes must be 1-D",
    ),
    Case(
        "GSN/embed before fit",
        lambda: gm.GridSearchNetwork().embed(IMG),
        NotFittedError,
        r"not fitted",
    ),
    Case(
        "GSN/save before fit",
        lambda: gm.GridSearchNetwork().save("/tmp/never"),
        NotFittedError,
        r"not fitted",
    ),
    Case(
        "GSN/embed channels",
        lambda: fitted_gsn().embed(np.zeros((2, 3, 28, 28), np.float32)),
        ShapeError,
        r"3 channels, the network was built for 1",
    ),
    Case("GSN/embed empty", lambda: fitted_gsn().embed(IMG[:0]), ShapeError, r"at least one image"),
    Case(
        "GSN/embed batch_size=0",
        lambda: fitted_gsn().embed(IMG, batch_size=0),
        ValueError,
        r"batch_size must be a positive integer",
    ),
    Case(
        "GSN/embed batch_size<0",
        lambda: fitted_gsn().embed(IMG, batch_size=-1),
        ValueError,
        r"batch_size must be a positive integer",
    ),
    Case(
        "GSN/embed batch_size float",
        lambda: fitted_gsn().embed(IMG, batch_size=1.5),
        ValueError,
        r"batch_size must be a positive integer",
    ),
    Case(
        "GSN/embed meta",
        lambda: fitted_gsn().embed(torch.zeros((2, 28, 28), device="meta")),
        DeviceError,
        r"X.*'meta'",
    ),
    # --- precision ----------------------------------------------------------------------
    Case(
        "GSN/precision fp64",
        lambda: gsn_fit(precision="fp64"),
        ConfigError,
        r"precision must be 'fp32', 'bf16', 'fp16' or 'auto', got 'fp64'",
    ),
    Case("GSN/precision 16", lambda: gsn_fit(precision=16), ConfigError, r"precision must be"),
    Case("GSN/precision None", lambda: gsn_fit(precision=None), ConfigError, r"got None"),
    Case("GSN/precision case", lambda: gsn_fit(precision="FP16"), ConfigError, r"got 'FP16'"),
    Case(
        "GSN/precision set after fit",
        lambda: fitted_gsn().set_params(precision="half").embed(IMG[:2]),
        ConfigError,
        r"precision must be .*got 'half'",
    ),
    # --- image_augment -----------------------------------------------------------------
    Case(
        "GSN/image_augment unknown",
        lambda: gsn_fit(image_augment={"blurr": 0.5}),
        ConfigError,
        r"image_augment has unknown setting\(s\) \['blurr'\]; known: \['affine_scale'",
    ),
    Case(
        "GSN/image_augment not a dict",
        lambda: gsn_fit(image_augment=[("blur", 0.5)]),
        ConfigError,
        r"image_augment must be a dict of augmentation settings, got list",
    ),
    Case(
        "GSN/image_augment blur > 1",
        lambda: gsn_fit(image_augment={"blur": 2.0}),
        ConfigError,
        r"blur must be a fraction in \[0, 1\], got 2.0",
    ),
    Case(
        "GSN/image_augment scale reversed",
        lambda: gsn_fit(image_augment={"scale": (0.5, 0.2)}),
        ConfigError,
        r"scale must satisfy low <= high",
    ),
    Case(
        "GSN/image_augment jitter nan",
        lambda: gsn_fit(image_augment={"jitter": NAN}),
        ConfigError,
        r"jitter must be a fraction in \[0, 1\], got nan",
    ),
    Case(
        "GSN/image_augment flip str",
        lambda: gsn_fit(image_augment={"flip": "half"}),
        ConfigError,
        r"flip must be a fraction in \[0, 1\], got 'half'",
    ),
    Case(
        "GSN/image_augment shear",
        lambda: gsn_fit(image_augment={"shear": (10, 95)}),
        ConfigError,
        r"shear must lie in \(-90, 90\) degrees",
    ),
    # --- distributed -------------------------------------------------------------------
    Case(
        "GSN/distributed str",
        lambda: gsn_fit(distributed="yes"),
        ConfigError,
        r"distributed must be 'auto', True or False, got 'yes'",
    ),
    Case("GSN/distributed None", lambda: gsn_fit(distributed=None), ConfigError, r"got None"),
    Case("GSN/distributed 1", lambda: gsn_fit(distributed=1), ConfigError, r"must be 'auto', T"),
    Case(
        "GSN/distributed without a process group",
        lambda: gsn_fit(distributed=True),
        ConfigError,
        r"distributed=True needs an initialised torch.distributed process group",
    ),
    Case(
        "GSN/load missing",
        lambda: gm.GridSearchNetwork.load("/nonexistent/model"),
        DataError,
        r"cannot read .*config.json",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case):
    check_case(case)
