"""Tests of core.scan.listings: listings.csv as people write it, and as attackers do.
"""
from __future__ import annotations

import math
import os

import pytest

import core.scan.listings
from core.scan.listings import match_listing_paths, normalise_listing_path, parse_price, read_listings


def write_listings(root, text: str, encoding: str = "utf-8") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "listings.csv").write_bytes(text.encode(encoding))


@pytest.mark.parametrize("raw, expected", [
    ("12", 12.0), ("12.50", 12.5), ("12,50", 12.5), ("$1,299.00", 1299.0), ("1.299,00 €", 1299.0),
    ("EUR 7", 7.0), ("£ 3.5", 3.5), ("12,500", 12500.0), ("1 299,50", 1299.5), ("1'299.50", 1299.5),
    ("1.299.000", 1299000.0), ("0", 0.0), ("-4", -4.0), ("1e3", 1000.0), ("1\u00a0299,50", 1299.5),
    ("", None), ("  ", None), ("free", None), ("nan", None), ("inf", None), ("12-15", None),
    ("12.5.3", None), ("1,2,3", None), ("1.299.00", None), ("1,299,00", None), ("12 5", None), ("1e999", None),
])
def test_parse_price(raw, expected):
    assert parse_price(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("shoes/a.jpg", "shoes/a.jpg"), ("./shoes/a.jpg", "shoes/a.jpg"), ("shoes\\a.jpg", "shoes/a.jpg"),
    (".\\shoes\\a.jpg", "shoes/a.jpg"), ("  /shoes/a.jpg ", "shoes/a.jpg"),
])
def test_normalise_listing_path(raw, expected):
    assert normalise_listing_path(raw) == expected


def test_no_listings_file(tmp_path):
    listings = read_listings(tmp_path)
    assert not listings.present and listings.table.empty and listings.problems == []
    assert list(listings.table.columns) == ["path", "listing_id", "price", "title", "extra"]


def test_good_listings_with_extra_columns_kept(tmp_path):
    write_listings(tmp_path, "path,listing_id,price,title,Seller\nshoes/a.jpg,007,19.99,Red shoes,anna\n"
                             "shoes/b.jpg,8,,\"Boots, size 42\",bob\n")
    listings = read_listings(tmp_path)
    assert listings.present and listings.problems == []
    rows = listings.table.to_dict("records")
    assert rows[0] == {"path": "shoes/a.jpg", "listing_id": "007", "price": 19.99, "title": "Red shoes",
                       "extra": {"seller": "anna"}}
    assert rows[1]["title"] == "Boots, size 42" and math.isnan(rows[1]["price"])


def test_missing_columns_are_reported_and_left_empty(tmp_path):
    write_listings(tmp_path, "path,price\nshoes/a.jpg,5\n")
    listings = read_listings(tmp_path)
    assert listings.problems == ["listings.csv has no 'listing_id', 'title' column; left empty"]
    row = listings.table.iloc[0]
    assert row["price"] == 5 and row["listing_id"] is None and row["title"] is None


def test_no_path_column_ignores_the_file_with_a_reason(tmp_path):
    write_listings(tmp_path, "file,price\nshoes/a.jpg,5\n")
    listings = read_listings(tmp_path)
    assert listings.table.empty
    assert listings.problems == ["listings.csv has no 'path' column (columns: 'file', 'price'); listing data ignored"]


@pytest.mark.parametrize("first_line", [
    "root:$6$salt$hash:19000:0:99999:7:::", "-----BEGIN OPENSSH PRIVATE KEY-----", "sk_live_51H8 secret token",
    "a,b,c,d,e,f,g,h,i,j,k,l,m",
])
def test_no_path_column_never_quotes_what_does_not_look_like_a_header(tmp_path, first_line):
    write_listings(tmp_path, first_line + "\nmore,content\n")
    assert read_listings(tmp_path).problems == ["listings.csv has no 'path' column; listing data ignored"]


def test_a_price_with_two_decimal_points_is_a_bad_row(tmp_path):
    write_listings(tmp_path, "path,price\na/1.jpg,12.5.3\na/2.jpg,1.299.000\n")
    listings = read_listings(tmp_path)
    assert listings.problems[-1] == "1 row has a non-numeric price (row 2); treated as missing"
    assert math.isnan(listings.table["price"][0]) and listings.table["price"][1] == 1299000.0


def test_listings_linked_from_outside_the_root_are_not_read(tmp_path):
    (tmp_path / "secret.csv").write_text("root:x:0:0:root:/root:/bin/bash\n")
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(tmp_path / "secret.csv", root / "listings.csv")
    listings = read_listings(root)
    assert listings.present and listings.table.empty
    assert listings.problems == ["listings.csv ignored: link leads outside the dataset folder; not read"]


def test_listings_that_are_a_pipe_or_too_large_are_not_read(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "listings.csv")  # reading it would block forever
    assert read_listings(tmp_path).problems == [
        "listings.csv ignored: not a regular file (a pipe, socket or device)"
    ]
    (tmp_path / "listings.csv").unlink()
    write_listings(tmp_path, "path,price\n" + "a/1.jpg,1\n" * 200)
    monkeypatch.setattr(core.scan.listings, "MAX_LISTINGS_BYTES", 1024)
    [problem] = read_listings(tmp_path).problems
    assert problem.startswith("listings.csv ignored: file too large to read: more than the 0 MiB")


def test_listings_linked_inside_the_root_are_read(tmp_path):
    write_listings(tmp_path / "meta", "path,price\nshoes/a.jpg,5\n")
    os.symlink("meta/listings.csv", tmp_path / "listings.csv")
    assert read_listings(tmp_path).table["price"].tolist() == [5.0]


def test_bad_prices_become_missing_with_their_rows_named(tmp_path):
    write_listings(tmp_path, "path,price,title,listing_id\na/1.jpg,ten,,\na/2.jpg,-3,,\na/3.jpg,\"$1,200.50\",,\n"
                             "a/4.jpg,,,\na/5.jpg,-1,,\n")
    listings = read_listings(tmp_path)
    assert listings.problems == [
        "1 row has a non-numeric price (row 2); treated as missing",
        "2 rows have a negative price (rows 3, 6); treated as missing",
    ]
    prices = listings.table.set_index("path")["price"]
    assert math.isnan(prices["a/1.jpg"]) and math.isnan(prices["a/2.jpg"]) and math.isnan(prices["a/4.jpg"])
    assert prices["a/3.jpg"] == 1200.5


def test_duplicate_and_blank_paths_keep_the_first_row(tmp_path):
    write_listings(tmp_path, "path,price\na/1.jpg,1\n./a/1.jpg,2\n,3\na\\1.jpg,4\na/2.jpg,5\n")
    listings = read_listings(tmp_path)
    assert listings.table["path"].tolist() == ["a/1.jpg", "a/2.jpg"]
    assert listings.table["price"].tolist() == [1.0, 5.0]
    assert listings.problems[1:] == [
        "1 row has an empty path (row 4); ignored",
        "2 rows have the path of an earlier row (rows 3, 5); ignored",
    ]


def test_windows_paths_and_dot_prefixes_are_normalised(tmp_path):
    write_listings(tmp_path, "path,price\r\nshoes\\sub\\a.jpg,1\r\n.\\shoes\\b.jpg,2\r\n./shoes/c.jpg,3\r\n")
    assert read_listings(tmp_path).table["path"].tolist() == ["shoes/sub/a.jpg", "shoes/b.jpg", "shoes/c.jpg"]


def test_latin1_encoding_is_read(tmp_path):
    write_listings(tmp_path, "path,title,price\nshoes/a.jpg,Café crème,3\n", encoding="latin-1")
    listings = read_listings(tmp_path)
    assert listings.problems == [] or "listing_id" in listings.problems[0]
    assert listings.table["title"].tolist() == ["Café crème"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_listings_file_saved_as_unicode_text_is_read(tmp_path, encoding):
    text = "path\tlisting_id\tprice\ttitle\nshoes/a.jpg\t1\t2\tCafé\n"
    bom = {"utf-16-be": "\ufeff"}.get(encoding, "")  # Python writes the BOM itself for utf-16 and utf-32
    write_listings(tmp_path, bom + text, encoding=encoding)
    listings = read_listings(tmp_path)
    assert listings.problems == []
    assert listings.table.iloc[0]["title"] == "Café" and listings.table.iloc[0]["price"] == 2.0


def test_utf8_with_bom_and_odd_header_case(tmp_path):
    write_listings(tmp_path, "\ufeffPath , Listing_ID,PRICE,Title\nshoes/a.jpg,1,2,x\n")
    listings = read_listings(tmp_path)
    assert listings.problems == []
    assert listings.table.iloc[0]["listing_id"] == "1"


def test_semicolon_delimiter_with_decimal_commas(tmp_path):
    write_listings(tmp_path, "path;listing_id;price;title\nshoes/a.jpg;1;12,50;Rot, neu\nshoes/b.jpg;2;1.299,00;x\n")
    listings = read_listings(tmp_path)
    assert listings.problems == []
    assert listings.table["price"].tolist() == [12.5, 1299.0]
    assert listings.table["title"].tolist() == ["Rot, neu", "x"]


def test_tab_delimiter(tmp_path):
    write_listings(tmp_path, "path\tprice\nshoes/a.jpg\t4\n")
    assert read_listings(tmp_path).table["price"].tolist() == [4.0]


def test_rows_with_too_many_fields_are_skipped_not_fatal(tmp_path):
    write_listings(tmp_path, "path,listing_id,price,title\na/1.jpg,1,5,Boots, size 42\na/2.jpg,2,6,Hat\na/3.jpg,3\n")
    listings = read_listings(tmp_path)
    assert listings.table["path"].tolist() == ["a/2.jpg", "a/3.jpg"]
    assert listings.problems == [
        "1 row has more fields than the header, perhaps an unquoted delimiter, or a cell over 10,000 characters "
        "(row 2); ignored"
    ]
    assert math.isnan(listings.table.iloc[1]["price"])


@pytest.mark.parametrize("content", [
    b"", b"\x00\x01\x02\xff\xfe garbage \x00\n\x89PNG", b"just one line of prose without commas\n",
    "\u00ff\u00fe weird header;;;\n1;2;3;4;5\n".encode("utf-16"),
])
def test_garbage_csv_is_ignored_with_a_reason(tmp_path, content):
    (tmp_path / "listings.csv").write_bytes(content)
    listings = read_listings(tmp_path)
    assert listings.present and listings.table.empty
    assert len(listings.problems) == 1 and "listings.csv" in listings.problems[0]


def test_header_only_is_an_empty_table(tmp_path):
    write_listings(tmp_path, "path,listing_id,price,title\n")
    listings = read_listings(tmp_path)
    assert listings.table.empty and listings.problems == []


def test_match_listing_paths_exact_then_case_then_leading_folders():
    images = ["shoes/a.jpg", "shoes/b.jpg", "shoes/c.jpg", "bags/b.jpg", "shoes/caf\u00e9.jpg"]
    listing = ["shoes/a.jpg", "Shoes/B.JPG", "C:/data/shop/shoes/c.jpg", "x/y.jpg", "b.jpg",
               "shoes/cafe\u0301.jpg", "SHOES/A.JPG"]
    assert match_listing_paths(listing, images) == {
        "shoes/a.jpg": "shoes/a.jpg", "Shoes/B.JPG": "shoes/b.jpg", "C:/data/shop/shoes/c.jpg": "shoes/c.jpg",
        "shoes/cafe\u0301.jpg": "shoes/caf\u00e9.jpg",
    }
