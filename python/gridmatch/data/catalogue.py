"""Image catalogues: product photos as file paths and product ids, never pixels.

An :class:`ImageCatalogue` is an immutable list of images on disk, each with the id of
the product it shows (a SKU string or an integer), optionally a class (category) and a
split name. Pixels are decoded only on request (:meth:`ImageCatalogue.load`, meant for
small sets).

Paths are checked when a catalogue is built (eagerly: every file must exist, no path may
appear twice, and with a ``root`` every path must lie inside it after resolving ``..``
and symbolic links); the image *content* is read only by :meth:`~ImageCatalogue.load`.
Training straight from a catalogue streams it with
:class:`~gridmatch.datasets.ImageLoader` (decoding and augmentation in Rust).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .._base.exceptions import ConfigError, ShapeError
from .._base.params import flag, integer
from .._base.validate import host_array
from .catalogue_checks import frozen, fspaths, labels, resolve, split_names
from .catalogue_files import DEFAULT_EXTENSIONS, read_csv, scan_folder
from .decode import read_square
from .inshop_files import catalogue_fields, read_partition
from .splits import deal

__all__ = ["DEFAULT_EXTENSIONS", "LOAD_MAX_BYTES", "MAX_IMAGE_PIXELS", "ImageCatalogue"]

#: Largest image (width × height, read from the file's header before decoding) that
#: :meth:`ImageCatalogue.load` decodes; larger ones raise ``DataError``.
MAX_IMAGE_PIXELS = 100_000_000

#: Largest array (bytes) :meth:`ImageCatalogue.load` returns by default (1 GiB).
LOAD_MAX_BYTES = 1 << 30


class ImageCatalogue:
    """Images on disk with their product ids, optional classes and split names.

    A catalogue never holds pixels; :meth:`load` decodes a small one into an array. It
    is a value object: its arrays are read-only and :meth:`subset` (a part) and
    :meth:`with_split` (split names drawn by product) return a new catalogue. Build one
    with :meth:`from_folder`, :meth:`from_csv`, :meth:`from_inshop` or
    :meth:`from_paths` (the same as calling the class).

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Image files. Relative paths are resolved against ``root`` (or the working
        folder).
    ids : sequence of str or int
        Product id of each image: strings (SKUs) or integers, not both, no ``None``/NaN.
    classes : sequence of str or int, optional
        Class (category) of each image.
    split : str or sequence of str, optional
        Split name of each image (one string: the same for every image).
    root : path-like, optional
        When given, every path must lie inside it after resolving ``..`` and symbolic
        links.

    Attributes
    ----------
    paths : ndarray of object (str), shape (n,)
        Canonical absolute paths (``os.path.realpath``), unique.
    ids : ndarray, shape (n,)
        The ids as given: int64 for integer ids, object (``str``) for string ids.
    codes : ndarray of int64, shape (n,)
        Dense codes of the ids: the first distinct id gets 0, the next new one 1, …
        (order of first appearance). Subsets keep their parent's codes.
    classes : ndarray or None
        Classes as given (int64 or object ``str``), or ``None``.
    split : ndarray of object (str) or None
        Split names, or ``None``.

    Raises
    ------
    ShapeError
        Lengths differ, no images, or an id/class is ``None``, NaN, a float, an empty
        string, or strings and integers are mixed.
    DataError
        A file does not exist, a path appears twice, or a path lies outside ``root``.

    Notes
    -----
    Files are checked for existence when the catalogue is built (one ``stat`` each);
    their content is read only by :meth:`load`. For training, stream the catalogue with
    :class:`~gridmatch.datasets.ImageLoader` (decoding and augmentation in Rust).

    Examples
    --------
    >>> cat = gm.datasets.ImageCatalogue.from_folder("photos/")  # doctest: +SKIP
    >>> cat.subset("query").load(128).shape  # doctest: +SKIP
    (1400, 128, 128, 3)
    """

    __slots__ = ("_paths", "_ids", "_codes", "_vocab", "_index", "_classes", "_split")

    def __init__(self, paths, ids, classes=None, split=None, *, root=None):
        base = os.getcwd() if root is None else os.fspath(Path(root).expanduser())
        self._build(fspaths(paths), ids, classes, split, root, base, "paths[{}]".format)

    def _build(self, paths, ids, classes, split, root, base, where, hint="") -> None:
        ids = labels(ids, "ids", "product id")
        n = len(paths)
        if n == 0:
            raise ShapeError("a catalogue needs at least one image; paths is empty")
        if ids.shape[0] != n:
            raise ShapeError(f"paths has {n} entries but ids has {ids.shape[0]}")
        if classes is not None:
            classes = labels(classes, "classes", "class")
            if classes.shape[0] != n:
                raise ShapeError(f"paths has {n} entries but classes has {classes.shape[0]}")
        if split is not None:
            split = split_names(split, n)
            if split.shape[0] != n:
                raise ShapeError(f"paths has {n} entries but split has {split.shape[0]}")
        root = None if root is None else os.fspath(Path(root).expanduser())
        index: dict = {}
        codes = np.array([index.setdefault(v, len(index)) for v in ids.tolist()], np.int64)
        vocab = np.empty(len(index), dtype=ids.dtype)
        vocab[:] = list(index)
        self._paths = frozen(resolve(paths, base, root, where, hint))
        self._ids, self._codes, self._vocab = frozen(ids), frozen(codes), frozen(vocab)
        self._index = index
        self._classes = None if classes is None else frozen(classes)
        self._split = None if split is None else frozen(split)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_paths(cls, paths, ids, classes=None, split=None, *, root=None) -> ImageCatalogue:
        """A catalogue of the given files (the same as ``ImageCatalogue(...)``).

        Parameters
        ----------
        paths, ids, classes, split, root
            See :class:`ImageCatalogue`.

        Returns
        -------
        ImageCatalogue
        """
        return cls(paths, ids, classes, split, root=root)

    @classmethod
    def from_folder(
        cls,
        root: str | os.PathLike,
        extensions: Iterable[str] = DEFAULT_EXTENSIONS,
        *,
        allow_outside: bool = False,
    ) -> ImageCatalogue:
        """A catalogue of one folder per product, optionally grouped in class folders.

        Two layouts are recognised (detected from the folders' content):

        - ``root/<product>/<image>``: ids are the product folder names, no classes;
        - ``root/<class>/<product>/<image>``: ids are the product folder names, classes
          the class folder names.

        Names starting with ``.`` and files with other extensions are ignored. Folders
        and files are read in sorted (code-point) order, so the catalogue is the same
        on every machine. Ids are strings (the folder names, also when numeric).

        Parameters
        ----------
        root : path-like
            The catalogue's folder; no image may resolve outside it (unless
            ``allow_outside``).
        extensions : iterable of str, default :data:`DEFAULT_EXTENSIONS`
            File name endings counted as images (case-insensitive).
        allow_outside : bool, default False
            Accept images that resolve outside ``root`` through symbolic links in it (a
            linked image file or product folder). By default such a link is refused, so
            that a catalogue built from a folder reads nothing but that folder's files.

        Returns
        -------
        ImageCatalogue

        Raises
        ------
        DataError
            ``root`` is not a folder, holds no images, holds images directly (one folder
            per product is expected), mixes the two layouts, is nested deeper, a folder
            holds both images and sub-folders, or one product name appears under two
            class folders; a symbolic link in it leads to an image outside it (without
            ``allow_outside=True``; the message names the option).
        ConfigError
            ``allow_outside`` is not a bool, or ``extensions`` is empty or not a sequence
            of strings.
        """
        allow_outside = flag(allow_outside, "allow_outside")
        root = Path(root).expanduser()
        paths, ids, classes = scan_folder(root, extensions)
        hint = (
            "; a symbolic link in the folder leads there: pass allow_outside=True to "
            "ImageCatalogue.from_folder to accept images outside the folder"
        )
        out = cls.__new__(cls)
        out._build(
            paths,
            ids,
            classes,
            None,
            None if allow_outside else root,
            "",
            "{}".format,
            hint,
        )
        return out

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike, root: str | os.PathLike | None = None, id_type: str = "auto"
    ) -> ImageCatalogue:
        """A catalogue listed in a CSV file with a header row.

        Columns (by header name, in any order; other columns are ignored): ``path`` and
        ``id`` are required, ``class`` and ``split`` optional. Cells are stripped of
        surrounding spaces and may not be empty; blank lines are skipped.

        Parameters
        ----------
        path : path-like
            The CSV file (UTF-8, a byte-order mark is allowed).
        root : path-like, optional
            Relative image paths are resolved against ``root``, and every image must lie
            inside it. Without it, relative paths are resolved against the CSV's folder
            and not confined.
        id_type : {"auto", "int", "str"}, default "auto"
            ``"auto"``: integer ids when every id cell is a plain decimal integer (no
            sign ``+``, no leading zero, within int64), else strings, so ``"007"`` stays
            a string. The ``class`` column follows the same rule. ``"int"`` / ``"str"``
            force the id type.

        Returns
        -------
        ImageCatalogue

        Raises
        ------
        DataError
            The file is missing, empty or not UTF-8; a required column is missing
            (named); a row is short or has an empty cell; ``id_type="int"`` and an id is
            not an integer; or a listed image is missing, duplicated or outside ``root``
            (the CSV line is named).
        ConfigError
            ``id_type`` is not one of the three.
        """
        path = Path(path).expanduser()
        paths, ids, classes, split, base, where = read_csv(path, root, id_type)
        out = cls.__new__(cls)
        out._build(paths, ids, classes, split, root, base, where)
        return out

    @classmethod
    def from_inshop(cls, root: str | os.PathLike, split: str | None = None) -> ImageCatalogue:
        """DeepFashion In-shop's images (``list_eval_partition.txt`` + ``img/``).

        The same as ``gm.datasets.InShop(root).catalogue(split)``; see
        :meth:`gridmatch.datasets.InShop.catalogue`.

        Parameters
        ----------
        root : path-like
            The In-shop folder.
        split : {"train", "query", "gallery"}, optional
            One split; default all images, in the partition file's order.

        Returns
        -------
        ImageCatalogue
        """
        paths, ids, classes, names = catalogue_fields(read_partition(root), split)
        return cls(paths, ids, classes, names, root=Path(root).expanduser())

    # ------------------------------------------------------------------ accessors
    paths = property(lambda self: self._paths, doc="Canonical absolute paths (object array).")
    ids = property(lambda self: self._ids, doc="The ids as given (int64 or object str).")
    codes = property(lambda self: self._codes, doc="int64 codes of the ids.")
    classes = property(lambda self: self._classes, doc="Classes as given, or None.")
    split = property(lambda self: self._split, doc="Split names (object str), or None.")

    def __len__(self) -> int:
        return int(self._paths.shape[0])

    def __repr__(self) -> str:
        parts = [f"{len(self)} images", f"{len(np.unique(self._codes))} ids"]
        if self._classes is not None:
            parts.append(f"{len(set(self._classes.tolist()))} classes")
        if self._split is not None:
            counts = Counter(self._split.tolist())
            parts.append("split " + " ".join(f"{k}={v}" for k, v in counts.items()))
        return f"ImageCatalogue({', '.join(parts)})"

    def codes_of(self, ids: Any) -> Any:
        """Codes of ids (the inverse of :meth:`id_of`).

        Parameters
        ----------
        ids : str, int or sequence of them
            Ids known to this catalogue (or to the catalogue it is a subset of).

        Returns
        -------
        int or ndarray of int64
            An ``int`` for one id, else an array.

        Raises
        ------
        ShapeError
            An id is unknown.
        """
        ids = host_array(ids, "ids")
        one = isinstance(ids, str) or np.ndim(ids) == 0
        values = [ids] if one else np.asarray(ids, dtype=object).tolist()
        want = str if self._ids.dtype == object else int
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            key = int(v) if isinstance(v, (np.integer, int)) and not isinstance(v, bool) else v
            key = str(key) if isinstance(key, str) else key
            if type(key) is not want or key not in self._index:
                raise ShapeError(f"id {v!r} is not in this catalogue (its ids are {want.__name__})")
            out[i] = self._index[key]
        return int(out[0]) if one else out

    def id_of(self, codes: Any) -> Any:
        """Ids of codes (the inverse of :meth:`codes_of`).

        Parameters
        ----------
        codes : int or array-like of int
            Codes in ``[0, number of distinct ids)``.

        Returns
        -------
        id or ndarray
            One id (``str`` or ``int``) for one code, else an array like :attr:`ids`.

        Raises
        ------
        ShapeError
            A code is not an integer or out of range.
        """
        arr = np.asarray(host_array(codes, "codes"))
        if arr.dtype.kind not in "iu" and arr.size:
            raise ShapeError(f"codes must be integers, got dtype {arr.dtype}")
        arr, m = arr.astype(np.int64), self._vocab.shape[0]
        bad = arr[(arr < 0) | (arr >= m)]
        if bad.size:
            raise ShapeError(f"codes must lie in [0, {m}), got {bad.ravel()[0]}")
        if arr.ndim == 0:
            v = self._vocab[int(arr)]
            return int(v) if self._vocab.dtype != object else v
        return self._vocab[arr]

    def subset(self, which: Any) -> ImageCatalogue:
        """The images of a split, of a boolean mask or at indices.

        Parameters
        ----------
        which : str, array-like of bool (length ``len(self)``) or of int
            A split name, a mask, or indices (negative ones count from the end; no
            index twice).

        Returns
        -------
        ImageCatalogue
            In this catalogue's order (mask, split) or the indices' order. Codes and the
            id mappings are those of this catalogue. May be empty.

        Raises
        ------
        ConfigError
            Unknown split name, or the catalogue has no split names (a ``ValueError``).
        ShapeError
            A mask of the wrong length, an index out of range or repeated, another dtype.
        """
        n = len(self)
        if isinstance(which, str):
            if self._split is None:
                raise ConfigError(
                    f"this catalogue has no split names; cannot select {which!r} (give them "
                    "with with_split(train=..., query=..., gallery=...))"
                )
            idx = np.flatnonzero(self._split == which)
            if idx.size == 0:
                names = ", ".join(map(repr, dict.fromkeys(self._split.tolist())))
                raise ConfigError(f"no split {which!r} in this catalogue; it has {names}")
        else:
            arr = np.asarray(host_array(which, "which"))
            if arr.ndim != 1:
                raise ShapeError(f"which must be a split name, a 1-D mask or indices: {arr.shape}")
            if arr.dtype == bool:
                if arr.shape[0] != n:
                    raise ShapeError(f"mask has {arr.shape[0]} entries, catalogue has {n}")
                idx = np.flatnonzero(arr)
            elif arr.dtype.kind in "iu" or arr.size == 0:
                idx = arr.astype(np.int64)
                bad = idx[(idx < -n) | (idx >= n)]
                if bad.size:
                    raise ShapeError(f"indices must lie in [-{n}, {n}), got {bad[0]}")
                idx = np.where(idx < 0, idx + n, idx)
                if np.unique(idx).size != idx.size:
                    raise ShapeError("indices repeat; a catalogue holds each image once")
            else:
                raise ShapeError(f"which must be a split name, a bool mask or ints: {arr.dtype}")
        out = object.__new__(type(self))
        out._paths, out._ids = frozen(self._paths[idx]), frozen(self._ids[idx])
        out._codes = frozen(self._codes[idx])
        out._vocab, out._index = self._vocab, self._index
        out._classes = None if self._classes is None else frozen(self._classes[idx])
        out._split = None if self._split is None else frozen(self._split[idx])
        return out

    def with_split(
        self,
        train: float | None = None,
        query: float | None = None,
        gallery: float | None = None,
        *,
        seed: int = 0,
    ) -> ImageCatalogue:
        """This catalogue with split names ``"train"``, ``"query"`` and ``"gallery"``
        drawn by product, as DeepFashion In-shop's.

        The products (all images of one id) are shuffled (seeded) and dealt out: the
        first ``train`` share of them give all their images to ``"train"``; the next
        ``query + gallery`` share are the evaluation products, and the images of each
        of them are divided between ``"query"`` and ``"gallery"`` in the proportion
        ``query : gallery`` (at random). So a product never appears both in training
        and in evaluation, while the queries find their product's other images in the
        gallery, as In-shop's query and gallery do (``gm.retrieval.evaluate(E_q,
        q.codes, E_g, g.codes)`` then scores every query). An evaluation product with
        a single image gives it to the gallery (as a query it could match nothing); one
        with two or more gives at least one image to each side when both shares are
        positive. Products beyond the three shares are left out of the result.

        Parameters
        ----------
        train, query, gallery : float or int, optional
            The shares: fractions of the products (floats in ``[0, 1]``, adding up to at
            most 1; a part's number of products is rounded to the nearest) or numbers
            of products (ints, adding up to at most the number of products), not both;
            halves are rounded up.
            Not given, ``train`` is 0 and ``query`` and ``gallery`` share what the
            given ones leave equally: ``with_split(train=0.8)`` deals 80 % of the
            products to training and splits each other product's images in half.
        seed : int, default 0
            Seeds the draw: the same seed gives the same split.

        Returns
        -------
        ImageCatalogue
            The images dealt out, in this catalogue's order, with their split names
            (a previous split is replaced); codes and the id mappings are this
            catalogue's. ``subset("query")`` etc. select the parts.

        Raises
        ------
        ConfigError
            A share that is negative, not a number, a fraction above 1, or fractions
            mixed with counts; shares adding up to more than 1 (or than the number of
            products); a bad ``seed``; or shares that leave no image.

        Examples
        --------
        >>> cat = gm.datasets.ImageCatalogue.from_folder("photos/")  # doctest: +SKIP
        >>> cat = cat.with_split(train=0.5, query=0.25, gallery=0.25, seed=0)  # doctest: +SKIP
        >>> q, g = cat.subset("query"), cat.subset("gallery")  # doctest: +SKIP
        """
        keep, names = deal(self._codes, train, query, gallery, seed)
        out = self.subset(keep)
        out._split = frozen(names[keep].astype(object))
        return out

    # ------------------------------------------------------------------ pixels
    def load(
        self,
        size: int,
        mode: str = "RGB",
        *,
        max_bytes: int = LOAD_MAX_BYTES,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> np.ndarray:
        """Decode every image into one array (for small sets), square and resized.

        Each image is resized so that its shorter side is ``size`` and centre-cropped
        to ``size × size`` (one bilinear resampling of the central square, as
        ``PIL.ImageOps.fit``); smaller images (down to 1×1) are enlarged. Transparent
        images (alpha channel or a transparent palette colour) are composited onto
        white; grayscale and palette images are converted to RGB; 16-bit grayscale is
        scaled to 8 bits. The EXIF orientation is applied first (a photo stored sideways
        with orientation 6 comes out upright, as viewers show it). The first frame of
        animated files is read.

        Parameters
        ----------
        size : int
            Side of the output images, in pixels.
        mode : {"RGB", "L"}, default "RGB"
            Colour (3 channels) or grayscale.
        max_bytes : int, default :data:`LOAD_MAX_BYTES` (1 GiB)
            Refuse to build a larger array.
        max_pixels : int, default :data:`MAX_IMAGE_PIXELS` (100 million)
            Refuse to decode an image whose header claims more pixels (a
            decompression-bomb guard, checked before decoding whatever PIL's own limit).

        Returns
        -------
        ndarray of uint8, shape (n, size, size, 3) for "RGB", (n, size, size) for "L"

        Raises
        ------
        ShapeError
            The array would exceed ``max_bytes`` (load a :meth:`subset`).
        DataError
            An image is missing, unreadable, truncated, too large or of an unsupported
            mode (32-bit integer or float); the message names the file.
        ConfigError
            Bad ``size``, ``mode``, ``max_bytes`` or ``max_pixels`` (a ``ValueError``).
        """
        size = integer(size, "size", 1)
        max_bytes = integer(max_bytes, "max_bytes", 1)
        max_pixels = integer(max_pixels, "max_pixels", 1)
        if mode not in ("RGB", "L"):
            raise ConfigError(f"mode must be 'RGB' or 'L', got {mode!r}")
        shape = (len(self), size, size) + ((3,) if mode == "RGB" else ())
        nbytes = int(np.prod(shape, dtype=np.int64))
        if nbytes > max_bytes:
            raise ShapeError(
                f"load({size}) of {len(self)} images needs {nbytes / 2**30:.2f} GiB, over "
                f"max_bytes={max_bytes / 2**30:.2f} GiB; load() is for small sets: load a "
                "subset (catalogue.subset(...)), raise max_bytes, or stream batches with "
                "gm.datasets.ImageLoader."
            )
        out = np.empty(shape, dtype=np.uint8)
        for k, p in enumerate(self._paths.tolist()):
            out[k] = read_square(p, size, mode, max_pixels)
        return out
