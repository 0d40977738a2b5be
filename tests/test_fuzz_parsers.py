"""Property tests (hypothesis) of the expression parser and the In-shop reader.

- Random text never crashes ``gm.expr.parse``: it either parses into an expression whose
  canonical text parses back to an equal expression, or raises ``ExpressionError``.
- Random and mutated ``list_eval_partition.txt`` files either load into exactly what a
  reference parse of the same text gives, or raise ``DataError``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridmatch as gm
from gridmatch.exceptions import DataError, ExpressionError

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ATOMS = ["x", "y", "1", "2.5", "1e3", ".5", "sin", "norm1", "dot", "max", "exp", "l2dist"]
ATOMS += ["(", ")", ",", "+", "-", "*", "/", " ", "e", "9"]


@FAST
@given(
    st.one_of(
        st.text(max_size=60),
        st.lists(st.sampled_from(ATOMS), max_size=30).map("".join),
    )
)
def test_parse_random_text(text):
    try:
        e = gm.expr.parse(text)
    except ExpressionError as err:
        assert str(err)  # a message, never an empty one
        return
    canonical = str(e)
    again = gm.expr.parse(canonical)
    assert again == e and str(again) == canonical


@FAST
@given(st.integers(0, 3000), st.sampled_from(["(", "sin(", "-", "-("]))
def test_parse_deep_nesting_is_an_error_or_works(depth, opener):
    closer = "" if opener == "-" else ")"
    text = opener * depth + "x" + closer * depth
    levels = depth * (2 if opener == "-(" else 1)  # a unary minus and a bracket: 2 levels
    try:
        e = gm.expr.parse(text)
    except ExpressionError as err:
        assert levels > 1000 and "nests deeper than 1000" in str(err)
        return
    assert levels <= 1000 and not e.uses_y


# ------------------------------------------------------------------------- In-shop
STATUS = ["train", "query", "gallery"]


def reference(text: str):
    """items per split from a partition file's text, or None when it is malformed."""
    lines = text.splitlines()
    if len(lines) < 2:
        return None
    try:
        count = int(lines[0].strip())
    except ValueError:
        return None
    rows = [ln.split() for ln in lines[2:] if ln.strip()]
    if len(rows) != count:
        return None
    items = {s: [] for s in STATUS}
    for r in rows:
        if len(r) != 3 or r[2] not in items or not r[1].startswith("id_"):
            return None
        try:
            item = int(r[1][3:])
        except ValueError:
            return None
        items[r[2]].append((r[0], item))
    return items


row = st.tuples(
    st.sampled_from(["img/a.jpg", "img/WOMEN/Dresses/id_1/01.jpg", "x"]),
    st.integers(0, 10**8).map(lambda i: f"id_{i:08d}"),
    st.sampled_from(STATUS),
).map(" ".join)


@st.composite
def partition(draw):
    rows = draw(st.lists(row, max_size=8))
    text = f"{len(rows)}\nimage_name item_id evaluation_status\n" + "\n".join(rows) + "\n"
    # mutate: replace, delete or insert characters
    for _ in range(draw(st.integers(0, 3))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.integers(0, 2))
        c = draw(st.sampled_from(list("0123456789 \n_-xidtrainquery\t")))
        text = text[:i] + (c if op != 1 else "") + text[i + (op != 2) :]
    return text


@FAST
@given(st.one_of(partition(), st.text(max_size=80)))
def test_inshop_partition_files(tmp_path_factory, text):
    root = Path(tmp_path_factory.mktemp("inshop"))
    (root / "list_eval_partition.txt").write_text(text, encoding="utf-8")
    expected = reference(text)
    try:
        shop = gm.datasets.InShop(root)
    except DataError:
        assert expected is None
        return
    assert expected is not None
    assert shop.items == expected
    for split in STATUS:
        assert shop.ids(split).dtype == np.int64
        assert len(shop.paths(split)) == len(expected[split])
