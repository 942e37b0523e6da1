"""The home page scans only below LISTING_AUDIT_ROOTS, asks before scanning very many files, and shows
what a scan skipped."""
from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

import core.scan.roots
from db.models import Dataset, Job
from jobs.runner import FINISHED
from jobs.scan import scan_dataset
from tests.adversarial.scan_inputs import dataset_with_links_out
from tests.conftest import make_image

APP = Path(__file__).resolve().parents[2] / "app.py"


def home() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    return app


def click_scan(app: AppTest, path: str) -> AppTest:
    app.text_input(key="scan_path").input(path)
    app.button(key="scan_start").click().run()
    assert not app.exception, app.exception
    return app


def test_a_folder_outside_the_roots_is_refused_and_nothing_is_queued(factory, app_db, tmp_path, monkeypatch):
    make_image(tmp_path / "elsewhere" / "shoes" / "a.png")
    monkeypatch.setenv("LISTING_AUDIT_ROOTS", str(tmp_path / "allowed"))
    app = home()
    for typed in ["/", str(tmp_path / "elsewhere"), str(tmp_path / "allowed" / ".." / "elsewhere")]:
        click_scan(app, typed)
        [error] = [e.value for e in app.error]
        assert "is outside the folders this app scans" in error and "\n" not in error
    with factory() as session:
        assert session.scalars(select(Dataset)).all() == [] and session.scalars(select(Job)).all() == []


def test_a_folder_with_very_many_files_is_scanned_only_when_confirmed(factory, app_db, tmp_path, monkeypatch):
    monkeypatch.setattr(core.scan.roots, "CONFIRM_ABOVE_FILES", 2)
    for name in ["a.png", "b.png", "c.png"]:
        make_image(tmp_path / "shop" / "shoes" / name)
    app = click_scan(home(), str(tmp_path / "shop"))
    assert [w.value for w in app.warning if "holds more than 2 files" in w.value]
    with factory() as session:
        assert session.scalars(select(Job)).all() == []
    app.button(key="scan_confirm").click().run()
    assert not app.exception and not app.error
    deadline = time.monotonic() + 90
    while True:
        with factory() as session:
            jobs = session.scalars(select(Job)).all()
        if jobs and jobs[0].status in FINISHED:
            break
        assert time.monotonic() < deadline, "the scan did not finish"
        time.sleep(0.25)
    assert [job.status for job in jobs] == ["succeeded"]


def test_the_summary_shows_what_the_scan_skipped(factory, app_db, tmp_path):
    dataset = dataset_with_links_out(tmp_path)
    make_image(dataset.root / "loose.jpg")
    scan_dataset(factory, dataset.root, workers=1)
    warnings = [w.value for w in home().warning]
    assert any(w.startswith("6 links lead outside the dataset folder and were not read") for w in warnings)
    assert any(w.startswith("1 image is in the dataset folder itself") for w in warnings)
    assert not any("Zx9sEcReT" in w for w in warnings)
