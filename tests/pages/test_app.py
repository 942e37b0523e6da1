"""Tests of the home page (app.py) with AppTest on a real SQLite file and a real tiny dataset."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.corrections import decide, undo_decision
from db.queries import list_datasets
from db.models import Job, Sample
from db.queries import dataset_classes, get_or_create_dataset
from jobs.audit import audit_params
from jobs.runner import FINISHED, create_job, run_job
from jobs.scan import scan_dataset
from tests.conftest import make_image
from tests.pages.tiny_dataset import BROKEN_PATH, build_tiny_dataset

TIMEOUT_S = 30
APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def shop(factory, app_db, tmp_path):
    """(root, dataset id) of the tiny dataset, scanned into the app's database."""
    root = build_tiny_dataset(tmp_path / "shop")
    return root, scan_dataset(factory, root, workers=1)["dataset_id"]


def run_home() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    return app


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def chart(app: AppTest, key: str) -> dict:
    charts = [c for c in app.get("plotly_chart") if json.loads(c.proto.spec)]
    spec = {c.proto.id: json.loads(c.proto.spec) for c in charts}
    matches = [s for element_id, s in spec.items() if key in element_id]
    assert len(matches) == 1, f"no single chart keyed {key}"
    return matches[0]


def scan_jobs(factory, dataset_id) -> list[Job]:
    with factory() as session:
        return list(session.scalars(select(Job).where(Job.dataset_id == dataset_id, Job.kind == "scan").order_by(Job.id)))


def test_without_a_dataset_the_page_explains_how_to_start(app_db):
    app = run_home()
    text = " ".join(m.value for m in app.markdown)
    assert "one subfolder per class" in text and "make run" in text
    assert app.button(key="scan_start") and not app.metric
    links = [(link.proto.label, link.proto.page) for link in app.sidebar.get("page_link")]
    assert links == [("Home", ""), ("Browse", "Browse"), ("Review", "Review"), ("Train", "Train"),
                     ("Metrics", "Metrics"), ("History", "History"), ("Export", "Export")]


def test_listings_changed_counts_listings_not_log_rows_so_undone_decisions_count_nothing(factory, shop):
    root, dataset_id = shop
    classes = ["bag", "phone", "shoe"]
    with factory.begin() as session:
        samples = {s.path: s for s in session.scalars(select(Sample).where(Sample.dataset_id == dataset_id))}
        for path in ("bag/bag-0.png", "bag/bag-1.png"):
            undo_decision(session, decide(session, samples[path], "relabel", classes=classes, new_label="shoe").id,
                          classes=classes)
        decide(session, samples["phone/phone-0.png"], "relabel", classes=classes, new_label="bag")
        decide(session, samples["phone/phone-0.png"], "relabel", classes=classes, new_label="shoe")
        decide(session, samples["shoe/shoe-0.png"], "price", classes=classes, new_price=3.0)
    app = run_home()
    changed = next(m for m in app.metric if m.label == "Listings changed")
    assert changed.value == "2"
    assert "1 relabelled, 0 deleted, 1 with a fixed price; 7 decisions in the log" in changed.help


def test_summary_shows_counts_unreadable_files_charts_and_listing_problems(factory, shop):
    root, dataset_id = shop
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == "bag/bag-0.png")).one()
        decide(session, sample, "relabel", classes=dataset_classes(session, dataset_id), new_label="shoe")
    app = run_home()
    assert metrics(app) == {"Images": "13", "Classes": "3", "Unreadable": "1", "With a price": "12",
                           "Listings changed": "1"}
    unreadable = app.expander[0]
    assert unreadable.label == "Unreadable images (1)"
    assert list(unreadable.dataframe[0].value["path"]) == [BROKEN_PATH]
    bars = chart(app, "class_counts_chart")
    assert [(bar["name"], bar["x"], bar["y"]) for bar in bars["data"]] == [
        ("in folders", ["bag", "phone", "shoe"], [4, 4, 5]),
        ("after corrections", ["bag", "phone", "shoe"], [3, 4, 6]),
    ]
    prices = chart(app, "price_chart")
    assert prices["layout"]["yaxis"]["type"] == "log"
    assert prices["layout"]["xaxis"]["categoryarray"] == ["bag", "phone", "shoe"]
    assert any("non-numeric price" in warning.value for warning in app.warning)
    assert any("1 rows match no image" in m.value for m in app.markdown)


def test_scan_form_refuses_what_is_not_a_dataset_folder(app_db, tmp_path):
    (tmp_path / "flat").mkdir()
    make_image(tmp_path / "flat" / "a.png")
    cases = {
        str(tmp_path / "nowhere"): "Folder not found",
        str(tmp_path / "flat" / "a.png"): "is a file, not a folder",
        str(tmp_path / "flat"): "has no subfolders",
        "  ": "Enter the path",
        str(tmp_path / ("x" * 300) / "data"): "cannot be read: File name too long",
        f"{tmp_path}/da\x00ta": "That path contains a NUL character",
    }
    app = run_home()
    for path, message in cases.items():
        app.text_input(key="scan_path").input(path)
        app.button(key="scan_start").click().run()
        assert not app.exception
        assert [e.value for e in app.error if message in e.value], (path, [e.value for e in app.error])


def test_scanning_a_class_folder_of_a_known_dataset_asks_first(factory, shop):
    root, _ = shop
    make_image(root / "shoe" / "batch-2" / "s.png")  # a class folder with a subfolder looks like a dataset
    app = run_home()
    app.text_input(key="scan_path").input(str(root / "shoe"))
    app.button(key="scan_start").click().run()
    assert not app.exception
    assert [w.value for w in app.warning if "is inside the dataset" in w.value and "Scan it anyway?" in w.value]
    assert app.button(key="scan_confirm")
    with factory() as session:
        assert len(list_datasets(session)) == 1  # nothing scanned until confirmed


def test_scan_form_starts_a_worker_process_that_scans_the_folder(factory, app_db, tmp_path):
    root = build_tiny_dataset(tmp_path / "shop")
    app = run_home()
    app.text_input(key="scan_path").input(str(root))
    app.button(key="scan_start").click().run()
    assert not app.exception and not app.error
    with factory() as session:
        dataset = get_or_create_dataset(session, root)
    (job,) = scan_jobs(factory, dataset.id)
    assert json.loads(job.params_json) == {"root": str(root.resolve()), "workers": None}
    assert app.session_state["dataset_id"] == dataset.id
    deadline = time.monotonic() + 90
    while scan_jobs(factory, dataset.id)[0].status not in FINISHED:
        assert time.monotonic() < deadline, "the worker did not finish the scan"
        time.sleep(0.25)
    job = scan_jobs(factory, dataset.id)[0]
    assert job.status == "succeeded", job.error
    assert job.pid is not None and job.pid != os.getpid()
    app.run()
    assert metrics(app)["Images"] == "13"
    assert (app_db.parent / "logs" / f"job-{job.id}.log").is_file()


def test_running_scan_shows_progress_after_a_reload_then_the_result(factory, app_db, tmp_path):
    root = build_tiny_dataset(tmp_path / "shop")
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, root)
        job_id = create_job(session, dataset.id, "scan", {"root": dataset.root, "workers": 1}).id
    app = run_home()  # a fresh session: what a reload gives
    assert app.get("progress"), "no progress bar for the queued scan"
    assert app.button(key=f"cancel_job_{job_id}")
    assert any("not been scanned yet" in i.value for i in app.info)

    # A second click while it is queued reuses the job instead of starting another.
    app.button(key="scan_rescan").click().run()
    assert any("already running" in i.value for i in app.info)
    assert len(scan_jobs(factory, dataset.id)) == 1

    assert run_job(factory, job_id).status == "succeeded"
    app.run()
    assert not app.get("progress")
    assert metrics(app)["Images"] == "13"


def test_failed_scan_shows_its_error(factory, app_db, tmp_path):
    root = build_tiny_dataset(tmp_path / "shop")
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, root)
        job_id = create_job(session, dataset.id, "scan", {"root": str(tmp_path / "gone"), "workers": 1}).id
    assert run_job(factory, job_id).status == "failed"
    app = run_home()
    assert any("Scan of shop failed: NotADirectoryError" in e.value for e in app.error)


def test_cancel_button_cancels_a_queued_scan(factory, app_db, tmp_path):
    root = build_tiny_dataset(tmp_path / "shop")
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, root)
        job_id = create_job(session, dataset.id, "scan", {"root": dataset.root, "workers": 1}).id
    app = run_home()
    app.button(key=f"cancel_job_{job_id}").click().run()
    assert scan_jobs(factory, dataset.id)[0].status == "cancelled"
    assert any("cancelled" in w.value for w in app.warning)


def test_dataset_picker_switches_the_summary(factory, app_db, tmp_path):
    first = scan_dataset(factory, build_tiny_dataset(tmp_path / "a-shop"), workers=1)["dataset_id"]
    second_root = tmp_path / "b-shop"
    for index in range(3):
        make_image(second_root / "lamp" / f"{index}.png")
    second = scan_dataset(factory, second_root, workers=1)["dataset_id"]
    app = run_home()
    assert app.session_state["dataset_id"] == first and metrics(app)["Images"] == "13"
    app.selectbox(key="dataset_id").set_value(second).run()
    assert metrics(app)["Images"] == "3" and metrics(app)["Classes"] == "1"
    assert any("No listings.csv" in i.value for i in app.info)
    with factory() as session:
        assert session.scalar(select(func.count(Job.id))) == 0  # nothing was scanned by the page


def test_after_an_audit_home_shows_what_it_found_review_progress_and_a_link_to_review(factory, shop):
    root, dataset_id = shop
    with factory.begin() as session:
        job_id = create_job(session, dataset_id, "audit", audit_params(checks=["broken", "quality", "price"])).id
    assert run_job(factory, job_id).status == "succeeded"
    with factory.begin() as session:
        broken = session.scalars(select(Sample).where(Sample.path == BROKEN_PATH)).one()
        decide(session, broken, "delete", classes=dataset_classes(session, dataset_id), reviewer="ana")
    app = run_home()
    [done] = [success.value for success in app.success if "finished" in success.value]
    assert done.startswith("Audit 1 finished") and "Broken files 1" in done and "Poor images 0" in done
    assert metrics(app)["Poor images"] == "0"
    [link] = app.main.get("page_link")
    assert link.proto.page == "Review"
    progress = next(frame.value for frame in app.dataframe if "reviewed" in frame.value.columns)
    broken = progress.set_index("kind").loc["Broken files"]
    assert (broken["open"], broken["decided"], broken["reviewed"]) == (0, 1, 1.0)
