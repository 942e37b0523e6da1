"""The audit job on a real scanned folder: flags stored per job, corrections respected, clear failures."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from db.corrections import decide
from db.flags import flags_frame
from db.models import Dataset, Job, Sample
from db.queries import dataset_classes
from jobs.audit import AuditError, audit_params
from jobs.runner import create_job, job_result, run_job
from jobs.scan import scan_dataset
from tests.audit_data import BROKEN_PATH, COPY_PATH, TYPO_PATH, build_audit_dataset

CHECKS = ["broken", "quality", "duplicate", "price"]


@pytest.fixture
def dataset_id(factory, tmp_path) -> int:
    return scan_dataset(factory, build_audit_dataset(tmp_path / "shop"), workers=1)["dataset_id"]


def run_audit_job(factory, dataset_id, params) -> Job:
    with factory.begin() as session:
        job_id = create_job(session, dataset_id, "audit", params).id
    return run_job(factory, job_id)


def flags_by_path(factory, job_id) -> dict[str, list[str]]:
    with factory() as session:
        frame = flags_frame(session, job_id)
    return frame.groupby("path")["kind"].apply(sorted).to_dict()


def decide_on(factory, dataset_id, path, action, **options) -> None:
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.dataset_id == dataset_id, Sample.path == path)).one()
        decide(session, sample, action, classes=dataset_classes(session, dataset_id), **options)


def test_an_audit_job_stores_its_flags_and_a_summary(factory, dataset_id):
    job = run_audit_job(factory, dataset_id, audit_params(checks=CHECKS))
    assert job.status == "succeeded", job.error
    assert flags_by_path(factory, job.id) == {
        BROKEN_PATH: ["broken"], TYPO_PATH: ["duplicate", "price"], COPY_PATH: ["duplicate"],
    }
    result = job_result(job)
    assert result["samples"] == 22 and result["classes"] == ["cheap", "dear"]
    assert result["class_sizes"] == {"cheap": 10, "dear": 12}
    assert result["flags"] == 4 and result["ranked_past_budget"] == 0 and result["flags_by_kind"] == {"broken": 1, "quality": 0, "duplicate": 2, "price": 1}
    assert list(result["checks"]) == CHECKS and result["checks"]["duplicate"]["label_conflict_groups"] == 1
    with factory() as session:
        assert session.get(Job, job.id).progress == 1.0


def test_corrections_are_respected(factory, dataset_id):
    decide_on(factory, dataset_id, COPY_PATH, "relabel", new_label="cheap")
    decide_on(factory, dataset_id, BROKEN_PATH, "delete")
    job = run_audit_job(factory, dataset_id, audit_params(checks=CHECKS))
    with factory() as session:
        frame = flags_frame(session, job.id)
    assert BROKEN_PATH not in set(frame["path"])  # deleted: not audited
    copy = frame[frame["path"] == COPY_PATH].iloc[0]
    assert copy["given_label"] == "cheap"  # audited under its new label: no label conflict any more
    assert "labels disagree" not in copy["reason"]
    assert job_result(job)["class_sizes"] == {"cheap": 11, "dear": 10}


def test_a_later_audit_keeps_the_earlier_ones_flags(factory, dataset_id):
    first = run_audit_job(factory, dataset_id, audit_params(checks=["broken", "price"]))
    decide_on(factory, dataset_id, BROKEN_PATH, "delete")
    second = run_audit_job(factory, dataset_id, audit_params(checks=["broken", "price"]))
    assert flags_by_path(factory, first.id) == {BROKEN_PATH: ["broken"], TYPO_PATH: ["price"]}
    assert flags_by_path(factory, second.id) == {TYPO_PATH: ["price"]}


def test_an_unscanned_dataset_fails_with_a_clear_message(factory, tmp_path):
    with factory.begin() as session:
        dataset = Dataset(root=str(tmp_path), name="never scanned")
        session.add(dataset)
        session.flush()
        dataset_id = dataset.id
    job = run_audit_job(factory, dataset_id, audit_params(checks=["broken"]))
    assert job.status == "failed" and "has not been scanned yet" in job.error


def test_unknown_checks_are_refused_before_and_inside_the_job(factory, dataset_id):
    with pytest.raises(AuditError, match="unknown check 'colour'; checks are: broken"):
        audit_params(checks=["colour"])
    job = run_audit_job(factory, dataset_id, {"checks": ["colour"]})
    assert job.status == "failed" and "unknown check 'colour'" in job.error


def test_params_keep_the_mislabel_options():
    assert audit_params(checks=["price", "broken"], folds=3, backbone="pixels") == {
        "checks": ["broken", "price"], "folds": 3, "backbone": "pixels",
    }
