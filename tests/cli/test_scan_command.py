"""Tests of `listing-audit scan`: JSON and text output on a small real dataset, errors, the terminal progress bar."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import make_image

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def shop(tmp_path) -> Path:
    """Three good images in two classes, one truncated file, an empty class and a listings.csv."""
    root = tmp_path / "shop"
    make_image(root / "bags" / "b1.jpg")
    make_image(root / "shoes" / "s1.png")
    make_image(root / "shoes" / "s2.jpg")
    good = make_image(tmp_path / "whole.jpg", size=(64, 64)).read_bytes()
    (root / "shoes" / "cut.jpg").write_bytes(good[:300])
    (root / "hats").mkdir()
    (root / "listings.csv").write_text(
        "path,listing_id,price,title\nbags/b1.jpg,1,10,Bag\nshoes/s1.png,2,oops,Shoe\nshoes/gone.jpg,3,5,Gone\n"
    )
    return root


def scan(capsys, *args) -> tuple[int, str, str]:
    code = main(["scan", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_summary_keys_and_values(capsys, shop, db_path):
    code, out, err = scan(capsys, shop, "--db", db_path, "--format", "json")
    assert code == 0 and err == ""
    summary = json.loads(out)
    assert {"images", "classes", "unreadable", "unmatched_listings", "images_without_listing"} <= set(summary)
    assert summary["images"] == 4
    assert summary["classes"] == {"bags": 1, "hats": 0, "shoes": 3}
    assert summary["empty_classes"] == ["hats"]
    assert [item["path"] for item in summary["unreadable"]] == ["shoes/cut.jpg"]
    assert summary["unreadable"][0]["reason"].startswith("truncated image")
    assert summary["unmatched_listings"] == 1 and summary["images_without_listing"] == 2
    assert summary["listings_problems"] == ["1 row has a non-numeric price (row 3); treated as missing"]
    assert (summary["new"], summary["updated"], summary["unchanged"], summary["missing"]) == (4, 0, 0, 0)

    code, out, _ = scan(capsys, shop, "--db", db_path, "--format", "json", "--workers", "1")
    again = json.loads(out)
    assert code == 0 and again["unchanged"] == 4 and again["new"] == 0
    assert again["dataset_id"] == summary["dataset_id"]


def test_text_summary(capsys, shop, db_path):
    code, out, _ = scan(capsys, shop, "--db", db_path)
    assert code == 0
    assert f"Scanned {shop.resolve()} in " in out
    assert "4 images in 3 classes: 4 new, 0 changed, 0 unchanged" in out
    assert "  hats         0  <- empty folder" in out
    assert "Unreadable: 1 file (kept in the database, flagged as broken)" in out
    assert "  shoes/cut.jpg: truncated image" in out
    assert "  rows matching no image: 1" in out and "  images without a row: 2" in out
    assert "  problem: 1 row has a non-numeric price (row 3); treated as missing" in out


def test_text_summary_of_a_rescan_mentions_missing_files(capsys, shop, db_path):
    scan(capsys, shop, "--db", db_path)
    (shop / "bags" / "b1.jpg").unlink()
    (shop / "listings.csv").unlink()
    code, out, _ = scan(capsys, shop, "--db", db_path)
    assert code == 0
    assert "3 images in 3 classes: 0 new, 0 changed, 3 unchanged" in out
    assert "1 file seen before no longer on disk (kept, marked missing)" in out
    assert "listings.csv: none in the folder, so no prices or titles" in out


def test_a_folder_without_class_folders_says_what_is_expected(capsys, tmp_path, db_path):
    make_image(tmp_path / "flat" / "loose.jpg")
    code, out, _ = scan(capsys, tmp_path / "flat", "--db", db_path)
    assert code == 0 and "0 images in 0 classes" in out
    assert "no class folders: a dataset folder holds one subfolder per class" in out


def test_missing_folder_is_an_error(capsys, tmp_path, db_path):
    code, out, err = scan(capsys, tmp_path / "nope", "--db", db_path)
    assert code == 2 and out == ""
    assert err == f"error: dataset folder does not exist or is not a folder: {tmp_path / 'nope'}\n"


def test_workers_must_be_positive(capsys, shop, db_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(shop), "--db", str(db_path), "--workers", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_progress_bar_is_drawn_on_a_terminal(shop, db_path):
    """On a terminal, stderr gets a bar that ends at 100% on its own line; stdout keeps the summary."""
    primary, secondary = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "scan", str(shop), "--db", str(db_path)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=secondary, timeout=120, text=True,
        )
        os.close(secondary)
        secondary = None
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if secondary is not None:
            os.close(secondary)
        os.close(primary)
    assert result.returncode == 0
    text = drawn.decode()
    assert "\rscanning [" in text and "100.0% scanned 4 images" in text
    assert text.rstrip(" ").endswith(("\n", "\r\n"))
    assert result.stdout.startswith("Scanned ")


def test_text_summary_lists_what_was_not_scanned(capsys, shop, db_path):
    make_image(shop / "loose.jpg")
    (shop / "shoes" / "iphone.heic").write_bytes(b"\0" * 16)
    code, out, _ = scan(capsys, shop, "--db", db_path)
    assert code == 0
    assert ("Not scanned:\n"
            "  1 image is in the dataset folder itself, not in a class folder, so not scanned: loose.jpg\n"
            "  1 image in a format the scan cannot decode (HEIC), so not scanned: shoes/iphone.heic\n") in out
    code, out, _ = scan(capsys, shop, "--db", db_path, "--format", "json")
    summary = json.loads(out)
    assert summary["skipped"] == {"not_in_class_folder": 1, "unsupported_format": 1}
    assert len(summary["warnings"]) == 2
