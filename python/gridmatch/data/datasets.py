"""Datasets: MNIST and Fashion-MNIST from IDX files.

:func:`load` looks for the IDX files (gzip-compressed or raw) in, in order:

1. the ``root`` argument (the folder holding the files, or its parent),
2. ``$GRIDMATCH_DATA/<name>/``,
3. ``~/.cache/gridmatch/<name>/``,
4. ``/usr/share/datasets/<name>/`` (Debian's ``dataset-fashion-mnist`` package),

and otherwise downloads them from the official mirrors into
``~/.cache/gridmatch/<name>/``, verifying their MD5 checksums. Offline, with no files
found, it raises :class:`~gridmatch.exceptions.DataError` saying where to put them.
The IDX parser is Rust; malformed files raise ``DataError``, never crash.

The public module is :mod:`gridmatch.datasets`, which adds the photo catalogues and
benchmarks of the other ``gridmatch.data`` modules.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from .. import _core
from .._base.exceptions import DataError

__all__ = ["CLASS_NAMES", "NAMES", "SAMPLE_SIZES", "find", "load", "load_sample", "md5_of_idx"]

NAMES = ("mnist", "fashion-mnist")

#: Class names by label.
CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: MD5 of the uncompressed IDX files.
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

#: Official mirrors, tried in order; each serves ``<file>.gz``.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

_SYSTEM_DIR = Path("/usr/share/datasets")


def _check_name(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(NAMES)}")
    return name


def _check_split(split: str) -> str:
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _file_in(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _candidates(name: str, root: str | os.PathLike | None) -> list[Path]:
    folders: list[Path] = []
    if root is not None:
        root = Path(root).expanduser()
        folders += [root / name, root]
    env = os.environ.get("GRIDMATCH_DATA")
    if env:
        folders.append(Path(env).expanduser() / name)
    folders.append(_cache_dir(name))
    folders.append(_SYSTEM_DIR / name)
    return folders


def _cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gridmatch" / name


def find(
    name: str, split: str = "train", root: str | os.PathLike | None = None
) -> tuple[Path, Path] | None:
    """Locate the images and labels files of a dataset split without downloading.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        Dataset name.
    split : {"train", "test"}
        Which split.
    root : path-like, optional
        A folder to look in first (the folder holding the files, or its parent).

    Returns
    -------
    tuple of Path or None
        ``(images_file, labels_file)``, or ``None`` when no searched folder has both.
    """
    _check_name(name)
    stems = _FILES[_check_split(split)]
    for folder in _candidates(name, root):
        images, labels = (_file_in(folder, s) for s in stems)
        if images is not None and labels is not None:
            return images, labels
    return None


def md5_of_idx(array: np.ndarray) -> str:
    """MD5 of the uncompressed IDX file that holds ``array`` (uint8).

    The IDX format is a header (magic number, big-endian dimensions) followed by the
    raw bytes, so the checksum of a loaded array can be compared with the published
    checksums of the files without re-reading them.

    Parameters
    ----------
    array : ndarray of uint8 or int64 with values in [0, 255]
        Images ``(n, rows, cols)`` or labels ``(n,)``.

    Returns
    -------
    str
        Hex digest.
    """
    data = np.ascontiguousarray(array)
    if data.dtype.kind not in "uib":
        raise ValueError(f"array must hold integers (uint8 IDX data), got dtype {data.dtype}")
    if data.dtype != np.uint8:
        if data.size and (data.min() < 0 or data.max() > 255):
            raise ValueError("values outside [0, 255] cannot come from a uint8 IDX file")
        data = data.astype(np.uint8)
    header = bytes([0, 0, 0x08, data.ndim]) + struct.pack(f">{data.ndim}I", *data.shape)
    h = hashlib.md5(header)
    h.update(data.tobytes())
    return h.hexdigest()


def _where_to_put(name: str) -> str:
    stems = _FILES["train"] + _FILES["test"]
    return (
        f"Put the IDX files ({', '.join(s + '[.gz]' for s in stems)}) in one of: "
        f"the root= argument, $GRIDMATCH_DATA/{name}/, {_cache_dir(name)}/, "
        f"or {_SYSTEM_DIR / name}/ (Debian: apt install dataset-fashion-mnist)."
    )


def _download(name: str, stems: tuple[str, ...], timeout: float = 30.0) -> None:
    """Download ``stems`` of ``name`` into the cache folder, verifying checksums.

    Each file is written to a temporary file and renamed into place only after its
    checksum matched, so an interrupted download never leaves a corrupt file.
    """
    target = _cache_dir(name)
    errors = []
    for stem in stems:
        if _file_in(target, stem) is not None:
            continue
        expected = MD5[name][stem]
        for mirror in MIRRORS[name]:
            url = f"{mirror}{stem}.gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    payload = response.read()
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {e}")
                continue
            try:
                got = hashlib.md5(gzip.decompress(payload)).hexdigest()
            except (OSError, EOFError) as e:
                errors.append(f"{url}: not a valid gzip file ({e})")
                continue
            if got != expected:
                errors.append(f"{url}: checksum mismatch (MD5 {got}, expected {expected})")
                continue
            target.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{stem}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(payload)
                os.replace(tmp, target / f"{stem}.gz")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            break
        else:
            detail = "; ".join(errors[-len(MIRRORS[name]) :])
            raise DataError(
                f"could not download {name} file {stem}: {detail}. {_where_to_put(name)}"
            )


def load(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    download: bool | None = None,
    verify: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST or Fashion-MNIST.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        Dataset name.
    split : {"train", "test"}, default "train"
        ``"train"``: 60,000 images; ``"test"``: the 10,000 ``t10k`` images.
    root : path-like, optional
        A folder to search first (the folder holding the files, or its parent).
    download : bool, optional
        Download from the official mirrors when no local copy is found. Defaults to
        ``True`` unless the environment variable ``GRIDMATCH_OFFLINE`` is set.
    verify : bool, default False
        Check the loaded images and labels against the published MD5 checksums.
        Downloads are always verified.

    Returns
    -------
    images : ndarray of uint8, shape (n, 28, 28)
    labels : ndarray of int64, shape (n,)

    Raises
    ------
    DataError
        No files found and download impossible (the message says where to put the
        files), a file is truncated or malformed, images and labels disagree in count,
        or ``verify=True`` and a checksum differs.
    ValueError
        Unknown ``name`` or ``split``.

    Examples
    --------
    >>> X, y = gm.datasets.load("fashion-mnist", split="test")  # doctest: +SKIP
    >>> X.shape, X.dtype, y.shape
    ((10000, 28, 28), dtype('uint8'), (10000,))
    """
    _check_name(name)
    _check_split(split)
    if download is None:
        download = not os.environ.get("GRIDMATCH_OFFLINE")
    found = find(name, split, root)
    if found is None:
        if not download:
            raise DataError(f"{name} ({split}) not found. {_where_to_put(name)}")
        _download(name, _FILES[split])
        found = find(name, split, root)
        if found is None:  # pragma: no cover - download wrote the files
            raise DataError(f"{name} ({split}) not found after download. {_where_to_put(name)}")
    images_path, labels_path = found
    images, labels = _core.read_idx_dataset(str(images_path), str(labels_path))
    if verify:
        arrays: tuple[np.ndarray, np.ndarray] = (images, labels)
        for arr, path, stem in zip(arrays, found, _FILES[split]):
            got = md5_of_idx(arr)
            if got != MD5[name][stem]:
                raise DataError(
                    f"{path}: checksum mismatch (MD5 {got}, expected {MD5[name][stem]}); "
                    "the file is not the official release"
                )
    return images, labels


#: Sizes of the sample shipped inside the package: the first images of each split.
SAMPLE_SIZES = {"train": 2000, "test": 1000}


def load_sample(name: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load the small sample of a dataset shipped inside the package.

    The sample holds the first 2,000 training and the first 1,000 test images of
    MNIST and Fashion-MNIST (about 2 MB in all), so the demo and the notebooks run
    offline when the full datasets can be neither found nor downloaded.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        Dataset name.
    split : {"train", "test"}, default "train"
        Which split.

    Returns
    -------
    images : ndarray of uint8, shape (n, 28, 28)
    labels : ndarray of int64, shape (n,)
    """
    _check_name(name)
    _check_split(split)
    from importlib.resources import files

    key = f"{name.replace('-', '_')}_{split}"
    with files(__package__).joinpath("sample.npz").open("rb") as f:
        with np.load(f) as z:
            return z[f"{key}_images"].copy(), z[f"{key}_labels"].astype(np.int64)
