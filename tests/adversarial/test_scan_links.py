"""The scan reads nothing outside the dataset folder: links leading out are skipped and reported, never read.

A dataset links to /etc/passwd, /etc/shadow, a folder and files next to it, and
its listings.csv to a file shaped like /etc/shadow. None of them becomes a
sample, nothing of the secret file is printed, and the skipped links are counted.
"""
from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select

import core.scan.inspect
from core.scan.walk import discover
from core.scan.inspect import inspect_files
from db.models import Sample
from jobs.scan import scan_dataset
from tests.adversarial.scan_inputs import SECRET_LINE, dataset_with_links_out, reviewed_shop
from tests.cli import run_cli
from tests.conftest import make_image

LINKS_OUT_WARNING = ("6 links lead outside the dataset folder and were not read: "
                     "bags, shoes/id-card.png, shoes/more and 3 more")


def stored_paths(factory) -> list[str]:
    with factory() as session:
        return sorted(session.scalars(select(Sample.path)))


def test_links_out_of_the_folder_become_no_samples_and_are_reported(factory, tmp_path):
    dataset = dataset_with_links_out(tmp_path)
    summary = scan_dataset(factory, dataset.root, workers=1)
    assert stored_paths(factory) == ["shoes/real.jpg"]
    assert summary["images"] == 1 and summary["classes"] == {"shoes": 1} and summary["unreadable"] == []
    assert summary["skipped"] == {"outside_root": 6}
    assert summary["warnings"] == [LINKS_OUT_WARNING]
    assert summary["listings_problems"] == ["listings.csv ignored: link leads outside the dataset folder; not read"]
    assert "root:" not in json.dumps(summary) and "Zx9sEcReT" not in json.dumps(summary)


def test_the_cli_reports_skipped_links_and_never_prints_the_linked_file(capsys, tmp_path, db_path):
    dataset = dataset_with_links_out(tmp_path)
    code, out, err = run_cli(capsys, "scan", dataset.root, "--db", db_path, "--workers", "1")
    assert code == 0
    assert f"Not scanned:\n  {LINKS_OUT_WARNING}\n" in out
    assert "  problem: listings.csv ignored: link leads outside the dataset folder; not read" in out
    assert "root:" not in out + err and "Zx9sEcReT" not in out + err


def test_a_listings_file_that_is_no_csv_is_not_quoted(capsys, tmp_path, db_path):
    make_image(tmp_path / "shop" / "shoes" / "a.jpg")
    (tmp_path / "shop" / "listings.csv").write_text(SECRET_LINE + "\n")
    code, out, err = run_cli(capsys, "scan", tmp_path / "shop", "--db", db_path)
    assert code == 0 and "  problem: listings.csv has no 'path' column; listing data ignored" in out
    assert "root:" not in out + err and "Zx9sEcReT" not in out + err


@pytest.mark.parametrize("in_worker_processes", [False, True])
def test_a_file_swapped_for_a_link_out_after_the_walk_is_not_read(tmp_path, monkeypatch, in_worker_processes):
    dataset = dataset_with_links_out(tmp_path)
    make_image(dataset.root / "shoes" / "later.jpg")
    make_image(dataset.root / "shoes" / "pipe.jpg")
    files = discover(dataset.root)
    (dataset.root / "shoes" / "later.jpg").unlink()
    os.symlink(dataset.outside / "id-card.png", dataset.root / "shoes" / "later.jpg")
    (dataset.root / "shoes" / "pipe.jpg").unlink()
    os.mkfifo(dataset.root / "shoes" / "pipe.jpg")  # reading it would block for ever
    if in_worker_processes:
        monkeypatch.setattr(core.scan.inspect, "MIN_FILES_FOR_POOL", 0)
    infos = dict(zip((entry.path for entry in files.files), inspect_files(files.root, files.files, workers=2)))
    assert infos["shoes/later.jpg"].error == "link leads outside the dataset folder; not read"
    assert infos["shoes/later.jpg"].content_hash is None
    assert infos["shoes/pipe.jpg"].error == "not a regular file (a pipe, socket or device)"
    assert infos["shoes/real.jpg"].error is None


def test_an_image_file_larger_than_the_limit_is_not_read(tmp_path, monkeypatch):
    make_image(tmp_path / "shoes" / "big.png", size=(64, 64))
    make_image(tmp_path / "shoes" / "small.png", size=(4, 4), color=(1, 2, 3))
    limit = (tmp_path / "shoes" / "small.png").stat().st_size
    monkeypatch.setattr(core.scan.inspect, "MAX_IMAGE_FILE_BYTES", limit)
    files = discover(tmp_path)
    big, small = inspect_files(files.root, files.files, workers=1)
    assert big.error.startswith("file too large to read: more than the 0 MiB the scan reads")
    assert big.content_hash is None and small.error is None


def test_a_link_to_a_class_folder_never_takes_its_place_and_every_decision_stays(factory, tmp_path):
    """Issue: `ln -s bag DATASET/a-bags` after review made the scan keep `a-bags` (sorted first), drop `bag`'s
    samples as missing and export the deleted image."""
    from core.export.plan import plan_export
    from db.review import export_frame

    root = tmp_path / "shop"
    dataset_id = reviewed_shop(factory, root, [("bag/bag0.png", "relabel", {"new_label": "shoe"}),
                                               ("bag/bag1.png", "delete", {})])
    os.symlink("bag", root / "a-bags")
    summary = scan_dataset(factory, root, workers=1)
    assert summary["classes"] == {"bag": 3, "shoe": 3} and summary["missing"] == 0
    assert summary["skipped"] == {"link_to_class_folder": 1}
    assert summary["warnings"] == ["1 link to a class folder already scanned was not taken as a class of its own: "
                                   "a-bags"]
    with factory() as session:
        plan = plan_export(export_frame(session, dataset_id))
    assert (plan.summary["decisions"]["relabelled"], plan.summary["decisions"]["deleted"]) == (1, 1)
    assert "bag/bag1.png" not in set(plan.included()["path"])
