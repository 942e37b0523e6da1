"""The home page's audit section (ui.audit_panel) in AppTest, on a real scanned folder and a temporary database."""
from __future__ import annotations

import json
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.corrections import decide
from db.models import Job, Sample, utcnow
from db.queries import dataset_classes
from jobs.audit import audit_params
from jobs.runner import FINISHED, create_job, run_job
from jobs.scan import scan_dataset
from tests.audit_data import BROKEN_PATH, build_audit_dataset

TIMEOUT_S = 30


#: The script AppTest runs: the audit section of one dataset. It sits beside a link to the app's pages
#: folder, so that its link to the Review page resolves as on the home page.
SECTION_SCRIPT = """
from ui.audit_panel import render_audit_section
from ui.common import DatasetRef

render_audit_section(DatasetRef({dataset_id}, {root!r}, "shop"))
"""
PAGES = Path(__file__).resolve().parents[2] / "pages"


@pytest.fixture
def shop(factory, app_db, tmp_path):
    """(dataset id, root) of the audit test dataset, scanned into the database the app reads."""
    root = build_audit_dataset(tmp_path / "shop")
    return scan_dataset(factory, root, workers=1)["dataset_id"], str(root)


def open_section(shop) -> AppTest:
    dataset_id, root = shop
    folder = Path(root).parent / "section"
    if not folder.exists():
        folder.mkdir()
        (folder / "pages").symlink_to(PAGES, target_is_directory=True)
        (folder / "section.py").write_text(SECTION_SCRIPT.format(dataset_id=dataset_id, root=root))
    app = AppTest.from_file(str(folder / "section.py"), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    return app


def audit(factory, dataset_id, checks) -> int:
    with factory.begin() as session:
        job_id = create_job(session, dataset_id, "audit", audit_params(checks=checks)).id
    assert run_job(factory, job_id).status == "succeeded"
    return job_id


def audit_jobs(factory, dataset_id) -> list[Job]:
    with factory() as session:
        return list(session.scalars(select(Job).where(Job.dataset_id == dataset_id, Job.kind == "audit")
                                    .order_by(Job.id)))


def wait_for_the_worker(factory, dataset_id, *, timeout_s: float = 90) -> None:
    """Wait until the dataset's first audit job has finished (its worker process ran it)."""
    deadline = time.monotonic() + timeout_s
    while audit_jobs(factory, dataset_id)[0].status not in FINISHED:
        assert time.monotonic() < deadline, "the worker did not finish the audit"
        time.sleep(0.25)


def metrics(app) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def table(app, column: str):
    """The element of the first table with `column` (tables carry no key in AppTest)."""
    return next(frame for frame in app.dataframe if column in frame.value.columns)


def headers(frame) -> dict[str, str]:
    """Column -> the header shown for it."""
    return {column: config["label"] for column, config in json.loads(frame.proto.columns).items()
            if "label" in config}


def test_before_any_audit_the_form_offers_every_check(shop):
    app = open_section(shop)
    assert any("No audit yet" in info.value for info in app.info)
    assert set(app.multiselect(key="audit_checks").value) >= {"broken", "quality", "duplicate", "price"}
    assert app.number_input(key="audit_folds").value == 5
    assert app.selectbox(key="audit_backbone").value == "mobilenet_v2"
    assert not app.button(key="audit_start").disabled and not app.metric


def test_counts_per_kind_and_noisiest_classes_of_the_latest_audit(factory, shop):
    audit(factory, shop[0], ["broken", "quality", "duplicate", "price"])
    app = open_section(shop)
    # every check that ran, also with nothing flagged; duplicates as Review counts them: groups
    assert metrics(app) == {"Price outliers": "1", "Duplicate groups": "1", "Broken files": "1", "Poor images": "0"}
    duplicates = next(metric for metric in app.metric if metric.label == "Duplicate groups")
    assert duplicates.help.startswith("1 group (2 files)")
    progress = table(app, "reviewed").value.set_index("kind")
    assert progress.loc["Poor images", "items"] == 0 and pd.isna(progress.loc["Poor images", "reviewed"])
    classes = table(app, "flagged_share")
    assert list(classes.value["class"]) == ["dear", "cheap"]
    assert classes.value.set_index("class").loc["dear", "flagged_samples"] == 2
    assert headers(classes) == {
        "class": "class", "broken": "broken files", "duplicate": "duplicates", "price": "price outliers",
        "flagged_samples": "flagged images", "samples": "images", "flagged_share": "flagged share",
    }


def test_a_finished_audit_says_what_it_found_and_links_to_review(factory, shop):
    audit(factory, shop[0], ["broken", "quality", "duplicate", "price"])
    app = open_section(shop)
    [done] = [success.value for success in app.success]
    assert done.startswith("Audit 1 finished")
    assert done.endswith("Price outliers 1 · Duplicates 1 group (2 files) · Broken files 1 · Poor images 0")
    [link] = app.get("page_link")
    assert link.proto.page == "Review" and link.proto.label == "Review: 3 items to decide"


def test_review_progress_per_kind_counts_decisions_since_the_audit(factory, shop):
    audit(factory, shop[0], ["broken", "duplicate", "price"])
    with factory.begin() as session:
        broken = session.scalars(select(Sample).where(Sample.path == BROKEN_PATH)).one()
        decide(session, broken, "delete", classes=dataset_classes(session, shop[0]), reviewer="ana")
    app = open_section(shop)
    progress = table(app, "reviewed")
    assert progress.value.to_dict("records") == [
        {"kind": "Price outliers", "items": 1, "open": 1, "decided": 0, "reviewed": 0.0},
        {"kind": "Duplicates", "items": 1, "open": 1, "decided": 0, "reviewed": 0.0},
        {"kind": "Broken files", "items": 1, "open": 0, "decided": 1, "reviewed": 1.0},
    ]
    assert headers(progress)["items"] == "to review"
    assert app.get("page_link")[0].proto.label == "Review: 2 items to decide"


def test_a_running_audit_shows_its_step_and_the_time_left(factory, shop):
    with factory.begin() as session:
        job = create_job(session, shop[0], "audit", audit_params(checks=["mislabel"]))
        job.status, job.progress, job.message = "running", 0.25, "mislabel: round 1, crop: embedded 10/40 images"
        job.started_at = utcnow() - timedelta(seconds=60)
        job.heartbeat_at, job.pid, job.host = utcnow(), os.getpid(), socket.gethostname()  # a live worker
    app = open_section(shop)
    [bar] = app.get("progress")
    assert bar.proto.value == 25
    assert "crop: embedded 10/40 images" in bar.proto.text
    assert "about 3 min left" in bar.proto.text


def test_what_changed_since_the_previous_audit(factory, shop):
    audit(factory, shop[0], ["broken", "price"])
    with factory.begin() as session:
        broken = session.scalars(select(Sample).where(Sample.path == BROKEN_PATH)).one()
        decide(session, broken, "delete", classes=dataset_classes(session, shop[0]))
    audit(factory, shop[0], ["broken", "price"])
    app = open_section(shop)
    changes = table(app, "resolved").value
    assert changes.to_dict("records") == [{"kind": "Broken files", "new": 0, "resolved": 1}]
    assert any("0 new flags, 1 no longer raised, 1 still raised" in caption.value for caption in app.caption)


def test_start_runs_the_audit_in_a_worker_and_shows_the_result(factory, shop):
    app = open_section(shop)
    app.multiselect(key="audit_checks").set_value(["broken", "price"])
    app.number_input(key="audit_folds").set_value(3)
    app.button(key="audit_start").click().run()
    assert not app.exception and not app.error
    (job,) = audit_jobs(factory, shop[0])
    assert job.params_json and '"checks": ["broken", "price"]' in job.params_json and '"folds": 3' in job.params_json
    assert "use_price" not in job.params_json  # prices count as mislabel evidence unless the box is unticked
    wait_for_the_worker(factory, shop[0])
    assert audit_jobs(factory, shop[0])[0].status == "succeeded", audit_jobs(factory, shop[0])[0].error
    app.run()
    assert metrics(app) == {"Price outliers": "1", "Broken files": "1"}


def test_a_queued_audit_shows_progress_after_a_reload_and_blocks_a_second_one(factory, shop):
    with factory.begin() as session:
        job_id = create_job(session, shop[0], "audit", audit_params(checks=["broken"])).id
    app = open_section(shop)  # a fresh session: what a reload gives
    assert app.get("progress") and app.button(key=f"cancel_job_{job_id}")
    assert app.button(key="audit_start").disabled
    assert run_job(factory, job_id).status == "succeeded"
    app.run()
    assert not app.get("progress") and metrics(app) == {"Broken files": "1"}


def test_a_failed_audit_shows_its_error(factory, shop):
    with factory.begin() as session:
        job_id = create_job(session, shop[0], "audit", {"checks": ["colour"]}).id
    assert run_job(factory, job_id).status == "failed"
    app = open_section(shop)
    assert any("unknown check 'colour'" in error.value for error in app.error)
    assert not app.button(key="audit_start").disabled


def test_starting_with_no_check_chosen_says_so(shop):
    app = open_section(shop)
    app.multiselect(key="audit_checks").set_value([])
    app.button(key="audit_start").click().run()
    assert any("Choose at least one check" in error.value for error in app.error)


def test_unticking_prices_audits_the_photos_alone(factory, shop):
    app = open_section(shop)
    app.multiselect(key="audit_checks").set_value(["broken"])
    app.checkbox(key="audit_use_price").uncheck()
    app.button(key="audit_start").click().run()
    assert not app.exception and not app.error
    (job,) = audit_jobs(factory, shop[0])
    assert json.loads(job.params_json)["options"] == {"mislabel": {"use_price": False}}
    wait_for_the_worker(factory, shop[0])


def test_fine_tuned_networks_go_to_the_job_with_their_epochs_and_image_size(factory, shop):
    app = open_section(shop)
    assert app.radio(key="audit_photo_source").value == "embeddings"
    assert "fine-tuned networks (5 folds)" in app.radio(key="audit_photo_source").options
    assert not any("GPU" in caption.value for caption in app.caption)  # this machine has none
    app.multiselect(key="audit_checks").set_value(["broken"])
    app.radio(key="audit_photo_source").set_value("finetune").run()
    app.number_input(key="audit_finetune_epochs").set_value(2)
    app.selectbox(key="audit_finetune_image_size").set_value(64)
    app.button(key="audit_start").click().run()
    assert not app.exception and not app.error
    (job,) = audit_jobs(factory, shop[0])
    assert json.loads(job.params_json)["options"] == {
        "mislabel": {"source": "finetune", "epochs": 2, "image_size": 64}}
    wait_for_the_worker(factory, shop[0])


def test_fine_tuning_needs_a_network_backbone(factory, shop):
    app = open_section(shop)
    app.selectbox(key="audit_backbone").set_value("pixels")
    app.radio(key="audit_photo_source").set_value("finetune").run()
    app.button(key="audit_start").click().run()
    assert [error.value for error in app.error] == [
        "Fine-tuned networks need a network backbone: choose one other than 'pixels'."]
    assert audit_jobs(factory, shop[0]) == []


def test_with_a_gpu_the_form_recommends_fine_tuned_networks(shop, monkeypatch):
    import ui.audit_panel

    monkeypatch.setattr(ui.audit_panel, "gpu_available", lambda: True)  # the hardware, not our code
    app = open_section(shop)
    assert any("A GPU is available: fine-tuned networks are the default" in c.value for c in app.caption)
    assert app.radio(key="audit_photo_source").value == "finetune"


def test_estimated_noise_per_class_and_evidence_weights_of_the_latest_audit(factory, shop):
    job_id = audit(factory, shop[0], ["broken", "price"])
    summary = {"flagged": 3, "estimated_noise_rate": 0.125, "estimated_interval": [1, 6],
               "per_class": {"cheap": 1, "dear": 2},
               "estimated_noise_per_class": {"cheap": 0.05, "dear": 0.2},
               "members": {"photo": {"weight": 1.3, "accuracy": 0.8, "rows": 10},
                           "title": {"weight": 0.6, "accuracy": 0.7, "rows": 8}},
               "unavailable_members": {"price": "price evidence turned off"}}
    with factory.begin() as session:
        job = session.get(Job, job_id)
        result = json.loads(job.result_json)
        result["checks"]["mislabel"] = {"flags": 3, "seconds": 1.0, **summary}
        job.result_json = json.dumps(result)
    app = open_section(shop)
    assert any("an estimated 12.5% of labels are wrong (1-6 listings, 95% interval); 3 flagged" in m.value
               for m in app.markdown)
    noise, members = table(app, "estimated noise").value, table(app, "evidence").value
    assert list(noise["class"]) == ["dear", "cheap"] and list(noise["flagged"]) == [2, 1]
    assert list(members["evidence"]) == ["photo", "title"] and list(members["weight"]) == [1.3, 0.6]
    assert any("price (price evidence turned off)" in c.value for c in app.caption)


def test_weak_evidence_shows_a_review_budget_instead_of_a_count():
    from ui.audit_panel import noise_heading

    heading = noise_heading({"estimated_noise_rate": 0.09, "estimated_interval": [51, 142], "flagged": 86,
                             "weak_evidence": True, "review_budget": 86})
    assert heading.endswith("the evidence is weak: review the first 86 flags") and "51-142" in heading
    past = noise_heading({"estimated_noise_rate": 0.02, "estimated_interval": [18, 86], "weak_evidence": True,
                          "review_budget": 40, "past_budget": 170})
    assert past.endswith("review the first 40 flags, then 170 more ranked past them while your decisions keep "
                         "confirming them")


def test_a_failed_check_is_shown_beside_the_flags_the_others_kept(factory, shop, tmp_path):
    params = audit_params(checks=["broken", "mislabel", "price"],
                          options={"mislabel": {"source": "run", "run_dir": str(tmp_path / "deleted-run")}})
    with factory.begin() as session:
        job_id = create_job(session, shop[0], "audit", params).id
    assert run_job(factory, job_id).status == "succeeded"
    app = open_section(shop)
    assert metrics(app) == {"Price outliers": "1", "Broken files": "1"}
    [error] = [element.value for element in app.error]
    assert error.startswith("The mislabels check failed \\(FileNotFoundError") and "other checks' flags are kept" in error
