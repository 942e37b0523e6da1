"""Files swapped after the scan: a FIFO where an image was never hangs a reader, and export writes only files whose
bytes are still those the scan hashed, with a manifest and counts that say so."""
from __future__ import annotations

import csv
import json
import os
import threading

import pytest

from cli.main import main as cli_main
from core.imaging import NotARegularFile, open_rgb, read_file_facts
from core.models.data import load_images
from jobs.scan import scan_dataset
from tests.conftest import make_image
from ui.thumbnails import render_jpeg


def finishes_within(seconds: float, work) -> object:
    """work()'s result, or AssertionError when it is still running after `seconds` (a reader blocked on a FIFO)."""
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread below
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the reader blocked"
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture
def shop(tmp_path, factory):
    root = tmp_path / "shop"
    for label in ("bag", "shoe"):
        for i in range(4):
            make_image(root / label / f"{label}{i}.png")
    scan_dataset(factory, root, workers=1)
    return root


def test_a_fifo_swapped_in_after_the_scan_fails_every_reader_at_once(shop, tmp_path):
    fifo = shop / "shoe" / "shoe1.png"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile):
        finishes_within(5, lambda: open_rgb(fifo, max_side=64))
    with pytest.raises(NotARegularFile):
        finishes_within(5, lambda: read_file_facts(fifo))
    image, problem = finishes_within(5, lambda: render_jpeg(str(fifo), max_side=64))
    assert image and "not a regular file" in problem
    decoded = finishes_within(30, lambda: load_images(shop, ["shoe/shoe0.png", "shoe/shoe1.png"],
                                                      ["h0", "h1"], size=32, cache_dir=tmp_path / "cache",
                                                      workers=1))
    assert list(decoded.failed) == [1] and "not a regular file" in decoded.failed[1]


def test_export_writes_only_what_is_still_as_scanned_and_its_manifest_says_why(shop, tmp_path, db_path, capsys):
    (shop / "bag" / "bag3.png").unlink()
    (shop / "bag" / "bag2.png").write_text("hello")
    fifo = shop / "shoe" / "shoe1.png"
    fifo.unlink()
    os.mkfifo(fifo)
    out = tmp_path / "clean"
    code = finishes_within(60, lambda: cli_main(["export", str(shop), "--out", str(out), "--db", str(db_path)]))
    printed = capsys.readouterr().out
    assert code == 0
    assert "5 of 8 images exported" in printed
    assert "not exported, since the scan: 1 gone from disk, 1 changed on disk (rescan to see them), 1 no longer " \
           "regular files inside the dataset folder" in printed
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["bag/bag0.png", "bag/bag1.png", "shoe/shoe0.png", "shoe/shoe2.png", "shoe/shoe3.png"]
    with open(out / "manifest.csv", newline="") as handle:
        fates = {row["path"]: (row["decision"], row["output_path"]) for row in csv.DictReader(handle)}
    assert fates["bag/bag3.png"] == ("vanished", "") and fates["bag/bag2.png"] == ("changed", "")
    assert fates["shoe/shoe1.png"] == ("refused", "")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exported"] == summary["files_written"] == 5
    assert (summary["failed"], summary["changed"], summary["refused_outside"]) == (
        ["bag/bag3.png"], ["bag/bag2.png"], ["shoe/shoe1.png"])


def test_a_picture_replaced_under_a_decision_is_named_at_the_rescan(factory, shop):
    from sqlalchemy import select

    from db.corrections import decide
    from db.models import Sample

    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == "bag/bag0.png")).one()
        decide(session, sample, "relabel", classes=["bag", "shoe"], new_label="shoe")
    make_image(shop / "bag" / "bag0.png", size=(40, 30), color=(1, 2, 3))  # another picture, same name
    make_image(shop / "bag" / "bag1.png", size=(40, 30), color=(3, 2, 1))  # changed too, but never decided on
    summary = scan_dataset(factory, shop, workers=1)
    assert summary["updated"] == 2
    assert summary["decision_notes"] == ["1 file with review decisions was replaced by a different picture since the "
                                   "last scan; its decisions still apply, so check it: bag/bag0.png"]
