"""Images on another scale than [0, 1]: GridSearchNetwork.fit / embed / features warn
(gm.InputScaleWarning, once per call and input), naming what they expect.

The reference for what the warning is about: the network divides uint8 by 255 and takes
any other dtype as it is, so float images on a 0-255 scale embed differently from the
same images as uint8, while the same images divided by 255 embed identically.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import gridmatch as gm

RNG = np.random.default_rng(0)
U8 = RNG.integers(0, 256, size=(16, 16, 16), dtype=np.uint8)  # 16 grayscale 16x16 images
IDS = np.arange(16) // 2
F255 = U8.astype(np.float32)  # the same images on a 0-255 scale
F01 = F255 / 255.0
FAST = dict(dim=8, batch_size=8, grid=(2, 2), progress=False, epochs=0)
EXPECTS = r"expects float images in \[0, 1\] or uint8 in \[0, 255\]"


def scale_warnings(call):
    """The InputScaleWarnings that ``call()`` issues (every one, none filtered out)."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        call()
    return [w for w in got if issubclass(w.category, gm.InputScaleWarning)]


@pytest.fixture(scope="module")
def gsn():
    return gm.GridSearchNetwork(**FAST).fit(U8, IDS)


def test_the_warning_is_exported_and_a_user_warning():
    assert gm.InputScaleWarning is gm.exceptions.InputScaleWarning
    assert issubclass(gm.InputScaleWarning, UserWarning)


def test_what_the_warning_is_about(gsn):
    # reference: uint8 is scaled by 1/255, floats are taken as they are
    E = gsn.embed(U8)
    np.testing.assert_allclose(gsn.embed(F01), E, atol=1e-6)
    with pytest.warns(gm.InputScaleWarning):
        E255 = gsn.embed(F255)
    assert np.abs(E255 - E).max() > 0.1


def test_fit_warns_once_for_0_255_floats_naming_what_it_expects():
    got = scale_warnings(lambda: gm.GridSearchNetwork(**FAST).fit(F255, IDS))
    assert len(got) == 1
    msg = str(got[0].message)
    assert "GridSearchNetwork.fit" in msg and "[0, 255]" in msg
    assert "X holds float32 values in [0, 255]" in msg and "divide them by 255" in msg
    assert got[0].filename == __file__  # points at the caller's line


def test_fit_warns_once_while_training_on_many_steps():
    params = {**FAST, "epochs": 2, "steps_per_epoch": 3}
    got = scale_warnings(lambda: gm.GridSearchNetwork(**params).fit(F255, IDS))
    assert len(got) == 1


@pytest.mark.parametrize(
    ("X", "X255"),
    [
        (U8, F255),
        (F01, F255),
        (F01.astype(np.float64), F255.astype(np.float64)),
        (torch.from_numpy(F01), torch.from_numpy(F255)),
    ],
    ids=["uint8", "float32", "float64", "torch"],
)
def test_fit_and_embed_warn_only_off_the_expected_scale(X, X255):
    assert scale_warnings(lambda: gm.GridSearchNetwork(**FAST).fit(X, IDS).embed(X)) == []
    got = scale_warnings(lambda: gm.GridSearchNetwork(**FAST).fit(X255, IDS).embed(X255))
    assert [w.message.args[0].split(" holds")[0] for w in got] == ["X", "X"]  # fit, embed


@pytest.mark.parametrize(
    "X",
    [F255, F255.astype(np.int64), torch.from_numpy(F255)],
    ids=["float32", "int64", "torch float32"],
)
def test_embed_and_features_warn_once_per_call_not_per_batch(gsn, X):
    for call in (gsn.embed, gsn.features):
        got = scale_warnings(lambda call=call: call(X, batch_size=2))  # 8 batches
        assert len(got) == 1, [str(w.message) for w in got]
        assert f"GridSearchNetwork.{call.__name__}" in str(got[0].message)
        assert got[0].filename == __file__
    with pytest.warns(gm.InputScaleWarning, match=EXPECTS):
        gsn.embed(X)


def test_a_validation_set_on_another_scale_is_named():
    got = scale_warnings(lambda: gm.GridSearchNetwork(**FAST).fit(U8, IDS, X_val=F255, ids_val=IDS))
    assert len(got) == 1 and str(got[0].message).startswith("X_val holds")


def test_the_range_taken_for_0_1_with_a_normalize_setting(gsn):
    # [-1, 2] is taken for [0, 1] (resampling overshoot, added noise); beyond, a warning
    for lo, hi, warns in [(-1.0, 2.0, 0), (0.0, 2.01, 1), (-1.01, 1.0, 1), (-0.05, 1.08, 0)]:
        X = F01.copy()
        X[0, 0, 0], X[1, 0, 0] = lo, hi
        assert len(scale_warnings(lambda X=X: gsn.embed(X))) == warns, (lo, hi)


def test_images_normalised_already(gsn):
    # ImageNet-style standardisation: the network would normalise them a second time
    Z = ((F01 - 0.449) / 0.226).astype(np.float32)
    got = scale_warnings(lambda: gsn.embed(Z))
    assert len(got) == 1 and "set normalize=None" in str(got[0].message)
    # with normalize=None the values reach the backbone as they are: the caller's scale
    own = gm.GridSearchNetwork(**FAST, normalize=None).fit(Z, IDS)
    assert scale_warnings(lambda: own.embed(Z)) == []
    # ... but a non-negative 0-255 scale still warns
    got = scale_warnings(lambda: own.embed(F255))
    assert len(got) == 1 and "normalize=None passes the values" in str(got[0].message)
    assert scale_warnings(lambda: own.embed(F01 * 2)) == []
