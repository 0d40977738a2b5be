"""Catalogues read from disk: a folder of product folders, or a CSV file listing images."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._base.exceptions import ConfigError, DataError
from .catalogue_checks import INT64_MAX

__all__ = ["DEFAULT_EXTENSIONS", "read_csv", "scan_folder"]

#: File name extensions that ``ImageCatalogue.from_folder`` treats as images (any case).
DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

_INT_TEXT = re.compile(r"-?[1-9][0-9]*|0")


def scan_folder(root: Path, extensions: Iterable[str]) -> tuple[list[str], list[str], Any]:
    """``(paths, ids, classes or None)`` of the images of the folder ``root``:
    ``root/<product>/<image>`` or ``root/<class>/<product>/<image>`` (see
    ``ImageCatalogue.from_folder``, which documents the errors)."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if isinstance(extensions, str):
        extensions = (extensions,)
    try:
        exts = tuple("." + e.lower().lstrip(".") for e in extensions)
    except (TypeError, AttributeError):
        raise ConfigError(
            f"extensions must be file name endings (strings such as 'jpg'), got {extensions!r}"
        ) from None
    if not exts:
        raise ConfigError("extensions must name at least one file name ending")

    def scan(folder: Path) -> tuple[list[str], list[Path]]:
        images, folders = [], []
        for e in sorted(os.scandir(folder), key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            if e.is_dir():
                folders.append(Path(e.path))
            elif e.is_file() and e.name.lower().endswith(exts):
                images.append(e.path)
        if images and folders:
            raise DataError(
                f"{folder} holds both images and sub-folders ({folders[0].name}/); "
                "expected root/<product>/<image> or root/<class>/<product>/<image>"
            )
        return images, folders

    top_images, top = scan(root)
    if top_images:
        raise DataError(
            f"{top_images[0]}: image directly in {root}; expected one folder per "
            "product (root/<product>/<image>)"
        )
    paths, ids, classes, layouts = [], [], [], set()
    owner: dict[str, Path] = {}
    for folder in top:
        images, sub = scan(folder)
        if images:
            layouts.add("product")
            groups: list[tuple[Path, list[str], str | None]] = [(folder, images, None)]
        elif sub:
            layouts.add("class")
            groups = []
            for product in sub:
                imgs, deeper = scan(product)
                if deeper:
                    raise DataError(
                        f"{deeper[0]}: nested too deep; expected root/<class>/<product>/<image>"
                    )
                groups.append((product, imgs, folder.name))
        else:
            continue
        for product, imgs, klass in groups:
            if imgs and product.name in owner:
                raise DataError(
                    f"product {product.name!r} appears under two class folders "
                    f"({owner[product.name]} and {product.parent}); product folder names "
                    "must be unique (use from_csv for other layouts)"
                )
            owner[product.name] = product.parent
            paths += imgs
            ids += [product.name] * len(imgs)
            classes += [klass] * len(imgs)
    if len(layouts) > 1:
        raise DataError(
            f"{root} mixes product folders (with images) and class folders (with "
            "product sub-folders); use one layout"
        )
    if not paths:
        raise DataError(f"{root}: no images (extensions {', '.join(exts)}) in its folders")
    return paths, ids, (classes if layouts == {"class"} else None)


def read_csv(path: Path, root: str | os.PathLike | None, id_type: str) -> tuple[Any, ...]:
    """``(paths, ids, classes, split, base, where)`` of the images a CSV file lists:
    ``base`` the folder relative paths are resolved against, ``where(i)`` the file and
    line of row ``i`` (see ``ImageCatalogue.from_csv``, which documents the errors)."""
    if id_type not in ("auto", "int", "str"):
        raise ConfigError(f"id_type must be 'auto', 'int' or 'str', got {id_type!r}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise DataError(f"{path}: no such CSV file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read CSV: {e}") from None
    rows = [(ln, [c.strip() for c in row]) for ln, row in rows if any(c.strip() for c in row)]
    if not rows:
        raise DataError(f"{path}: empty CSV; expected a header row 'path,id[,class][,split]'")
    header = rows[0][1]
    if len(set(header)) != len(header):
        raise DataError(f"{path}: repeated column name in header {header}")
    for need in ("path", "id"):
        if need not in header:
            raise DataError(
                f"{path}: missing column {need!r} (header: {', '.join(header)}); "
                "expected 'path,id[,class][,split]'"
            )
    if len(rows) == 1:
        raise DataError(f"{path}: header only, no images listed")
    cols = {c: header.index(c) for c in ("path", "id", "class", "split") if c in header}
    lines: list[int] = []
    table: dict[str, list[str]] = {c: [] for c in cols}
    for ln, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}:{ln}: {len(row)} cells, header has {len(header)}")
        for c, j in cols.items():
            if not row[j]:
                raise DataError(f"{path}:{ln}: empty {c!r} cell")
            table[c].append(row[j])
        lines.append(ln)

    def typed(cells: list[str], kind: str, column: str) -> list:
        ints = [c if _INT_TEXT.fullmatch(c) and abs(int(c)) <= INT64_MAX else None for c in cells]
        if kind == "int" and None in ints:
            k = ints.index(None)
            raise DataError(f"{path}:{lines[k]}: {column} {cells[k]!r} is not an integer")
        return [int(c) for c in cells] if kind != "str" and None not in ints else cells

    ids = typed(table["id"], id_type, "id")
    classes = typed(table["class"], "auto", "class") if "class" in cols else None
    base = os.fspath(Path(root).expanduser() if root is not None else path.parent)

    def where(i: int) -> str:
        return f"{path}:{lines[i]}"

    return table["path"], ids, classes, table.get("split"), base, where
