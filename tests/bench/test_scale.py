"""bench/scale.py at a tiny size: every stage runs in its own process, the report has every table, and the
JSON holds the numbers the projection is made of; the generator plants what its truth.csv says."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 600
sys.path.insert(0, str(REPO / "bench"))

from scale_data import ScaleOptions, write_dataset  # noqa: E402


def test_the_generator_writes_the_planted_files_and_tables(tmp_path):
    plan = write_dataset(tmp_path / "photos", ScaleOptions(images=400, classes=4, exact_copy_rate=0.02,
                                                           near_copy_rate=0.02, broken_rate=0.01), workers=2)
    files = sorted(path.relative_to(tmp_path / "photos").as_posix() for path in (tmp_path / "photos").rglob("*.jpg"))
    with open(tmp_path / "photos" / "truth.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    assert files == sorted(row["path"] for row in truth) and len(files) == 400
    assert sorted({row["folder_label"] for row in truth}) == plan.classes
    copies = [row for row in truth if row["kind"] == "exact"]
    assert len(copies) == 8 and all(
        (tmp_path / "photos" / row["path"]).read_bytes() == (tmp_path / "photos" / row["source"]).read_bytes()
        for row in copies)
    assert sum(row["kind"] == "broken" for row in truth) == 4
    with open(tmp_path / "photos" / "listings.csv", newline="") as handle:
        listings = list(csv.DictReader(handle))
    assert [row["path"] for row in listings] == [row["path"] for row in truth]


def test_a_second_write_into_the_same_folder_is_refused(tmp_path):
    write_dataset(tmp_path / "photos", ScaleOptions(images=20, classes=2), workers=1)
    with pytest.raises(FileExistsError):
        write_dataset(tmp_path / "photos", ScaleOptions(images=20, classes=2), workers=1)


@pytest.mark.slow  # about a minute: a dozen processes import the app's modules, one renders the Review page
def test_every_stage_runs_and_the_report_holds_the_projection(tmp_path):
    report = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scale.py"), "--images", "300", "--mislabel", "skip", "--repeat", "1",
         "--bulk", "3000", "--data", str(tmp_path / "photos"), "--json", str(report)],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    numbers = json.loads(report.read_text())
    assert list(numbers["stages"]) == ["generate", "scan", "cheap", "duplicate", "audit", "bulk"]
    for stage in numbers["stages"].values():
        assert stage["wall_s"] > 0 and stage["cpu_s"] > 0 and stage["peak_rss"] > 0
    assert numbers["stages"]["scan"]["details"]["images"] == 300
    bulk = numbers["reviews"]["3,000 samples (bulk)"]
    assert bulk["apptest"]["after_decision_ms"] > 0 and bulk["queries"]["decision"]["median_ms"] > 0
    assert [row["machine"] for row in numbers["projection"]] == [
        "this machine (2 cores)", "16 cores + 1 GPU", "Ray cluster, 128 CPU cores"]
    assert all(row["scan"] > 0 and row["duplicate"] > 0 and row["mislabel"] is None for row in numbers["projection"])
    for line in ("| stage | images |", "Review queries, 300 listings", "Projection to 10,000,000 listings",
                 "- cold scan:", "- Review page render, 3,000 samples (bulk):"):
        assert line in done.stdout
    # a second run reuses the photos
    again = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scale.py"), "--images", "300", "--mislabel", "skip", "--repeat", "1",
         "--no-apptest", "--data", str(tmp_path / "photos")],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)
    assert again.returncode == 0 and "reusing the 300 photos" in again.stdout, again.stderr[-3000:]
