"""The scan and audit jobs choose their executor from their params, and without one from
$LISTING_AUDIT_RAY_ADDRESS, as jobs the app starts do (their params name no executor).

An unreachable address shows which executor a job chose without starting Ray: the ray executor fails
with that address's one-line error, the local one never looks at it.
"""
from __future__ import annotations

import pytest

from core.executors import RAY_ADDRESS_ENV
from db.queries import get_or_create_dataset
from jobs.audit import AuditError, audit_params
from jobs.runner import create_job, job_result, run_job
from jobs.scan import scan_dataset
from tests.audit_data import build_audit_dataset
from tests.ray_instance import closed_port


@pytest.fixture
def unreachable_address(monkeypatch) -> str:
    address = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv(RAY_ADDRESS_ENV, address)
    return address


def run(factory, root, kind: str, params: dict):
    with factory.begin() as session:
        job_id = create_job(session, get_or_create_dataset(session, root).id, kind, params).id
    return run_job(factory, job_id)


def test_a_scan_job_without_an_executor_follows_the_address(factory, tmp_path, unreachable_address):
    root = build_audit_dataset(tmp_path / "shop")
    job = run(factory, root, "scan", {"root": str(root), "workers": None})
    assert job.status == "failed" and job.error == (  # the whole story in one line: no traceback
        f"cannot reach the Ray cluster at {unreachable_address} (${RAY_ADDRESS_ENV}): Connection refused")
    job = run(factory, root, "scan", {"root": str(root), "workers": None, "executor": "local"})
    assert job.status == "succeeded" and job_result(job)["images"] == 22


def test_an_audit_job_embeds_where_its_params_say(factory, tmp_path, unreachable_address):
    root = build_audit_dataset(tmp_path / "shop")
    scan_dataset(factory, root, workers=1)
    params = audit_params(checks=["mislabel"], folds=2, backbone="pixels")
    job = run(factory, root, "audit", params)
    failed = job_result(job)["failed_checks"]
    assert job.status == "succeeded" and failed["mislabel"].startswith("ExecutorError: cannot reach the Ray cluster")
    job = run(factory, root, "audit", {**params, "executor": "local"})
    assert job.status == "succeeded" and job_result(job)["failed_checks"] == {}


def test_an_unknown_executor_is_refused_when_the_job_is_made():
    with pytest.raises(AuditError, match="unknown executor 'spark'; executors are: local, ray"):
        audit_params(executor="spark")
