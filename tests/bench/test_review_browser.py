"""bench/review_browser.py on a small dataset: every action is timed in the browser and reported as JSON.

The dataset has a mislabel flag on each of its 78 images (written directly, as an audit would),
enough for one warm-up and one counted cycle of each view; the bench copies the database. A second
dataset, scanned first and first by name, has no flags: the bench must measure the one it is told to.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from db.models import Sample
from jobs.scan import scan_dataset
from tests.conftest import make_image
from tests.e2e.browser import CHROMIUM, running_app  # noqa: F401 (CHROMIUM: skips this module where there is no browser)
from tests.review_data import add_audit_job, add_flags

from bench.review_browser import GRID_TILES, copy_database, main, mislabels_needed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLASSES = ("bag", "phone", "shoe")
IMAGES_PER_CLASS = 26


def build_flagged_dataset(root, factory) -> int:
    """Scan a small unflagged dataset ("a-other"); write and scan 3 classes of small images with listings
    at `root`, then flag every image as a mislabel. Returns the flagged dataset's id."""
    other = root.parent / "a-other"
    make_image(other / "bag" / "bag.png", size=(32, 32))
    scan_dataset(factory, other, workers=1)
    rows = ["path,listing_id,price,title"]
    for label in CLASSES:
        for index in range(IMAGES_PER_CLASS):
            path = f"{label}/{label}-{index}.png"
            make_image(root / path, size=(32, 32))
            rows.append(f"{path},L-{label}-{index},{10 + index}.00,A used {label} number {index}")
    (root / "listings.csv").write_text("\n".join(rows) + "\n")
    dataset_id = scan_dataset(factory, root, workers=1)["dataset_id"]
    with factory.begin() as session:
        sample_ids = dict(session.execute(select(Sample.path, Sample.id).where(Sample.dataset_id == dataset_id)).all())
        flags = {}
        for rank, path in enumerate(sorted(sample_ids)):
            given = path.split("/")[0]
            suggested = CLASSES[(CLASSES.index(given) + 1) % len(CLASSES)]
            flags[path] = ("mislabel", 0.9 + rank / 1000, suggested, None, f"looks like a {suggested}",
                           {"suggested_probability": 0.9, "top3": [[suggested, 0.9], [given, 0.1]]})
        add_flags(session, add_audit_job(session, dataset_id), sample_ids, flags)
    return dataset_id


def check_result(result: dict) -> None:
    """Every action timed once, with the server's CPU time, on the flagged dataset."""
    actions = {row["action"]: row for row in result["actions"]}
    assert list(actions) == ["next (n)", "accept (a)", "relabel (l)", "undo (u)", "grid: untick one (click)",
                             f"grid: accept a page of {GRID_TILES} (a)"]
    for row in actions.values():
        assert row["n"] == 1 and 0 < row["median_s"] <= row["median_images_s"] < 60
        assert 0 < row["median_server_cpu_s"] < 60  # every action makes the server run the page
    assert result["mislabels_open_at_start"] == len(CLASSES) * IMAGES_PER_CLASS
    assert result["machine"]["nproc"] >= 1 and result["load_1min"]["samples"] >= 1


def test_one_cycle_of_each_view_is_timed_and_the_original_database_is_left_as_it_was(tmp_path, factory, db_path,
                                                                                     capsys):
    root = tmp_path / "flagged"
    build_flagged_dataset(root, factory)
    assert len(CLASSES) * IMAGES_PER_CLASS >= mislabels_needed(1)
    before = db_path.read_bytes()

    assert main(["--dataset", str(root), "--reuse-db", str(db_path), "--db", str(tmp_path / "bench.db"),
                 "--repeat", "1", "--json"]) == 0

    result = json.loads(capsys.readouterr().out)
    check_result(result)
    assert result["dataset"] == str(root.resolve()) and result["url"] is None
    assert db_path.read_bytes() == before


def test_a_running_app_is_measured_on_the_dataset_named(tmp_path, factory, db_path, capsys):
    dataset_id = build_flagged_dataset(tmp_path / "flagged", factory)
    served = tmp_path / "served.db"
    copy_database(db_path, served)
    with pytest.raises(SystemExit, match="has 2 datasets .* name one with --dataset-id"):
        main(["--url", "http://127.0.0.1:1", "--db", str(served), "--repeat", "1"])

    with running_app(served, tmp_path / "streamlit.log") as url:
        assert main(["--url", url, "--db", str(served), "--dataset-id", str(dataset_id), "--repeat", "1",
                     "--json"]) == 0

    result = json.loads(capsys.readouterr().out)
    check_result(result)
    assert result["dataset_id"] == dataset_id and result["url"] == url and result["setup_s"] == 0.0
