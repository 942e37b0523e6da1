"""Tiny job kinds for the runner tests, registered by monkeypatching jobs.runner.JOB_KINDS."""
from __future__ import annotations

import time

from db.models import Job
from jobs.runner import job_params

#: name -> "module:function", ready to merge into JOB_KINDS.
TEST_KINDS = {
    "echo": "tests.jobs.runner_kinds:echo_job",
    "boom": "tests.jobs.runner_kinds:failing_job",
    "slow": "tests.jobs.runner_kinds:slow_job",
}


def echo_job(factory, job_id: int, reporter) -> dict:
    """Reports progress twice and returns its params."""
    with factory() as session:
        params = job_params(session.get(Job, job_id))
    reporter(0.5, "half way")
    reporter(1.0, "done")
    return {"echo": params}


def failing_job(factory, job_id: int, reporter) -> dict:
    reporter(0.1, "about to fail")
    raise RuntimeError("the disk is on fire")


def slow_job(factory, job_id: int, reporter) -> dict:
    """Reports progress every 20 ms for up to a minute: time to cancel or kill it."""
    for step in range(3000):
        reporter(step / 3000, f"step {step}")
        time.sleep(0.02)
    return {"steps": 3000}
