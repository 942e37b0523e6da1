"""The Export page with AppTest: the preview of the plan, the manifest download, and writing through the job."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.corrections import decide
from db.models import Correction, Job, Sample
from tests.review_data import CLASSES, build_review_data
from ui.text import plain

TIMEOUT_S = 30
PAGE = Path(__file__).resolve().parents[2] / "pages" / "7_Export.py"


@pytest.fixture
def data(tmp_path, factory, app_db):
    data = build_review_data(tmp_path / "tiny", factory)
    with factory.begin() as session:
        decide(session, session.get(Sample, data.sample_ids["bag/bag-0.png"]), "relabel", classes=CLASSES,
               new_label="phone", reviewer="ann")
        decide(session, session.get(Sample, data.sample_ids["shoe/shoe-1.png"]), "delete", classes=CLASSES,
               reviewer="bob")
    return data


def open_export() -> AppTest:
    app = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    return app


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def wait_for_job(factory, *, timeout_s: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with factory() as session:
            job = session.scalars(select(Job).where(Job.kind == "export").order_by(Job.id.desc())).first()
            if job is not None and job.status not in ("queued", "running"):
                return job
        time.sleep(0.2)
    raise AssertionError("the export job did not finish in time")


def test_preview_counts_what_changes_and_offers_the_manifest(data):
    app = open_export()
    assert metrics(app) == {"Images exported": "11", "Relabelled": "1", "Deleted": "1", "Broken": "1",
                            "Missing": "0"}
    assert app.download_button(key="download_manifest").label == "Download manifest.csv"
    moves = app.dataframe[0].value
    assert moves.to_dict("records") == [{"from": "bag", "to": "phone", "count": 1}]


def test_export_button_writes_the_cleaned_dataset_in_a_worker(tmp_path, factory, data):
    sources = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.root.rglob("*") if p.is_file()}
    out = tmp_path / "clean"
    app = open_export()
    app.text_input(key="export_out").set_value(str(out)).run()
    app.radio(key="export_mode").set_value("copy").run()
    app.button(key="export_run").click().run()
    assert not app.exception, app.exception
    job = wait_for_job(factory)
    assert job.status == "succeeded", job.error
    app.run()
    assert f"Wrote 11 images (copy) and manifest.csv to {plain(str(out))}" in app.success[-1].value
    assert (out / "phone/bag-0.png").is_file() and not (out / "shoe/shoe-1.png").exists()
    assert (out / "manifest.csv").is_file()
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.root.rglob("*") if p.is_file()} == sources


def test_a_non_empty_folder_is_refused_without_overwrite(tmp_path, factory, data):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    app = open_export()
    app.text_input(key="export_out").set_value(str(out)).run()
    app.button(key="export_run").click().run()
    assert "is not empty and holds no earlier export" in app.error[0].value
    with factory() as session:
        assert session.scalars(select(Job).where(Job.kind == "export")).first() is None


def test_the_dataset_folder_itself_is_refused(factory, data):
    app = open_export()
    app.text_input(key="export_out").set_value(str(data.root / "out")).run()
    app.button(key="export_run").click().run()
    assert "inside the dataset folder" in app.error[0].value


def test_an_unsafe_class_name_blocks_the_export(factory, data):
    with factory.begin() as session:
        session.add(Correction(sample_id=data.sample_ids["phone/phone-0.png"], action="relabel", old_label="phone",
                               new_label="..", reviewer="x", previous_id=0))
    app = open_export()
    assert "Cannot export: class names not safe as folder names: '..'" in app.error[0].value
    assert not app.get("button")
