"""benches/photo_quality.py's generated In-shop-layout folder, at a tiny size: it loads with
``ImageCatalogue.from_inshop`` with string SKUs, and its train and query/gallery products
are disjoint as In-shop's are."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from gridmatch.datasets import ImageCatalogue, InShop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
import photo_quality  # noqa: E402


def partition(root: Path) -> list[list[str]]:
    lines = (root / "Eval" / "list_eval_partition.txt").read_text().splitlines()
    rows = [ln.split() for ln in lines[2:]]
    assert int(lines[0]) == len(rows) and lines[1].split() == [
        "image_name",
        "item_id",
        "evaluation_status",
    ]
    return rows


def test_generated_inshop_folder_loads_with_string_skus(tmp_path, data_root):
    root = photo_quality.make_inshop(
        tmp_path / "shop", n_products=6, photos=3, size=40, seed=3, data_root=data_root
    )
    rows = partition(root)
    assert len(rows) == 18
    # In-shop's layout: img/<group>/<category>/<sku>/<file>, the folder named by the SKU
    for rel, sku, status in rows:
        parts = Path(rel).parts
        assert re.fullmatch(r"id_\d{8}", sku) and status in ("train", "query", "gallery")
        assert len(parts) == 5 and parts[0] == "img" and parts[3] == sku
        assert parts[1] in ("WOMEN", "MEN") and parts[2] in photo_quality.CATEGORIES
        with Image.open(root / rel) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (40, 40)
    per_sku = Counter(sku for _, sku, _ in rows)
    assert len(per_sku) == 6 and set(per_sku.values()) == {3}

    whole = ImageCatalogue.from_inshop(root)
    assert len(whole) == 18 and Counter(whole.split.tolist()) == {
        "train": 9,
        "query": 3,
        "gallery": 6,
    }
    cats = {s: photo_quality.sku_catalogue(root, s) for s in InShop.SPLITS}
    for split, cat in cats.items():
        want = [(str((root / r).resolve()), sku) for r, sku, st in rows if st == split]
        assert [(p, i) for p, i in zip(cat.paths, cat.ids)] == want  # file order, SKU strings
        assert cat.ids.dtype == object and all(type(i) is str for i in cat.ids)
        assert set(cat.split) == {split}
        # one class per product, "<group>/<category>" as In-shop's catalogue reads it
        by_sku = {}
        for sku, klass in zip(cat.ids, cat.classes):
            assert by_sku.setdefault(sku, klass) == klass
    products = {s: set(c.ids) for s, c in cats.items()}
    assert len(products["train"]) == 3 and not products["train"] & products["query"]
    assert not products["train"] & products["gallery"]
    assert products["query"] == products["gallery"] and len(products["query"]) == 3
    # string SKUs are accepted end to end by the catalogue's id mapping
    sku = cats["query"].ids[0]
    assert cats["query"].id_of(cats["query"].codes_of(sku)) == sku

    # the photos of a product differ from each other (pose, colour, background)
    X = cats["gallery"].load(40).astype(np.int16)
    assert X.shape == (6, 40, 40, 3)
    for sku in products["gallery"]:
        a, b = X[cats["gallery"].ids == sku]
        assert np.abs(a - b).mean() > 5


def test_generator_is_seeded_and_cached(tmp_path, data_root):
    a = photo_quality.make_inshop(tmp_path / "a", 4, 2, 32, seed=1, data_root=data_root)
    b = photo_quality.make_inshop(tmp_path / "b", 4, 2, 32, seed=1, data_root=data_root)
    c = photo_quality.make_inshop(tmp_path / "c", 4, 2, 32, seed=2, data_root=data_root)
    assert partition(a) == partition(b) != partition(c)
    for rel, _, _ in partition(a):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    # a complete folder is reused, not rewritten
    part = a / "Eval" / "list_eval_partition.txt"
    before = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    assert photo_quality.make_inshop(a, 4, 2, 32, seed=9, data_root=data_root) == a
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()} == before
    assert part.is_file() and not list(tmp_path.glob("*.tmp-*"))
