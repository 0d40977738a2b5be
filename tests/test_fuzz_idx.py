"""Property tests of the IDX reader: random and mutated files never crash it.

Any input either loads into arrays equal to a pure-Python parse of the same bytes, or
raises ``DataError``; nothing else (no panic, no huge allocation from lying headers).
"""

from __future__ import annotations

import gzip
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmatch import _core
from gridmatch.exceptions import DataError


def reference_parse(raw: bytes):
    """Pure-Python IDX parse: (dims, data) or None when the bytes are not valid."""
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] != 8 or not 1 <= raw[3] <= 4:
        return None
    nd = raw[3]
    if len(raw) < 4 + 4 * nd:
        return None
    dims = struct.unpack(f">{nd}I", raw[4 : 4 + 4 * nd])
    size = int(np.prod(dims, dtype=object))
    body = raw[4 + 4 * nd :]
    if len(body) != size:
        return None
    return dims, body


def idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def load(tmp_path, images: bytes, labels: bytes, compress: bool):
    pi, pl = tmp_path / "images", tmp_path / "labels"
    pi.write_bytes(gzip.compress(images) if compress else images)
    pl.write_bytes(gzip.compress(labels) if compress else labels)
    return _core.read_idx_dataset(str(pi), str(pl))


def check(tmp_path, images: bytes, labels: bytes, compress: bool):
    ri, rl = reference_parse(images), reference_parse(labels)
    valid = (
        ri is not None
        and rl is not None
        and len(ri[0]) == 3
        and len(rl[0]) == 1
        and ri[0][0] == rl[0][0]
    )
    try:
        X, y = load(tmp_path, images, labels, compress)
    except DataError:
        assert not valid
        return
    assert valid
    np.testing.assert_array_equal(X, np.frombuffer(ri[1], np.uint8).reshape(ri[0]))
    np.testing.assert_array_equal(y, np.frombuffer(rl[1], np.uint8).astype(np.int64))


small_images = st.builds(
    lambda n, r, c, seed: np.random.default_rng(seed).integers(0, 256, (n, r, c), dtype=np.uint8),
    st.integers(0, 4),
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(0, 2**32 - 1),
)

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    images=small_images,
    cut=st.integers(0, 200),
    flip=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=3),
    extra=st.binary(max_size=3),
    compress=st.booleans(),
)
def test_mutated_files_load_or_raise_data_error(tmp_path, images, cut, flip, extra, compress):
    raw = bytearray(idx(images))
    for pos, mask in flip:
        if pos < len(raw):
            raw[pos] ^= mask
    raw = bytes(raw[: max(0, len(raw) - cut % (len(raw) + 1))]) if cut % 3 == 0 else bytes(raw)
    raw += extra if cut % 5 == 0 else b""
    labels = idx(np.arange(images.shape[0], dtype=np.uint8))
    check(tmp_path, raw, labels, compress)


@SETTINGS
@given(raw=st.binary(max_size=64), compress=st.booleans())
def test_random_bytes_never_crash(tmp_path, raw, compress):
    check(tmp_path, raw, idx(np.zeros(1, np.uint8)), compress)


@SETTINGS
@given(dims=st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3))
def test_lying_headers_are_rejected_without_allocating(tmp_path, dims):
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", *dims)
    check(tmp_path, header + b"\x01" * 16, idx(np.zeros(dims[0] % 7, np.uint8)), False)
