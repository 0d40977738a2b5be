"""gm.datasets.ImageCatalogue: photo catalogues as paths + ids, built from files the
tests write (JPEG/PNG with PIL, In-shop's layout, class folders, CSVs)."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import gridmatch as gm
import gridmatch.data.catalogue
from gridmatch.datasets import ImageCatalogue


def noise(w, h, seed=0, mode="RGB"):
    """A smooth gradient plus noise, so resampling errors show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) % 256], -1)
    a = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a).convert(mode)


def write(path, im, **kw):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)
    return path


def shop_folder(root, layout):
    """Product folders (flat) or class/product folders (nested), with files to ignore."""
    files = {}
    for k, (klass, sku) in enumerate([("tops", "SKU-B"), ("tops", "SKU-A"), ("shoes", "007")]):
        folder = root / (sku if layout == "flat" else f"{klass}/{sku}")
        for v in range(2):
            ext = ".png" if v else ".JPG"
            p = write(folder / f"view{v}{ext}", noise(20 + k, 16, seed=k * 10 + v))
            files[str(p.resolve())] = (sku, klass)
        (folder / "notes.txt").write_text("not an image")
        (folder / ".DS_Store").write_bytes(b"\0")
    return files


def test_from_folder_flat_layout(tmp_path):
    files = shop_folder(tmp_path, "flat")
    cat = ImageCatalogue.from_folder(tmp_path)
    expect = sorted(files)  # folders and files in sorted order
    assert list(cat.paths) == expect and all(os.path.isabs(p) for p in cat.paths)
    assert (
        list(cat.ids)
        == [files[p][0] for p in expect]
        == ["007"] * 2 + ["SKU-A"] * 2 + ["SKU-B"] * 2
    )
    np.testing.assert_array_equal(cat.codes, [0, 0, 1, 1, 2, 2])
    assert cat.classes is None and cat.split is None and len(cat) == 6
    assert cat.ids.dtype == object and all(type(i) is str for i in cat.ids)


def test_from_folder_nested_layout(tmp_path):
    files = shop_folder(tmp_path, "nested")
    (tmp_path / ".cache").mkdir()  # hidden: ignored
    cat = ImageCatalogue.from_folder(tmp_path / "tops" / "..")
    expect = sorted(files)
    assert list(cat.paths) == expect
    assert list(cat.classes) == [files[p][1] for p in expect] == ["shoes"] * 2 + ["tops"] * 4
    assert list(cat.ids) == [files[p][0] for p in expect]
    only_png = ImageCatalogue.from_folder(tmp_path, extensions=["PNG"])
    assert len(only_png) == 3 and all(p.endswith(".png") for p in only_png.paths)


def make_inshop(root):
    lines, rows = [], []
    for item, group in [(7, "WOMEN/Dresses"), (3, "MEN/Denim"), (12, "WOMEN/Dresses")]:
        for v in range(3):
            rel = f"img/{group}/id_{item:08d}/{v + 1:02d}_1_front.jpg"
            write(root / rel, noise(24, 32, seed=item + v), quality=95)
            status = "train" if item == 7 else ("query" if v == 0 else "gallery")
            lines.append(f"{rel} id_{item:08d} {status}")
            rows.append((rel, item, status, group))
    text = f"{len(lines)}\nimage_name item_id evaluation_status\n" + "\n".join(lines) + "\n"
    (root / "list_eval_partition.txt").write_text(text)
    return rows


def test_from_inshop_and_inshop_catalogue(tmp_path):
    rows = make_inshop(tmp_path)
    cat = ImageCatalogue.from_inshop(tmp_path)
    assert list(cat.paths) == [str((tmp_path / r[0]).resolve()) for r in rows]  # file order
    assert cat.ids.dtype == np.int64 and list(cat.ids) == [r[1] for r in rows]
    assert list(cat.split) == [r[2] for r in rows] and list(cat.classes) == [r[3] for r in rows]
    shop = gm.datasets.InShop(tmp_path)
    for split in shop.SPLITS:
        sub, direct = cat.subset(split), shop.catalogue(split)
        assert (
            list(sub.paths) == list(direct.paths) == [str(p.resolve()) for p in shop.paths(split)]
        )
        np.testing.assert_array_equal(sub.ids, shop.ids(split))
        np.testing.assert_array_equal(direct.ids, shop.ids(split))
    assert (
        repr(cat) == "ImageCatalogue(9 images, 3 ids, 2 classes, split train=3 query=2 gallery=4)"
    )
    # In-shop's own loader and the catalogue read the same files (different resizing).
    X, _ = shop.load("query", size=(24, 32))
    np.testing.assert_array_equal(X[0], np.asarray(Image.open(shop.paths("query")[0])))


def write_csv(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_from_csv_string_skus_relative_to_csv(tmp_path):
    for name in ("a.jpg", "b.png", "sub/c.jpg"):
        write(tmp_path / "data" / name, noise(10, 10))
    csv = write_csv(
        tmp_path / "data" / "cat.csv",
        "split,extra,path,id,class\n"
        "train,x, a.jpg ,007,dress\n\n"
        "query,y,b.png,SKU-9,shirt\n"
        'gallery,z,"sub/c.jpg",007,dress\n',
    )
    cat = ImageCatalogue.from_csv(csv)
    assert list(cat.paths) == [
        str((tmp_path / "data" / n).resolve()) for n in ("a.jpg", "b.png", "sub/c.jpg")
    ]
    assert list(cat.ids) == ["007", "SKU-9", "007"] and cat.ids.dtype == object
    np.testing.assert_array_equal(cat.codes, [0, 1, 0])
    assert list(cat.classes) == ["dress", "shirt", "dress"]
    assert list(cat.split) == ["train", "query", "gallery"]


def test_from_csv_int_ids_with_root(tmp_path):
    for name in ("p1.jpg", "p2.jpg", "p3.jpg"):
        write(tmp_path / "imgs" / name, noise(10, 12))
    csv = write_csv(
        tmp_path / "lists" / "cat.csv",
        f"path,id,class\np1.jpg,42,3\n{tmp_path}/imgs/p2.jpg,-5,1\np3.jpg,42,3\n",
    )
    cat = ImageCatalogue.from_csv(csv, root=tmp_path / "imgs")
    assert cat.ids.dtype == np.int64 and list(cat.ids) == [42, -5, 42]
    assert cat.classes.dtype == np.int64 and list(cat.classes) == [3, 1, 3]
    np.testing.assert_array_equal(cat.codes, [0, 1, 0])
    as_str = ImageCatalogue.from_csv(csv, root=tmp_path / "imgs", id_type="str")
    assert list(as_str.ids) == ["42", "-5", "42"]
    with pytest.raises(gm.DataError, match=r"cat.csv:2: no such image file"):
        ImageCatalogue.from_csv(csv)  # relative to the CSV's folder: lists/p1.jpg


def test_from_paths_codes_and_mappings(tmp_path):
    paths = [write(tmp_path / f"{i}.png", noise(8, 8, seed=i)) for i in range(5)]
    cat = ImageCatalogue.from_paths(paths, ["b", "a", "b", "c", "a"], split="train")
    np.testing.assert_array_equal(cat.codes, [0, 1, 0, 2, 1])  # order of first appearance
    assert cat.id_of(2) == "c" and cat.codes_of("a") == 1
    np.testing.assert_array_equal(cat.id_of(cat.codes), cat.ids)
    np.testing.assert_array_equal(cat.codes_of(cat.ids), cat.codes)
    assert list(cat.split) == ["train"] * 5
    # Random integer ids: codes against numpy's unique (first index, inverse) re-ranked.
    ids = np.random.default_rng(1).integers(-3, 1000, size=5)
    cat = ImageCatalogue(paths, ids)
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.argsort(first)] = np.arange(len(uniq))
    np.testing.assert_array_equal(cat.codes, rank[inverse])
    np.testing.assert_array_equal(cat.id_of(cat.codes), ids)
    assert cat.ids.dtype == np.int64 and cat.codes_of(int(ids[3])) == cat.codes[3]
    with pytest.raises(gm.ShapeError, match="not in this catalogue"):
        cat.codes_of(str(ids[0]))  # "5" is not 5
    with pytest.raises(gm.ShapeError, match=r"\[0, "):
        cat.id_of([0, 99])


def test_subsets_keep_the_mapping(tmp_path):
    paths = [write(tmp_path / f"{i}.png", noise(8, 8, seed=i)) for i in range(6)]
    split = ["train", "query", "gallery", "train", "query", "gallery"]
    cat = ImageCatalogue(paths, ["x", "y", "z", "y", "x", "w"], [1, 1, 2, 2, 1, 3], split)
    q = cat.subset("query")
    assert list(q.paths) == [cat.paths[1], cat.paths[4]] and list(q.ids) == ["y", "x"]
    np.testing.assert_array_equal(q.codes, [1, 0])  # the parent's codes
    assert q.id_of(3) == "w" and q.codes_of("z") == 2  # ids outside the subset still map
    m = cat.subset(np.array([True, False, False, True, False, True]))
    assert list(m.ids) == ["x", "y", "w"] and list(m.classes) == [1, 2, 3]
    i = cat.subset([5, -6, 2])
    assert list(i.paths) == [cat.paths[5], cat.paths[0], cat.paths[2]] and list(i.split) == [
        "gallery",
        "train",
        "gallery",
    ]
    assert len(cat.subset(np.zeros(6, bool))) == 0 and len(cat.subset([])) == 0
    with pytest.raises(gm.ShapeError, match="repeat"):
        cat.subset([1, 1])
    with pytest.raises(gm.ShapeError, match="6"):
        cat.subset([6])
    with pytest.raises(gm.ShapeError, match="mask has 5"):
        cat.subset(np.ones(5, bool))
    with pytest.raises(ValueError, match="'val'.*'train'"):
        cat.subset("val")
    with pytest.raises(ValueError, match="no split names"):
        ImageCatalogue(paths, range(6)).subset("train")


def test_catalogue_is_read_only(tmp_path):
    cat = ImageCatalogue([write(tmp_path / "a.png", noise(4, 4))], [1])
    for arr in (cat.paths, cat.ids, cat.codes):
        with pytest.raises(ValueError):
            arr[0] = arr[0]
    with pytest.raises(AttributeError):
        cat.ids = np.array([2])


def test_load_matches_pil_resize_and_centre_crop(tmp_path):
    wide = write(tmp_path / "wide.jpg", noise(64, 40, seed=1), quality=95)
    tall = write(tmp_path / "tall.png", noise(30, 70, seed=2))
    cat = ImageCatalogue([wide, tall], ["w", "t"])
    X = cat.load(24)
    assert X.shape == (2, 24, 24, 3) and X.dtype == np.uint8
    for img, p in zip(X, (wide, tall)):
        with Image.open(p) as im:
            im = im.convert("RGB")
            # PIL's own crop-to-aspect + resize: identical resampling.
            fit = np.asarray(ImageOps.fit(im, (24, 24), Image.Resampling.BILINEAR))
            np.testing.assert_array_equal(img, fit)
            # torchvision-style: shorter side to 24, then crop the centre (rounded box).
            w, h = im.size
            s = 24 / min(w, h)
            r = im.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)
            left, top = (r.width - 24) // 2, (r.height - 24) // 2
            ref = np.asarray(r.crop((left, top, left + 24, top + 24))).astype(int)
            assert np.abs(img.astype(int) - ref).mean() < 6
    L = cat.load(24, mode="L")
    assert L.shape == (2, 24, 24)
    with Image.open(tall) as im:
        fit = ImageOps.fit(im.convert("L"), (24, 24), Image.Resampling.BILINEAR)
        np.testing.assert_array_equal(L[1], np.asarray(fit))


def test_load_crops_the_centre_hand_computed(tmp_path):
    a = np.zeros((30, 90, 3), np.uint8)
    a[:] = (255, 0, 0)
    a[:, 25:65] = (0, 0, 255)  # the central 30x30 square lies in the blue band
    p = write(tmp_path / "bands.png", Image.fromarray(a))
    X = ImageCatalogue([p], [0]).load(10)
    assert (X[0] == (0, 0, 255)).all()


# What a viewer shows for each EXIF orientation (TIFF/EXIF spec), as numpy operations.
EXIF_VIEW = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def with_orientation(im, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation  # the Orientation tag
    return {"exif": exif.tobytes()}


@pytest.mark.parametrize("orientation", sorted(EXIF_VIEW))
def test_load_applies_the_exif_orientation(tmp_path, orientation):
    a = np.asarray(noise(16, 16, seed=orientation))
    im = Image.fromarray(a)
    p = write(tmp_path / "o.png", im, **with_orientation(im, orientation))
    with Image.open(p) as check:
        assert check.getexif().get(0x0112) == orientation  # the tag was written
    X = ImageCatalogue([p], [0]).load(16)
    np.testing.assert_array_equal(X[0], EXIF_VIEW[orientation](a))


def test_load_crops_the_upright_photo(tmp_path):
    # Stored 10 wide x 20 tall, top half white; orientation 8 shows it rotated 90 degrees
    # counter-clockwise, 20 wide x 10 tall, white on the left. The centre square of the
    # upright photo is half white (left), half black; the stored photo's centre square
    # would be white on top instead, and a crop box from the stored size all white.
    b = np.zeros((20, 10, 3), np.uint8)
    b[:10] = (255, 255, 255)  # top half white, bottom black (stored)
    im = Image.fromarray(b)
    p = write(tmp_path / "half.png", im, **with_orientation(im, 8))
    X = ImageCatalogue([p], [0]).load(10)
    assert (X[0][:, :4] == 255).all() and (X[0][:, 6:] == 0).all()


def test_load_converts_colour_modes(tmp_path):
    gray = write(tmp_path / "gray.jpg", noise(20, 20, mode="L"), quality=95)
    one = write(tmp_path / "one.png", Image.new("RGB", (1, 1), (12, 34, 56)))
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (200, 0, 0, 0)  # fully transparent red -> white
    rgba[4:] = (100, 50, 0, 128)  # half transparent -> blended with white
    alpha = write(tmp_path / "alpha.png", Image.fromarray(rgba, "RGBA"))
    pal = Image.new("P", (6, 6), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.paste(0, (0, 0, 6, 3))
    palette = write(tmp_path / "pal.png", pal, transparency=0)
    deep = write(tmp_path / "deep.png", Image.fromarray(np.full((5, 5), 32896, np.uint16)))
    cat = ImageCatalogue([gray, one, alpha, palette, deep], range(5))
    X = cat.load(8)
    with Image.open(gray) as im:
        assert im.mode == "L"
        ref = np.asarray(ImageOps.fit(im, (8, 8), Image.Resampling.BILINEAR))
    for c in range(3):
        np.testing.assert_array_equal(X[0, ..., c], ref)
    assert (X[1] == (12, 34, 56)).all()  # 1x1 enlarged: a solid image
    assert (X[2, 0] == 255).all()  # transparent rows: white background
    a = 128 / 255
    blend = np.round(np.array([100, 50, 0]) * a + 255 * (1 - a))
    np.testing.assert_allclose(X[2, -1], np.broadcast_to(blend, (8, 3)), atol=1)
    assert (X[3, 0] == 255).all() and (X[3, -1] == (10, 200, 30)).all()
    assert (X[4] == 128).all()  # 16-bit 32896 / 65535 * 255 = 128


def bomb_png(path, width=50_000, height=50_000):
    """A 100-byte PNG whose header claims width x height pixels (valid CRCs)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def test_load_refuses_a_decompression_bomb(tmp_path, monkeypatch):
    bomb = bomb_png(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL's own limit off
    with Image.open(bomb) as im:  # PIL reads the header without decoding
        assert im.size == (50_000, 50_000)
    cat = ImageCatalogue([bomb], ["b"])
    with pytest.raises(gm.DataError, match=r"bomb.png: header says 50000×50000"):
        cat.load(8)  # PIL's own limit switched off: our header check refuses it
    monkeypatch.undo()
    with pytest.raises(gm.DataError, match=r"bomb\.png"):
        cat.load(8)
    small = ImageCatalogue([write(tmp_path / "ok.png", noise(20, 10))], [1])
    with pytest.raises(gm.DataError, match=r"20×10 = 200 pixels, over max_pixels=199"):
        small.load(8, max_pixels=199)
    assert small.load(8, max_pixels=200).shape == (1, 8, 8, 3)


def test_load_bad_files_name_the_file(tmp_path):
    good = write(tmp_path / "good.jpg", noise(64, 64), quality=95)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(gm.DataError, match=r"trunc\.jpg"):
        ImageCatalogue([good, trunc], [1, 2]).load(16)
    text = tmp_path / "text.jpg"
    text.write_text("not a jpeg")
    with pytest.raises(gm.DataError, match=r"cannot read image .*text\.jpg"):
        ImageCatalogue([text], [1]).load(16)
    gone = write(tmp_path / "gone.png", noise(4, 4))
    cat = ImageCatalogue([gone], [1])
    gone.unlink()
    with pytest.raises(gm.DataError, match=r"gone\.png"):
        cat.load(4)
    with pytest.raises(ValueError, match="size"):
        ImageCatalogue([good], [1]).load(0)
    with pytest.raises(ValueError, match="mode"):
        ImageCatalogue([good], [1]).load(8, mode="CMYK")


def test_load_refuses_large_sets(tmp_path):
    cat = ImageCatalogue([write(tmp_path / f"{i}.png", noise(4, 4)) for i in range(3)], [1, 2, 3])
    with pytest.raises(gm.ShapeError, match=r"subset.*stream batches with gm.datasets.ImageLoader"):
        cat.load(64, max_bytes=3 * 64 * 64 * 3 - 1)
    assert cat.load(64, max_bytes=3 * 64 * 64 * 3).shape == (3, 64, 64, 3)
    with pytest.raises(gm.ShapeError, match="GiB"):
        cat.load(20_000)  # 3.35 GiB over the default 1 GiB


# ---------------------------------------------------------------------- bad input


def test_bad_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(gm.DataError, match="no images"):
        ImageCatalogue.from_folder(empty)
    (empty / "p1").mkdir()
    (empty / "p1" / "readme.txt").write_text("x")
    with pytest.raises(gm.DataError, match="no images"):
        ImageCatalogue.from_folder(empty)
    with pytest.raises(gm.DataError, match="not a folder"):
        ImageCatalogue.from_folder(tmp_path / "nowhere")
    loose = tmp_path / "loose"
    write(loose / "a.jpg", noise(4, 4))
    with pytest.raises(gm.DataError, match=r"a\.jpg: image directly in"):
        ImageCatalogue.from_folder(loose)
    mixed = tmp_path / "mixed"
    write(mixed / "p1" / "a.jpg", noise(4, 4))
    write(mixed / "cls" / "p2" / "a.jpg", noise(4, 4))
    with pytest.raises(gm.DataError, match="mixes product folders"):
        ImageCatalogue.from_folder(mixed)
    deep = tmp_path / "deep"
    write(deep / "c" / "p" / "q" / "a.jpg", noise(4, 4))
    with pytest.raises(gm.DataError, match="nested too deep"):
        ImageCatalogue.from_folder(deep)
    both = tmp_path / "both"
    write(both / "p1" / "a.jpg", noise(4, 4))
    write(both / "p1" / "sub" / "b.jpg", noise(4, 4))
    with pytest.raises(gm.DataError, match="both images and sub-folders"):
        ImageCatalogue.from_folder(both)
    twice = tmp_path / "twice"
    write(twice / "c1" / "p" / "a.jpg", noise(4, 4))
    write(twice / "c2" / "p" / "a.jpg", noise(4, 4))
    with pytest.raises(gm.DataError, match="'p' appears under two class folders"):
        ImageCatalogue.from_folder(twice)


def test_symlink_out_of_root_is_refused(tmp_path):
    outside = write(tmp_path / "outside.jpg", noise(4, 4))
    root = tmp_path / "root"
    write(root / "p1" / "a.jpg", noise(4, 4))
    os.symlink(outside, root / "p1" / "b.jpg")
    with pytest.raises(gm.DataError, match=r"lies outside root .*outside\.jpg"):
        ImageCatalogue.from_folder(root)
    with pytest.raises(gm.DataError, match="lies outside root"):
        ImageCatalogue([root / "p1" / "b.jpg"], [1], root=root)


def test_bad_csv(tmp_path):
    write(tmp_path / "a.jpg", noise(4, 4))
    write(tmp_path / "b.jpg", noise(4, 4))
    cases = [
        ("", "empty CSV"),
        ("\n\n", "empty CSV"),
        ("path,sku\na.jpg,1\n", r"missing column 'id' \(header: path, sku\)"),
        ("file,id\na.jpg,1\n", "missing column 'path'"),
        ("path,id\n", "header only"),
        ("path,id,id\na.jpg,1,2\n", "repeated column"),
        ("path,id\na.jpg\n", r"c\.csv:2: 1 cells, header has 2"),
        ("path,id\na.jpg,1,extra\n", r"c\.csv:2: 3 cells"),
        ("path,id\na.jpg, \n", r"c\.csv:2: empty 'id' cell"),
        ("path,id,split\na.jpg,1,\n", r"empty 'split' cell"),
        (
            "path,id\na.jpg,1\nb.jpg,2\n./a.jpg,3\n",
            r"duplicate path .*a\.jpg \(.*c\.csv:2 and .*c\.csv:4\)",
        ),
        ("path,id\nmissing.jpg,1\n", r"c\.csv:2: no such image file .*missing\.jpg"),
        ("path,id\n../a.jpg,1\n", r"c\.csv:2: '\.\./a\.jpg' lies outside root"),
    ]
    for text, message in cases:
        csv = write_csv(tmp_path / "sub" / "c.csv", text)
        with pytest.raises(gm.DataError, match=message):
            ImageCatalogue.from_csv(csv, root=tmp_path if ".." not in text else tmp_path / "sub")
    csv = write_csv(tmp_path / "c.csv", "path,id\na.jpg,1\nb.jpg,x2\n")
    with pytest.raises(gm.DataError, match=r"c\.csv:3: id 'x2' is not an integer"):
        ImageCatalogue.from_csv(csv, id_type="int")
    with pytest.raises(ValueError, match="id_type"):
        ImageCatalogue.from_csv(csv, id_type="float")
    with pytest.raises(gm.DataError, match="no such CSV file"):
        ImageCatalogue.from_csv(tmp_path / "none.csv")
    (tmp_path / "latin.csv").write_bytes(b"path,id\na.jpg,caf\xe9\n")
    with pytest.raises(gm.DataError, match="cannot read CSV"):
        ImageCatalogue.from_csv(tmp_path / "latin.csv")


def test_bad_paths_and_ids(tmp_path):
    a, b = write(tmp_path / "a.png", noise(4, 4)), write(tmp_path / "b.png", noise(4, 4))
    shape_cases = [
        (([a, b], [1]), "paths has 2 entries but ids has 1"),
        (([a, b], [1, 2], [1]), "classes has 1"),
        (([a, b], [1, 2], None, ["train"]), "split has 1"),
        (([], []), "at least one image"),
        (([a, b], [1, None]), r"ids\[1\] is None"),
        (([a, b], [1, np.nan]), r"ids\[1\] is NaN"),
        (([a, b], np.array([1.0, np.nan])), r"ids\[1\] is NaN"),
        (([a, b], [1.0, 2.0]), r"ids\[0\] = 1\.0: ids must be strings or integers"),
        (([a, b], np.array([1.5, 2.0])), "floats"),
        (([a, b], ["x", 3]), "mix strings and integers"),
        (([a, b], ["x", ""]), "empty string"),
        (([a, b], [True, False]), "strings or integers"),
        (([a, b], [1, 2], ["c", None]), r"classes\[1\] is None"),
        (([a, b], [1, 2], None, [1, 2]), "split names"),
        ((a, [1]), "single path"),
        (([a, 5], [1, 2]), r"paths\[1\] = 5"),
        (([a, b], "ab"), "sequence"),
    ]
    for args, message in shape_cases:
        with pytest.raises(gm.ShapeError, match=message):
            ImageCatalogue(*args)
    with pytest.raises(
        gm.DataError, match=r"duplicate path .*a\.png \(paths\[0\] and paths\[1\]\)"
    ):
        ImageCatalogue([a, tmp_path / "x" / ".." / "a.png"], [1, 2])
    with pytest.raises(gm.DataError, match=r"paths\[1\]: no such image file .*c\.png"):
        ImageCatalogue([a, tmp_path / "c.png"], [1, 2])
    with pytest.raises(gm.DataError, match=r"paths\[0\]: .* lies outside root"):
        ImageCatalogue(
            [tmp_path / "sub" / ".." / ".." / tmp_path.name / "a.png"], [1], root=tmp_path / "sub"
        )
    inside = ImageCatalogue(["sub/../a.png"], [1], root=tmp_path)
    assert list(inside.paths) == [str(a.resolve())]


def test_inshop_catalogue_errors(tmp_path):
    rows = make_inshop(tmp_path)
    (tmp_path / rows[0][0]).unlink()  # a train image
    with pytest.raises(gm.DataError, match="no such image file"):
        gm.datasets.InShop(tmp_path).catalogue("train")
    with pytest.raises(ValueError, match="split"):
        gm.datasets.InShop(tmp_path).catalogue("val")


def test_exported():
    assert "ImageCatalogue" in gm.datasets.__all__
    assert gm.datasets.ImageCatalogue is gridmatch.data.catalogue.ImageCatalogue


def test_symlink_out_of_root_names_the_option_that_allows_it(tmp_path):
    outside = write(tmp_path / "outside.jpg", noise(4, 4))
    elsewhere = tmp_path / "elsewhere" / "p2"
    write(elsewhere / "c.png", noise(5, 4))
    root = tmp_path / "root"
    write(root / "p1" / "a.jpg", noise(4, 4))
    os.symlink(outside, root / "p1" / "b.jpg")
    with pytest.raises(gm.DataError, match=r"outside root .*pass allow_outside=True"):
        ImageCatalogue.from_folder(root)
    cat = ImageCatalogue.from_folder(root, allow_outside=True)
    assert list(cat.paths) == [str((root / "p1" / "a.jpg").resolve()), str(outside.resolve())]
    assert list(cat.ids) == ["p1", "p1"]
    # a linked product folder too; the ids are the names of the links in the folder
    os.symlink(elsewhere, root / "p3")
    cat = ImageCatalogue.from_folder(root, allow_outside=True)
    assert list(cat.ids) == ["p1", "p1", "p3"] and cat.paths[2] == str(
        (elsewhere / "c.png").resolve()
    )
    with pytest.raises(gm.ConfigError, match=r"allow_outside must be a bool, got 1"):
        ImageCatalogue.from_folder(root, allow_outside=1)
    # the same images given as paths (from_paths without root) were accepted already
    same = ImageCatalogue.from_paths(list(cat.paths), list(cat.ids))
    assert list(same.paths) == list(cat.paths)


def test_readme_catalogue_example_runs(tmp_path, monkeypatch):
    """The README's catalogue block, run on a generated photos/ folder (its other
    constructors, from_csv and InShop, need files of their own and are left out)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = [b.split("```")[0] for b in readme.split("```python\n")[1:]]
    block = next(b for b in blocks if 'from_folder("photos/")' in b)
    lines = [ln for ln in block.splitlines() if "from_csv(" not in ln and "InShop(" not in ln]
    assert any('subset("query")' in ln for ln in lines)
    monkeypatch.chdir(tmp_path)
    for p in range(8):
        for v in range(6):
            write(tmp_path / "photos" / f"SKU-{p}" / f"{v}.png", noise(20, 16, seed=p * 6 + v))
    cat = ImageCatalogue.from_folder("photos/")
    gsn = gm.GridSearchNetwork(epochs=0, dim=8, image_size=32, progress=False).fit(cat)
    scope = {"gm": gm, "gsn": gsn, "np": np}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. queries without a match
        exec(compile("\n".join(lines), "README.md", "exec"), scope)
    q, g = scope["q"], scope["g"]
    assert set(q.ids) <= set(g.ids) and len(g) >= 10
    assert scope["idx"].shape == (len(q), 10)
