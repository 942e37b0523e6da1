"""A listings.csv made wide or with huge cells is bounded: refused in one line past a column cap, a row with an
oversized cell ignored, and storage proportional to the values present."""
from __future__ import annotations

import json

from sqlalchemy import select

from db.models import Sample
from jobs.scan import scan_dataset
from tests.conftest import make_image


def shop(root, header_extra: list[str], rows: list[list[str]]):
    for i in range(len(rows)):
        make_image(root / "shoes" / f"s{i}.png", size=(8, 8))
    lines = [",".join(["path", "price", *header_extra])]
    lines += [",".join([f"shoes/s{i}.png", "5", *row]) for i, row in enumerate(rows)]
    (root / "listings.csv").write_text("\n".join(lines) + "\n")
    return root


def test_a_header_of_200000_columns_is_refused_in_one_line(factory, tmp_path):
    root = shop(tmp_path / "shop", [f"c{i}" for i in range(200_000)], [[""] * 200_000 for _ in range(3)])
    summary = scan_dataset(factory, root, workers=1)
    assert summary["listings_problems"] == [
        "listings.csv ignored: it has 200,002 columns, more than the 1,000 read"]
    with factory() as session:
        assert set(session.scalars(select(Sample.listing_json))) == {None}


def test_a_wide_sparse_header_stores_only_the_values_present_and_a_huge_cell_drops_its_row(factory, tmp_path):
    extra = [f"c{i}" for i in range(900)]
    rows = [["" for _ in extra] for _ in range(4)]
    rows[0][7] = "blue"
    rows[2][899] = "x" * 20_000
    summary = scan_dataset(factory, shop(tmp_path / "shop", extra, rows), workers=1)
    assert any("a cell over 10,000 characters (row 4); ignored" in p for p in summary["listings_problems"])
    with factory() as session:
        stored = dict(session.execute(select(Sample.path, Sample.listing_json)).all())
    assert json.loads(stored["shoes/s0.png"]) == {"c7": "blue"}
    assert stored["shoes/s1.png"] is None and stored["shoes/s2.png"] is None
