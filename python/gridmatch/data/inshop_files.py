"""DeepFashion In-shop's partition file (``list_eval_partition.txt``), read into rows.

Below both :class:`~gridmatch.data.catalogue.ImageCatalogue` (``from_inshop``) and
:class:`~gridmatch.data.inshop.InShop`, which build on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._base.exceptions import DataError

#: The partition file's splits.
SPLITS = ("train", "query", "gallery")


@dataclass(frozen=True)
class Partition:
    """The rows of an In-shop folder's partition file.

    Attributes
    ----------
    root : Path
        The In-shop folder.
    items : dict of str to list of (str, int)
        Per split, ``(relative image path, item id)`` rows.
    order : list of str
        The split of each row, in the file's order.
    """

    root: Path
    items: dict[str, list[tuple[str, int]]]
    order: list[str]

    def rows(self, split: str) -> list[tuple[str, int]]:
        """The ``(relative path, item id)`` rows of ``split`` (``ValueError`` if unknown)."""
        if split not in self.items:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.items[split]


def read_partition(root: str | os.PathLike) -> Partition:
    """Read ``list_eval_partition.txt`` in ``root`` (or ``root/Eval``).

    The file holds a count line, a header line, then ``image_name item_id
    evaluation_status`` rows with status ``train``, ``query`` or ``gallery``. ``DataError``
    when it is missing or malformed.
    """
    root = Path(root).expanduser()
    part = None
    for cand in (root / "list_eval_partition.txt", root / "Eval" / "list_eval_partition.txt"):
        if cand.is_file():
            part = cand
            break
    if part is None:
        raise DataError(
            f"{root}: no list_eval_partition.txt (DeepFashion In-shop's Eval file); "
            "put it in the root folder beside img/"
        )
    lines = part.read_text().splitlines()
    if len(lines) < 2:
        raise DataError(f"{part}: too short")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataError(f"{part}: first line must be the image count") from None
    rows = [ln.split() for ln in lines[2:] if ln.strip()]
    if len(rows) != count:
        raise DataError(f"{part}: header says {count} images, found {len(rows)} rows")
    items: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    order: list[str] = []
    for i, r in enumerate(rows, start=3):
        if len(r) != 3 or r[2] not in items or not r[1].startswith("id_"):
            raise DataError(f"{part}:{i}: expected 'img/... id_NNNNNNNN train|query|gallery'")
        try:
            item = int(r[1][3:])
        except ValueError:
            raise DataError(f"{part}:{i}: bad item id {r[1]!r}") from None
        items[r[2]].append((r[0], item))
        order.append(r[2])
    return Partition(root, items, order)


def catalogue_fields(partition: Partition, split: str | None) -> tuple[Any, ...]:
    """``(paths, ids, classes, split names)`` of a catalogue of ``split`` (every image, in
    the file's order, when ``None``): classes are ``"<group>/<category>"`` of paths
    ``img/<group>/<category>/id_…/<file>``, or ``None`` when a path has another form."""
    if split is None:
        cursor = {s: iter(partition.items[s]) for s in SPLITS}
        rows = [(*next(cursor[s]), s) for s in partition.order]
    else:
        rows = [(p, i, split) for p, i in partition.rows(split)]
    if not rows:
        raise DataError(f"{partition.root}: the partition file lists no images for {split!r}")
    parts = [Path(p).parts for p, _, _ in rows]
    classes = None
    if all(len(q) == 5 and q[0] == "img" for q in parts):
        classes = [f"{q[1]}/{q[2]}" for q in parts]
    paths, ids, names = zip(*rows)
    return [partition.root / p for p in paths], list(ids), classes, list(names)
