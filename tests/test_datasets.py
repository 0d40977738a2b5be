"""Dataset loading: shapes, dtypes, checksums, search order, downloads, error paths."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

import gridmatch as gm
from gridmatch.data import datasets
from gridmatch.exceptions import DataError

SPLITS = [("mnist", "train", 60000), ("mnist", "test", 10000)]
SPLITS += [("fashion-mnist", "train", 60000), ("fashion-mnist", "test", 10000)]


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_pair(folder: Path, split: str, images: bytes, labels: bytes, compress=True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stems = datasets._FILES[split]
    for stem, payload in zip(stems, (images, labels)):
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)


@pytest.mark.parametrize("name,split,n", SPLITS)
def test_load_shapes_dtypes_and_checksums(data_root, name, split, n):
    X, y = gm.datasets.load(name, split=split, root=data_root, verify=True)
    assert X.shape == (n, 28, 28) and X.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    assert y.min() == 0 and y.max() == 9
    assert set(np.unique(y).tolist()) == set(range(10))
    # Independent check: MD5 of the gunzipped file equals the published one and the
    # MD5 rebuilt from the arrays.
    stems = datasets._FILES[split]
    for arr, stem in zip((X, y), stems):
        raw = gzip.decompress((data_root / name / f"{stem}.gz").read_bytes())
        assert hashlib.md5(raw).hexdigest() == datasets.MD5[name][stem]
        assert datasets.md5_of_idx(arr) == datasets.MD5[name][stem]


def test_pixels_match_python_reference(data_root):
    X, y = gm.datasets.load("mnist", split="test", root=data_root)
    raw = gzip.decompress((data_root / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    ref = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    np.testing.assert_array_equal(X, ref)
    raw = gzip.decompress((data_root / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(y, np.frombuffer(raw, dtype=np.uint8, offset=8))
    assert X.flags.writeable and X.flags.c_contiguous


def test_env_var_search(data_root, monkeypatch):
    monkeypatch.setenv("GRIDMATCH_DATA", str(data_root))
    X, _ = gm.datasets.load("fashion-mnist", split="test")
    assert X.shape == (10000, 28, 28)
    found = datasets.find("fashion-mnist", "test")
    assert found is not None and found[0].parent == data_root / "fashion-mnist"


def test_root_may_be_the_folder_itself_and_raw_files(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labs = rng.integers(0, 10, size=5, dtype=np.uint8)
    write_pair(tmp_path, "test", idx_bytes(imgs), idx_bytes(labs), compress=False)
    X, y = gm.datasets.load("mnist", split="test", root=tmp_path)
    np.testing.assert_array_equal(X, imgs)
    np.testing.assert_array_equal(y, labs.astype(np.int64))


def test_root_takes_precedence_over_env(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("GRIDMATCH_DATA", str(data_root))
    imgs = np.zeros((3, 28, 28), np.uint8)
    write_pair(tmp_path / "mnist", "test", idx_bytes(imgs), idx_bytes(np.arange(3)))
    X, _ = gm.datasets.load("mnist", split="test", root=tmp_path)
    assert X.shape == (3, 28, 28)


def test_cache_dir_is_searched(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDMATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    imgs = np.ones((2, 28, 28), np.uint8)
    write_pair(
        tmp_path / "gridmatch" / "fashion-mnist", "train", idx_bytes(imgs), idx_bytes([1, 2])
    )
    X, y = gm.datasets.load("fashion-mnist")
    assert X.shape == (2, 28, 28) and y.tolist() == [1, 2]


def test_missing_offline_says_where(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDMATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_SYSTEM_DIR", tmp_path / "system")
    with pytest.raises(DataError, match=r"GRIDMATCH_DATA.*mnist") as info:
        gm.datasets.load("mnist", root=tmp_path / "empty")
    assert "t10k-images-idx3-ubyte" in str(info.value)
    with pytest.raises(DataError, match="not found"):
        gm.datasets.load("mnist", root=tmp_path, download=False)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:10], "truncated inside the IDX header"),
        (lambda b: b"\x12\x34" + b[2:], "not an IDX file"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "element type"),
        (lambda b: b + b"\x00", "trailing data"),
        (lambda b: b"", "truncated inside the IDX header"),
    ],
)
def test_malformed_images_file(tmp_path, mutate, match):
    imgs = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    write_pair(tmp_path, "train", mutate(imgs), idx_bytes(np.arange(4)))
    with pytest.raises(DataError, match=match):
        gm.datasets.load("mnist", root=tmp_path)


def test_corrupt_gzip(tmp_path):
    write_pair(tmp_path, "train", idx_bytes(np.zeros((4, 28, 28))), idx_bytes(np.arange(4)))
    p = tmp_path / "train-images-idx3-ubyte.gz"
    b = bytearray(p.read_bytes())
    b[12:-8] = bytes(x ^ 0x5A for x in b[12:-8])
    p.write_bytes(bytes(b))
    with pytest.raises(DataError, match="gzip|truncated|trailing|IDX"):
        gm.datasets.load("mnist", root=tmp_path)


def test_count_mismatch_and_wrong_rank(tmp_path):
    write_pair(tmp_path, "train", idx_bytes(np.zeros((4, 28, 28))), idx_bytes(np.arange(5)))
    with pytest.raises(DataError, match="4 images but .* 5 labels"):
        gm.datasets.load("mnist", root=tmp_path)
    write_pair(tmp_path, "train", idx_bytes(np.zeros((4, 28))), idx_bytes(np.arange(4)))
    with pytest.raises(DataError, match="3-D"):
        gm.datasets.load("mnist", root=tmp_path)


def test_huge_header_counts_do_not_allocate(tmp_path):
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 0xFFFFFFFF, 0xFFFFFFFF, 28)
    write_pair(tmp_path, "train", header + b"\x00" * 10, idx_bytes(np.arange(4)))
    with pytest.raises(DataError, match="larger than 4 GiB"):
        gm.datasets.load("mnist", root=tmp_path)


def test_verify_detects_non_official_files(tmp_path):
    write_pair(tmp_path, "test", idx_bytes(np.zeros((4, 28, 28))), idx_bytes(np.arange(4)))
    gm.datasets.load("mnist", split="test", root=tmp_path)  # fine without verify
    with pytest.raises(DataError, match="checksum mismatch"):
        gm.datasets.load("mnist", split="test", root=tmp_path, verify=True)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        gm.datasets.load("cifar")
    with pytest.raises(ValueError, match="split must be"):
        gm.datasets.load("mnist", split="val")


class _Server:
    """A loopback HTTP server over a folder (stands in for the official mirror)."""

    def __init__(self, folder: Path):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
            *a, directory=str(folder), **k
        )
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a, **k: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDMATCH_DATA", raising=False)
    monkeypatch.delenv("GRIDMATCH_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_SYSTEM_DIR", tmp_path / "system")
    return tmp_path / "cache" / "gridmatch"


def test_download_verifies_and_caches(data_root, tmp_path, isolated_cache, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for stem in datasets._FILES["test"]:
        # Recompress: the served .gz differs from ours, the content is the official one.
        raw = gzip.decompress((data_root / "mnist" / f"{stem}.gz").read_bytes())
        (mirror / f"{stem}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    with _Server(mirror) as srv:
        monkeypatch.setitem(datasets.MIRRORS, "mnist", [srv.url + "missing/", srv.url])
        X, y = gm.datasets.load("mnist", split="test")
    assert X.shape == (10000, 28, 28) and y.shape == (10000,)
    cached = sorted(p.name for p in (isolated_cache / "mnist").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    # Second load comes from the cache: no mirror needed.
    monkeypatch.setitem(datasets.MIRRORS, "mnist", [])
    X2, _ = gm.datasets.load("mnist", split="test")
    np.testing.assert_array_equal(X, X2)


def test_download_with_bad_checksum_leaves_nothing(tmp_path, isolated_cache, monkeypatch):
    mirror = tmp_path / "mirror"
    write_pair(mirror, "test", idx_bytes(np.zeros((4, 28, 28))), idx_bytes(np.arange(4)))
    with _Server(mirror) as srv:
        monkeypatch.setitem(datasets.MIRRORS, "mnist", [srv.url])
        with pytest.raises(DataError, match="checksum mismatch.*Put the IDX files"):
            gm.datasets.load("mnist", split="test")
    folder = isolated_cache / "mnist"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_download_unreachable_mirror(isolated_cache, monkeypatch):
    # A closed loopback port: the connection is refused at once.
    monkeypatch.setitem(datasets.MIRRORS, "fashion-mnist", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError, match="could not download fashion-mnist"):
        gm.datasets.load("fashion-mnist", split="test")


@pytest.mark.parametrize("name", datasets.NAMES)
@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_sample_is_the_head_of_the_official_split(data_root, name, split):
    Xs, ys = gm.datasets.load_sample(name, split)
    n = datasets.SAMPLE_SIZES[split]
    assert Xs.shape == (n, 28, 28) and Xs.dtype == np.uint8 and ys.dtype == np.int64
    X, y = gm.datasets.load(name, split, root=data_root)
    np.testing.assert_array_equal(Xs, X[:n])
    np.testing.assert_array_equal(ys, y[:n])
