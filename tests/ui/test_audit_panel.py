"""The home page's audit section (ui.audit_panel) in AppTest, on a real scanned folder and a temporary database."""
from __future__ import annotations

import json

import time

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Job
from jobs.audit import audit_params
from jobs.runner import FINISHED, create_job, run_job
from jobs.scan import scan_dataset
from tests.audit_data import build_audit_dataset

TIMEOUT_S = 30


def audit_section_script(dataset_id: int, root: str) -> None:
    """The script AppTest runs: the audit section of one dataset."""
    from ui.audit_panel import render_audit_section
    from ui.common import DatasetRef

    render_audit_section(DatasetRef(dataset_id, root, "shop"))


@pytest.fixture
def shop(factory, app_db, tmp_path):
    """(dataset id, root) of the audit test dataset, scanned into the database the app reads."""
    root = build_audit_dataset(tmp_path / "shop")
    return scan_dataset(factory, root, workers=1)["dataset_id"], str(root)


def open_section(shop) -> AppTest:
    app = AppTest.from_function(audit_section_script, args=shop, default_timeout=TIMEOUT_S)
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


def metrics(app) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


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
    assert metrics(app) == {"Price outliers": "1", "Duplicates": "2", "Broken files": "1"}
    classes = app.dataframe[0].value
    assert list(classes["class"]) == ["dear", "cheap"]
    assert classes.set_index("class").loc["dear", "flagged_samples"] == 2


def test_what_changed_since_the_previous_audit(factory, shop):
    audit(factory, shop[0], ["broken", "price"])
    with factory.begin() as session:
        from db.corrections import decide
        from db.models import Sample
        from db.queries import dataset_classes
        broken = session.scalars(select(Sample).where(Sample.path == "dear/broken.jpg")).one()
        decide(session, broken, "delete", classes=dataset_classes(session, shop[0]))
    audit(factory, shop[0], ["broken", "price"])
    app = open_section(shop)
    changes = app.dataframe[1].value
    assert changes.to_dict("records") == [{"kind": "broken", "new": 0, "resolved": 1}]
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
    deadline = time.monotonic() + 90
    while audit_jobs(factory, shop[0])[0].status not in FINISHED:
        assert time.monotonic() < deadline, "the worker did not finish the audit"
        time.sleep(0.25)
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
    deadline = time.monotonic() + 90
    while audit_jobs(factory, shop[0])[0].status not in FINISHED:
        assert time.monotonic() < deadline, "the worker did not finish the audit"
        time.sleep(0.25)


def test_estimated_noise_per_class_and_evidence_weights_of_the_latest_audit(factory, shop):
    job_id = audit(factory, shop[0], ["broken", "price"])
    summary = {"flagged": 3, "estimated_noise_rate": 0.125, "per_class": {"cheap": 1, "dear": 2},
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
    assert any("cleanlab estimates 12.5% of labels are wrong (3 flagged)" in m.value for m in app.markdown)
    noise, members = app.dataframe[1].value, app.dataframe[2].value  # after the noisiest classes
    assert list(noise["class"]) == ["dear", "cheap"] and list(noise["flagged"]) == [2, 1]
    assert list(members["evidence"]) == ["photo", "title"] and list(members["weight"]) == [1.3, 0.6]
    assert any("price (price evidence turned off)" in c.value for c in app.caption)


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
