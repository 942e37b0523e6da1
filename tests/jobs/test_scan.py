"""Tests of jobs/scan.py: a real folder of good and broken files scanned into a real SQLite file, then rescanned."""
from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

import core.scan.inspect
from db.corrections import decide
from db.models import Dataset, Sample
from db.queries import dataset_classes, get_dataset, samples_frame
from jobs.scan import scan_dataset
from tests.conftest import make_image

SUMMARY_KEYS = {
    "dataset_id", "root", "images", "classes", "empty_classes", "unreadable", "unmatched_listings",
    "images_without_listing", "listings_problems", "new", "updated", "unchanged", "missing", "listings_file",
    "skipped", "warnings", "evaluation_split_added", "carried_decisions", "decision_notes",
    "seconds",
}


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels: Pillow refuses it before decoding anything."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def build_messy_dataset(root: Path) -> dict[str, str]:
    """Every kind of bad input next to good images of every mode. Returns path -> expected error prefix."""
    make_image(root / "shoes" / "plain.jpg")
    make_image(root / "shoes" / "cmyk.jpg", mode="CMYK")
    make_image(root / "shoes" / "gray16.png", mode="I;16")
    make_image(root / "shoes" / "palette.gif", mode="P")
    make_image(root / "shoes" / "alpha.png", mode="RGBA")
    make_image(root / "shoes" / "name with spaces é 漢字.jpg")
    make_image(root / "shoes" / "nested" / "deeper" / "inner.png")
    make_image(root / "shoes" / ".hidden.jpg")
    (root / "shoes" / "readme.txt").write_text("ignored: not an image extension")
    exif = Image.Exif()
    exif[0x0112] = 6
    make_image(root / "bags" / "rotated.jpg", size=(40, 20), exif=exif.tobytes())
    (root / "empty_class").mkdir(parents=True)

    broken = {
        "bags/zero.jpg": "empty file (0 bytes)",
        "bags/truncated.jpg": "truncated image",
        "bags/not_an_image.png": "not an image",
        "bags/huge.png": "image too large",
        "bags/broken_link.jpg": "broken symlink",
        "bags/self_link.jpg": "symlink loop",
        "bags/pipe.jpg": "not a regular file",
    }
    (root / "bags" / "zero.jpg").write_bytes(b"")
    whole = make_image(root / "whole.jpg", size=(96, 96)).read_bytes()  # at the root: not in a class
    (root / "bags" / "truncated.jpg").write_bytes(whole[: len(whole) * 2 // 3])
    (root / "bags" / "not_an_image.png").write_text("<html>a saved web page</html>")
    (root / "bags" / "huge.png").write_bytes(png_claiming(30_000, 30_000))
    os.symlink("gone.jpg", root / "bags" / "broken_link.jpg")
    os.symlink("self_link.jpg", root / "bags" / "self_link.jpg")
    os.symlink("..", root / "bags" / "loop_to_root")
    os.mkfifo(root / "bags" / "pipe.jpg")  # reading it would block the scan forever
    return broken


def checksums(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every regular file under root (symlinks not followed)."""
    result = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                result[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return result


def sample_rows(factory, dataset_id: int) -> dict[str, Sample]:
    with factory() as session:
        return {s.path: s for s in session.scalars(select(Sample).where(Sample.dataset_id == dataset_id))}


def touch_later(path: Path, seconds: int = 10) -> None:
    """Move a file's mtime forward, as an edit a moment later would (file systems tick in milliseconds)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


@pytest.mark.parametrize("in_worker_processes", [False, True])
def test_messy_folder_scans_every_file_with_a_reason_and_changes_nothing(factory, tmp_path, monkeypatch,
                                                                         in_worker_processes):
    root = tmp_path / "shop"
    broken = build_messy_dataset(root)
    before = checksums(root)
    if in_worker_processes:
        monkeypatch.setattr(core.scan.inspect, "MIN_FILES_FOR_POOL", 0)

    summary = scan_dataset(factory, root, workers=2)

    assert checksums(root) == before
    assert set(summary) == SUMMARY_KEYS
    assert summary["root"] == str(root.resolve())
    assert summary["classes"] == {"bags": 8, "empty_class": 0, "shoes": 7}
    assert summary["empty_classes"] == ["empty_class"]
    assert summary["images"] == 15 and summary["new"] == 15 and summary["unchanged"] == 0
    reasons = {item["path"]: item["reason"] for item in summary["unreadable"]}
    assert set(reasons) == set(broken)
    for path, prefix in broken.items():
        assert reasons[path].startswith(prefix), (path, reasons[path])
    assert summary["listings_file"] is False and summary["images_without_listing"] == 15
    assert summary["skipped"] == {"not_in_class_folder": 1}
    assert summary["warnings"] == [
        "1 image is in the dataset folder itself, not in a class folder, so not scanned: whole.jpg"
    ]

    rows = sample_rows(factory, summary["dataset_id"])
    assert (rows["bags/rotated.jpg"].width, rows["bags/rotated.jpg"].height) == (20, 40)
    for path in ["shoes/cmyk.jpg", "shoes/gray16.png", "shoes/palette.gif", "shoes/alpha.png",
                 "shoes/name with spaces é 漢字.jpg", "shoes/nested/deeper/inner.png"]:
        row = rows[path]
        assert row.readable and row.error is None and (row.width, row.height) == (32, 32), path
        assert len(row.phash) == 16 and 0 < row.brightness < 1 and row.entropy > 0, path
    assert rows["shoes/cmyk.jpg"].mode == "CMYK" and rows["shoes/gray16.png"].mode == "I;16"
    assert rows["bags/zero.jpg"].content_hash == hashlib.sha256(b"").hexdigest()
    assert rows["bags/broken_link.jpg"].content_hash is None and not rows["bags/broken_link.jpg"].readable


def test_summary_is_stored_on_the_dataset_and_classes_include_empty_ones(factory, tmp_path):
    make_image(tmp_path / "a" / "1.jpg")
    (tmp_path / "b").mkdir()
    summary = scan_dataset(factory, tmp_path)
    with factory() as session:
        dataset = get_dataset(session, tmp_path)
        assert json.loads(dataset.last_scan_json)["images"] == 1
        assert dataset.scanned_at is not None
        assert dataset_classes(session, summary["dataset_id"]) == ["a", "b"]


def test_warm_rescan_skips_unchanged_files(factory, tmp_path):
    for index in range(5):
        make_image(tmp_path / "shoes" / f"{index}.jpg")
    first = scan_dataset(factory, tmp_path)
    before = sample_rows(factory, first["dataset_id"])
    second = scan_dataset(factory, tmp_path)
    assert (second["new"], second["updated"], second["unchanged"], second["missing"]) == (0, 0, 5, 0)
    after = sample_rows(factory, first["dataset_id"])
    assert {p: s.scanned_at for p, s in after.items()} == {p: s.scanned_at for p, s in before.items()}
    assert (first["evaluation_split_added"], second["evaluation_split_added"]) == (5, 0)
    changing = ("new", "unchanged", "seconds", "evaluation_split_added")
    assert {k: v for k, v in second.items() if k not in changing} == \
        {k: v for k, v in first.items() if k not in changing}


def test_rescan_keeps_identity_and_corrections(factory, tmp_path):
    root = tmp_path / "shop"
    for name in ["keep.jpg", "edit.jpg", "vanish.jpg"]:
        make_image(root / "shoes" / name)
    make_image(root / "bags" / "bag.jpg")
    first = scan_dataset(factory, root)
    dataset_id = first["dataset_id"]
    ids = {path: row.id for path, row in sample_rows(factory, dataset_id).items()}
    old_hash = sample_rows(factory, dataset_id)["shoes/edit.jpg"].content_hash
    with factory.begin() as session:
        for path in ["shoes/edit.jpg", "shoes/vanish.jpg"]:
            decide(session, session.get(Sample, ids[path]), "relabel", classes=["bags", "shoes"], new_label="bags")
        decide(session, session.get(Sample, ids["shoes/keep.jpg"]), "delete", classes=["bags", "shoes"])

    make_image(root / "shoes" / "edit.jpg", color=(1, 2, 3))  # new content
    touch_later(root / "shoes" / "edit.jpg")
    (root / "shoes" / "vanish.jpg").rename(tmp_path / "vanish.jpg")
    make_image(root / "shoes" / "new.jpg")
    second = scan_dataset(factory, root)

    assert (second["new"], second["updated"], second["unchanged"], second["missing"]) == (1, 1, 2, 1)
    assert second["images"] == 4
    rows = sample_rows(factory, dataset_id)
    assert {path: rows[path].id for path in ids} == ids
    assert rows["shoes/edit.jpg"].content_hash != old_hash
    assert rows["shoes/edit.jpg"].brightness == pytest.approx(2.0 / 255, abs=0.01)
    assert rows["shoes/vanish.jpg"].missing and not rows["shoes/keep.jpg"].missing
    with factory() as session:
        frame = samples_frame(session, dataset_id).set_index("path")
        assert "shoes/vanish.jpg" not in frame.index
        assert frame.loc["shoes/edit.jpg", "current_label"] == "bags"
        assert frame.loc["shoes/keep.jpg", "deleted"]
        everything = samples_frame(session, dataset_id, include_missing=True).set_index("path")
        assert everything.loc["shoes/vanish.jpg", "current_label"] == "bags"

    (tmp_path / "vanish.jpg").rename(root / "shoes" / "vanish.jpg")
    third = scan_dataset(factory, root)
    assert third["missing"] == 0 and third["images"] == 5 and third["unchanged"] == 5
    rows = sample_rows(factory, dataset_id)
    assert not rows["shoes/vanish.jpg"].missing and rows["shoes/vanish.jpg"].id == ids["shoes/vanish.jpg"]
    with factory() as session:
        frame = samples_frame(session, dataset_id).set_index("path")
        assert frame.loc["shoes/vanish.jpg", "current_label"] == "bags"


def test_a_file_that_breaks_and_is_fixed_is_rescanned(factory, tmp_path):
    path = make_image(tmp_path / "shoes" / "a.jpg")
    good = path.read_bytes()
    first = scan_dataset(factory, tmp_path)
    path.write_bytes(good[:40])
    touch_later(path)
    second = scan_dataset(factory, tmp_path)
    assert [item["path"] for item in second["unreadable"]] == ["shoes/a.jpg"] and second["updated"] == 1
    path.write_bytes(good)
    touch_later(path, 20)
    third = scan_dataset(factory, tmp_path)
    assert third["unreadable"] == [] and third["dataset_id"] == first["dataset_id"]
    row = sample_rows(factory, first["dataset_id"])["shoes/a.jpg"]
    assert row.readable and row.error is None and row.phash


def test_unreadable_files_are_retried_even_when_size_and_mtime_are_the_same(factory, tmp_path):
    """A permission fixed or a disk remounted does not change a file's mtime; a broken file is read again."""
    path = make_image(tmp_path / "shoes" / "a.jpg")
    good, stat = path.read_bytes(), path.stat()
    path.write_bytes(b"\0" * len(good))  # same size, garbage
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    first = scan_dataset(factory, tmp_path)
    assert [item["path"] for item in first["unreadable"]] == ["shoes/a.jpg"]
    path.write_bytes(good)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = scan_dataset(factory, tmp_path)
    assert second["unreadable"] == [] and (second["new"], second["updated"], second["unchanged"]) == (0, 0, 1)
    assert sample_rows(factory, first["dataset_id"])["shoes/a.jpg"].phash


def test_listings_are_joined_and_counted(factory, tmp_path):
    for name in ["a.jpg", "b.jpg", "c.jpg"]:
        make_image(tmp_path / "shoes" / name)
    (tmp_path / "listings.csv").write_text(
        "path,listing_id,price,title,seller\n"
        "shoes/a.jpg,L1,\"$1,200.00\",Boots,ann\n"
        ".\\shoes\\b.jpg,L2,abc,Hat,\n"
        "C:\\Users\\me\\shop\\SHOES\\C.JPG,L3,5,Cap,bo\n"
        "shoes/gone.jpg,L4,9,Lost,\n"
    )
    summary = scan_dataset(factory, tmp_path)
    assert summary["listings_file"] is True
    assert summary["unmatched_listings"] == 1 and summary["images_without_listing"] == 0
    assert summary["listings_problems"] == ["1 row has a non-numeric price (row 3); treated as missing"]
    rows = sample_rows(factory, summary["dataset_id"])
    assert (rows["shoes/a.jpg"].listing_id, rows["shoes/a.jpg"].price, rows["shoes/a.jpg"].title) == ("L1", 1200.0, "Boots")
    assert json.loads(rows["shoes/a.jpg"].listing_json) == {"seller": "ann"}
    assert rows["shoes/b.jpg"].listing_id == "L2" and rows["shoes/b.jpg"].price is None
    assert rows["shoes/c.jpg"].listing_id == "L3" and rows["shoes/c.jpg"].price == 5.0

    (tmp_path / "listings.csv").write_text("path,listing_id,price,title\nshoes/a.jpg,L1,99,Boots\n")
    again = scan_dataset(factory, tmp_path)
    assert again["images_without_listing"] == 2 and again["unmatched_listings"] == 0
    rows = sample_rows(factory, summary["dataset_id"])
    assert rows["shoes/a.jpg"].price == 99.0 and rows["shoes/a.jpg"].listing_json is None
    assert rows["shoes/c.jpg"].listing_id is None and rows["shoes/c.jpg"].price is None


def test_garbage_listings_do_not_stop_the_scan(factory, tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    (tmp_path / "listings.csv").write_bytes(b"\x00\x01binary\x00junk")
    summary = scan_dataset(factory, tmp_path)
    assert summary["images"] == 1 and len(summary["listings_problems"]) == 1


def test_missing_folder_raises(factory, tmp_path):
    with pytest.raises(NotADirectoryError):
        scan_dataset(factory, tmp_path / "nope")
    with factory() as session:
        assert session.scalars(select(Dataset)).all() == []


def test_progress_reaches_one(factory, tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    reports = []
    scan_dataset(factory, tmp_path, progress=lambda fraction, message: reports.append((fraction, message)))
    assert reports[0][0] == 0.0 and reports[-1] == (1.0, "scanned 1 image")
    assert [f for f, _ in reports] == sorted(f for f, _ in reports)
