"""Tests of core/dataset.py: walking class folders (symlinks, hidden and odd names) and reading listings.csv."""
from __future__ import annotations

import math
import os

import pytest

import core.dataset
from core.dataset import (
    NOT_IN_CLASS_FOLDER, OUTSIDE_ROOT, UNSUPPORTED_FORMAT, FileRefused, discover, match_listing_paths,
    normalise_listing_path, parse_price, read_file_inside, read_listings, skipped_warnings,
)
from core.imaging import AVIF_SUPPORTED
from tests.conftest import make_image


def write_listings(root, text: str, encoding: str = "utf-8") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "listings.csv").write_bytes(text.encode(encoding))


def paths_of(files) -> dict[str, object]:
    return {entry.path: entry for entry in files.files}


def test_classes_are_sorted_folders_and_images_include_nested_ones(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    make_image(tmp_path / "shoes" / "summer" / "deep" / "b.png")
    make_image(tmp_path / "bags" / "c.webp")
    (tmp_path / "empty").mkdir()
    make_image(tmp_path / "loose.jpg")  # not in a class folder
    (tmp_path / "shoes" / "notes.txt").write_text("not an image")

    files = discover(tmp_path)
    assert files.classes == ["bags", "empty", "shoes"]
    assert files.empty_classes == ["empty"]
    assert sorted(paths_of(files)) == ["bags/c.webp", "shoes/a.jpg", "shoes/summer/deep/b.png"]
    entry = paths_of(files)["shoes/summer/deep/b.png"]
    assert entry.label == "shoes" and entry.stat_error is None
    assert entry.size == (tmp_path / "shoes/summer/deep/b.png").stat().st_size and entry.mtime_ns > 0


def test_hidden_files_and_folders_are_ignored(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    make_image(tmp_path / "shoes" / ".thumb.jpg")
    make_image(tmp_path / "shoes" / ".cache" / "b.jpg")
    make_image(tmp_path / "shoes" / "__MACOSX" / "c.jpg")
    make_image(tmp_path / ".trash" / "d.jpg")
    files = discover(tmp_path)
    assert files.classes == ["shoes"]
    assert list(paths_of(files)) == ["shoes/a.jpg"]


def test_extensions_are_case_insensitive_and_names_may_have_spaces_and_accents(tmp_path):
    make_image(tmp_path / "Schuhe grün" / "Größe 42 (1).JPG")
    make_image(tmp_path / "Schuhe grün" / "写真.Png")
    files = discover(tmp_path)
    assert files.classes == ["Schuhe grün"]
    assert sorted(paths_of(files)) == ["Schuhe grün/Größe 42 (1).JPG", "Schuhe grün/写真.Png"]


def test_symlinks_broken_and_looping_files_get_a_reason(tmp_path):
    make_image(tmp_path / "shoes" / "real.jpg")
    os.symlink("real.jpg", tmp_path / "shoes" / "alias.jpg")
    os.symlink("missing.jpg", tmp_path / "shoes" / "broken.jpg")
    os.symlink("self.jpg", tmp_path / "shoes" / "self.jpg")
    entries = paths_of(discover(tmp_path))
    assert entries["shoes/alias.jpg"].stat_error is None
    assert entries["shoes/alias.jpg"].size == entries["shoes/real.jpg"].size
    assert entries["shoes/broken.jpg"].stat_error == "broken symlink: target does not exist"
    assert entries["shoes/self.jpg"].stat_error == "symlink loop"


def test_directory_symlink_loops_end_and_other_classes_are_not_pulled_in(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    make_image(tmp_path / "bags" / "b.jpg")
    make_image(tmp_path / "shoes" / "extra" / "c.jpg")
    os.symlink("..", tmp_path / "shoes" / "up")  # to the dataset root
    os.symlink(".", tmp_path / "shoes" / "extra" / "here")  # to itself
    os.symlink("../bags", tmp_path / "shoes" / "bags_link")  # to another class
    os.symlink("loop_b", tmp_path / "shoes" / "loop_a")  # a symlink cycle
    os.symlink("loop_a", tmp_path / "shoes" / "loop_b")
    files = discover(tmp_path)
    assert sorted(paths_of(files)) == ["bags/b.jpg", "shoes/a.jpg", "shoes/extra/c.jpg"]


def test_a_linked_folder_inside_the_root_is_followed(tmp_path):
    make_image(tmp_path / "data" / "originals" / "photos" / "x.jpg")
    make_image(tmp_path / "data" / "shoes" / "a.jpg")
    os.symlink(tmp_path / "data" / "originals" / "photos", tmp_path / "data" / "shoes" / "more")
    files = discover(tmp_path / "data")
    assert sorted(paths_of(files)) == ["originals/photos/x.jpg", "shoes/a.jpg"]  # claimed by its own class first
    os.symlink("../../data/shoes/a.jpg", tmp_path / "data" / "originals" / "same.jpg")  # out and back in
    assert "originals/same.jpg" in paths_of(discover(tmp_path / "data"))
    assert discover(tmp_path / "data").skipped == {}


def test_links_leading_outside_the_root_are_skipped_and_listed(tmp_path):
    make_image(tmp_path / "elsewhere" / "photos" / "x.jpg")
    secret = make_image(tmp_path / "elsewhere" / "secret.png")
    root = tmp_path / "data"
    make_image(root / "shoes" / "a.jpg")
    os.symlink(tmp_path / "elsewhere" / "photos", root / "shoes" / "more")  # a folder outside
    os.symlink(secret, root / "shoes" / "secret.png")  # a file outside
    os.symlink("/etc/passwd", root / "shoes" / "passwd.jpg")
    os.symlink("../../elsewhere/gone.jpg", root / "shoes" / "dangling.jpg")  # broken, and outside
    os.symlink(tmp_path / "elsewhere", root / "bags")  # a whole class folder outside
    files = discover(root)
    assert sorted(paths_of(files)) == ["shoes/a.jpg"]
    assert files.classes == ["shoes"]
    assert files.skipped == {OUTSIDE_ROOT: ["bags", "shoes/dangling.jpg", "shoes/more", "shoes/passwd.jpg",
                                            "shoes/secret.png"]}
    assert skipped_warnings(files.skipped) == [
        "5 links lead outside the dataset folder and were not read: bags, shoes/dangling.jpg, shoes/more and 2 more"
    ]


def test_a_root_that_is_itself_a_link_is_scanned_where_it_leads(tmp_path):
    make_image(tmp_path / "real" / "shoes" / "a.jpg")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    files = discover(tmp_path / "alias")
    assert files.root == tmp_path / "real" and list(paths_of(files)) == ["shoes/a.jpg"] and files.skipped == {}


def test_images_outside_class_folders_and_unsupported_formats_are_listed(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    make_image(tmp_path / "loose.jpg")
    make_image(tmp_path / "cover.PNG")
    (tmp_path / "shoes" / "iphone.heic").write_bytes(b"\0" * 10)
    (tmp_path / "shoes" / "new\nline.jxl").write_bytes(b"\0" * 10)
    (tmp_path / "shoes" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "notes.txt").write_text("not an image: not listed")
    files = discover(tmp_path)
    assert files.skipped == {NOT_IN_CLASS_FOLDER: ["cover.PNG", "loose.jpg"],
                             UNSUPPORTED_FORMAT: ["shoes/iphone.heic", "shoes/logo.svg", "shoes/new\nline.jxl"]}
    assert skipped_warnings(files.skipped) == [
        "2 images are in the dataset folder itself, not in a class folder, so not scanned: cover.PNG, loose.jpg",
        "3 images in a format the scan cannot decode (HEIC, JXL, SVG), so not scanned: shoes/iphone.heic, "
        "shoes/logo.svg, shoes/new\\x0aline.jxl",
    ]


def test_avif_is_an_image_when_pillow_decodes_it_else_an_unsupported_format(tmp_path):
    make_image(tmp_path / "shoes" / "a.avif")
    files = discover(tmp_path)
    if AVIF_SUPPORTED:
        assert list(paths_of(files)) == ["shoes/a.avif"] and files.skipped == {}
    else:
        assert files.files == [] and files.skipped == {UNSUPPORTED_FORMAT: ["shoes/a.avif"]}


def test_name_that_is_not_utf8_is_reported_not_crashing(tmp_path):
    make_image(tmp_path / "shoes" / "ok.jpg")
    bad = os.path.join(os.fsencode(tmp_path / "shoes"), b"caf\xe9.jpg")
    with open(bad, "wb") as handle:
        handle.write((tmp_path / "shoes" / "ok.jpg").read_bytes())
    entries = paths_of(discover(tmp_path))
    assert entries["shoes/caf\\xe9.jpg"].stat_error.startswith("file or folder name is not valid UTF-8")
    assert "shoes/caf\\xe9.jpg".encode("utf-8")  # storable text


def test_a_pipe_named_like_an_image_is_reported_not_read(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    os.mkfifo(tmp_path / "shoes" / "pipe.jpg")
    entries = paths_of(discover(tmp_path))
    assert entries["shoes/pipe.jpg"].stat_error == "not a regular file (a pipe, socket or device)"


def test_a_file_is_read_for_its_size_whatever_the_limit(tmp_path):
    """The read asks for the file's size, not for the limit: a limit of a terabyte allocates nothing."""
    make_image(tmp_path / "shoes" / "a.jpg")
    data = (tmp_path / "shoes" / "a.jpg").read_bytes()
    assert read_file_inside(tmp_path, "shoes/a.jpg", max_bytes=2**40) == data
    assert read_file_inside(tmp_path, "shoes/a.jpg", max_bytes=len(data)) == data
    with pytest.raises(FileRefused, match="file too large to read"):
        read_file_inside(tmp_path, "shoes/a.jpg", max_bytes=len(data) - 1)


def test_missing_root_raises(tmp_path):
    with pytest.raises(NotADirectoryError):
        discover(tmp_path / "nope")


# --- listings.csv --------------------------------------------------------------------------------


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
    monkeypatch.setattr(core.dataset, "MAX_LISTINGS_BYTES", 1024)
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
