"""Tests of jobs/runner.py: a job's life cycle in this process, in a forked process, and in a spawned worker."""
from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path
from datetime import timedelta

import pytest

import jobs.runner
from db.engine import make_engine, make_session_factory
from db.models import Job
from db.queries import get_or_create_dataset
from jobs.runner import (
    FINISHED, HEARTBEAT_TIMEOUT, JobReporter, create_job, job_params, job_result, latest_job, reap_dead_jobs, request_cancel,
    run_job, spawn_job, utcnow,
)
from tests.conftest import make_image
from tests.db.test_engine import write_lock_held
from tests.jobs.runner_kinds import TEST_KINDS


@pytest.fixture(autouse=True)
def test_kinds(monkeypatch):
    monkeypatch.setattr(jobs.runner, "JOB_KINDS", {**jobs.runner.JOB_KINDS, **TEST_KINDS})


@pytest.fixture
def dataset_id(factory, tmp_path) -> int:
    with factory.begin() as session:
        return get_or_create_dataset(session, tmp_path / "shop").id


def new_job(factory, dataset_id: int, kind: str, params: dict | None = None) -> int:
    with factory.begin() as session:
        return create_job(session, dataset_id, kind, params or {}).id


def test_jobs_are_numbered_per_kind_so_the_first_run_is_run_1(factory, dataset_id, tmp_path):
    kinds = ["scan", "audit", "train", "audit", "train"]
    jobs_made = [new_job(factory, dataset_id, kind) for kind in kinds]
    with factory.begin() as session:
        other = get_or_create_dataset(session, tmp_path / "other").id
    jobs_made.append(new_job(factory, other, "train"))
    assert [load(factory, job_id).number for job_id in jobs_made] == [1, 1, 1, 2, 2, 3]


def load(factory, job_id: int) -> Job:
    with factory() as session:
        return session.get(Job, job_id)


def wait_for(factory, job_id: int, statuses: tuple[str, ...], timeout_s: float = 60) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = load(factory, job_id)
        if job.status in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {load(factory, job_id).status}, wanted {statuses}")


def run_in_child(db_path: str, job_id: int) -> None:
    """A worker process: its own engine on the same file, the job run to its end."""
    run_job(make_session_factory(make_engine(db_path)), job_id)


def start_child(db_path, job_id: int):
    process = multiprocessing.get_context("fork").Process(target=run_in_child, args=(str(db_path), job_id))
    process.start()
    return process


def test_a_job_that_succeeds_records_its_result_and_progress(factory, dataset_id):
    job_id = new_job(factory, dataset_id, "echo", {"root": "/x", "workers": 2})
    seen = []
    job = run_job(factory, job_id, echo=lambda fraction, message: seen.append((fraction, message)))
    assert job.status == "succeeded" and job.error is None
    assert job_result(job) == {"echo": {"root": "/x", "workers": 2}}
    assert job_params(job) == {"root": "/x", "workers": 2}
    assert job.progress == 1.0 and job.message == "done"
    assert job.pid == os.getpid() and job.host == socket.gethostname()
    assert job.started_at is not None and job.finished_at is not None and job.heartbeat_at is not None
    assert seen == [(0.5, "half way"), (1.0, "done")]


def test_a_job_that_raises_is_failed_with_the_error_and_no_result(factory, dataset_id):
    job = run_job(factory, new_job(factory, dataset_id, "boom"))
    assert job.status == "failed" and job.result_json is None
    assert job.error.startswith("RuntimeError: the disk is on fire")
    assert "failing_job" in job.error  # the traceback's last frames
    assert job.message == "about to fail"


def test_unknown_kinds_and_jobs_are_refused(factory, dataset_id):
    with factory.begin() as session:
        with pytest.raises(ValueError, match="unknown job kind 'nope'; kinds are: .*scan"):
            create_job(session, dataset_id, "nope", {})
    with pytest.raises(ValueError, match="no job with id 999"):
        run_job(factory, 999)
    job_id = new_job(factory, dataset_id, "echo")
    run_job(factory, job_id)
    with pytest.raises(ValueError, match="is succeeded, not queued"):
        run_job(factory, job_id)


def test_cancelling_a_queued_job_ends_it_at_once(factory, dataset_id):
    job_id = new_job(factory, dataset_id, "echo")
    with factory.begin() as session:
        request_cancel(session, job_id)
    job = load(factory, job_id)
    assert job.status == "cancelled" and job.cancel_requested and job.finished_at is not None
    with pytest.raises(ValueError, match="is cancelled, not queued"):
        run_job(factory, job_id)


def test_cancelling_a_finished_job_changes_nothing(factory, dataset_id):
    job_id = new_job(factory, dataset_id, "echo")
    run_job(factory, job_id)
    with factory.begin() as session:
        request_cancel(session, job_id)
        request_cancel(session, 12345)  # unknown: ignored
    job = load(factory, job_id)
    assert job.status == "succeeded" and not job.cancel_requested


def test_cancelling_a_running_job_stops_it_at_its_next_report(factory, dataset_id, db_path):
    job_id = new_job(factory, dataset_id, "slow")
    child = start_child(db_path, job_id)
    try:
        wait_for(factory, job_id, ("running",))
        with factory.begin() as session:
            request_cancel(session, job_id)
        job = wait_for(factory, job_id, ("cancelled", "succeeded", "failed"), timeout_s=30)
        assert job.status == "cancelled" and job.error == "cancelled on request"
        assert job.progress < 0.5
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0


def test_a_killed_worker_is_reaped_as_failed(factory, dataset_id, db_path):
    job_id = new_job(factory, dataset_id, "slow")
    child = start_child(db_path, job_id)
    job = wait_for(factory, job_id, ("running",))
    assert job.pid == child.pid
    with factory.begin() as session:
        assert reap_dead_jobs(session) == []  # alive: left alone
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    with factory.begin() as session:
        assert reap_dead_jobs(session) == [job_id]
    job = load(factory, job_id)
    assert job.status == "failed" and "stopped without finishing" in job.error and job.finished_at is not None
    with factory.begin() as session:
        assert reap_dead_jobs(session) == []


def test_a_silent_job_on_another_host_is_reaped_after_the_heartbeat_timeout(factory, dataset_id):
    stale, fresh = new_job(factory, dataset_id, "slow"), new_job(factory, dataset_id, "slow")
    with factory.begin() as session:
        for job_id, age in ((stale, HEARTBEAT_TIMEOUT + timedelta(seconds=5)), (fresh, timedelta(seconds=5))):
            job = session.get(Job, job_id)
            job.status, job.host, job.pid = "running", "some-other-machine", 1
            job.started_at = job.heartbeat_at = utcnow() - age
    with factory.begin() as session:
        assert reap_dead_jobs(session) == [stale]
    assert load(factory, fresh).status == "running"


def test_reporter_writes_at_most_every_interval_but_always_the_end(factory, dataset_id):
    job_id = new_job(factory, dataset_id, "slow")
    reporter = JobReporter(factory, job_id, min_interval_s=60)
    reporter(0.1, "first")
    reporter(0.2, "second: throttled")
    assert (load(factory, job_id).progress, load(factory, job_id).message) == (0.1, "first")
    reporter(1.0, "last")
    assert (load(factory, job_id).progress, load(factory, job_id).message) == (1.0, "last")


def test_latest_job_is_the_newest_of_its_kind(factory, dataset_id):
    first, second = new_job(factory, dataset_id, "echo"), new_job(factory, dataset_id, "echo")
    new_job(factory, dataset_id, "slow")
    with factory() as session:
        assert latest_job(session, dataset_id, "echo").id == second != first
        assert latest_job(session, dataset_id, "boom") is None


def test_spawned_worker_runs_a_scan_to_the_end(factory, tmp_path, db_path):
    make_image(tmp_path / "shop" / "shoes" / "a.jpg")
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, tmp_path / "shop")
        job_id = create_job(session, dataset.id, "scan", {"root": dataset.root, "workers": 1}).id
    pid = spawn_job(db_path, job_id, log_dir=tmp_path / "logs")
    job = wait_for(factory, job_id, ("succeeded", "failed"), timeout_s=120)
    assert job.status == "succeeded", (tmp_path / "logs" / f"job-{job_id}.log").read_text()
    assert job.pid == pid and job_result(job)["images"] == 1
    assert (tmp_path / "logs" / f"job-{job_id}.log").exists()
    deadline = time.monotonic() + 30  # the finished worker is waited for, not left a zombie of this process
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()


def test_a_spawned_worker_killed_before_it_starts_is_reaped(factory, tmp_path, dataset_id, db_path):
    job_id = new_job(factory, dataset_id, "scan", {"root": str(tmp_path), "workers": 1})
    pid = spawn_job(db_path, job_id, log_dir=tmp_path / "logs")
    os.kill(pid, signal.SIGKILL)
    job = load(factory, job_id)
    assert job.pid == pid and job.host == socket.gethostname()
    deadline = time.monotonic() + 30
    while load(factory, job_id).status in ("queued", "running") and time.monotonic() < deadline:
        with factory.begin() as session:
            reap_dead_jobs(session)
        time.sleep(0.05)
    job = load(factory, job_id)
    assert job.status == "failed" and "worker process stopped" in job.error


def test_a_lock_held_during_a_job_fails_it_with_that_cause_instead_of_leaving_it_running(
        factory, dataset_id, db_path, monkeypatch):
    monkeypatch.setenv("LISTING_AUDIT_DB_RETRY_S", "0.5")  # the worker's progress writes give up after 0.5 s
    job_id = new_job(factory, dataset_id, "slow")
    child = start_child(db_path, job_id)
    try:
        wait_for(factory, job_id, ("running",))
        with write_lock_held(db_path, for_s=3.0):  # longer than the budget: the job fails, and records it later
            pass
        job = wait_for(factory, job_id, FINISHED, timeout_s=60)
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    assert job.status == "failed" and job.error == f"the database {db_path} is busy, try again"
    assert job.finished_at is not None
