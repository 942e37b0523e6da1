"""Create, spawn, run, cancel and watch jobs. A job's state lives in the `jobs` table.

Life cycle: queued -> running -> succeeded | failed | cancelled. The worker
process writes progress and a heartbeat; readers call `reap_dead_jobs` so that a
killed worker's job becomes `failed` instead of staying `running` forever. A job
that raises, a database error included, ends `failed` with the error's first line
as its cause; its writes retry while the database is busy (db.engine.write_transaction).
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.executors import ExecutorError
from db.engine import ENV_VAR as DB_ENV_VAR
from db.engine import (
    DatabaseAccessError, canonical_location, data_dir, make_engine, make_session_factory, write_transaction,
)
from db.models import Job
from db.queries import next_job_number

log = logging.getLogger(__name__)

#: kind -> "module:function"; the function is called as fn(factory, job_id, reporter) -> result dict.
JOB_KINDS = {
    "scan": "jobs.scan:run_scan_job",
    "export": "jobs.export:run_export_job",
    "train": "jobs.train:run_train_job",
    "audit": "jobs.audit:run_audit_job",
}
ACTIVE = ("queued", "running")
#: Errors whose message says all there is (what is wrong and what to do): recorded and logged without a traceback.
ONE_LINE_ERRORS = (DatabaseAccessError, ExecutorError)
FINISHED = ("succeeded", "failed", "cancelled")
#: A running job whose heartbeat is older than this is presumed dead even if its pid exists.
HEARTBEAT_TIMEOUT = timedelta(minutes=10)
#: Seconds a finished job keeps retrying to record its end while the database is busy:
#: long, because a job whose end is not recorded stays `running` until it is reaped.
FINISH_RETRY_S = 600.0


class JobCancelled(BaseException):
    """Raised inside a job when cancellation was requested; the job ends as `cancelled`.

    A BaseException, like asyncio.CancelledError, so that code which carries on after a failed step
    (`except Exception`, e.g. one failed audit check) still stops when the job is cancelled."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: Optional[datetime]) -> Optional[datetime]:
    """SQLite returns naive datetimes; ours are all UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def create_job(session: Session, dataset_id: int, kind: str, params: dict[str, Any]) -> Job:
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; kinds are: {', '.join(sorted(JOB_KINDS))}")
    job = Job(dataset_id=dataset_id, kind=kind, params_json=json.dumps(params), status="queued",
              number=next_job_number(session, kind))
    session.add(job)
    session.flush()
    return job


def job_params(job: Job) -> dict[str, Any]:
    return json.loads(job.params_json or "{}")


def job_result(job: Job) -> Optional[dict[str, Any]]:
    return json.loads(job.result_json) if job.result_json else None


class JobReporter:
    """Progress reporting from inside a job: throttled writes of progress, message and heartbeat.

    Calling the reporter also checks for a cancel request and raises JobCancelled.
    `echo` (optional) receives every update too, e.g. a terminal progress bar.
    """

    def __init__(self, factory: sessionmaker[Session], job_id: int, *,
                 echo: Optional[Callable[[float, str], None]] = None, min_interval_s: float = 0.5):
        self.factory = factory
        self.job_id = job_id
        self.echo = echo
        self.min_interval_s = min_interval_s
        self._last_write = 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.echo:
            self.echo(fraction, message)
        now = time.monotonic()
        if now - self._last_write < self.min_interval_s and fraction < 1.0:
            return
        self._last_write = now
        if write_transaction(self.factory, lambda session: self._write(session, fraction, message)):
            raise JobCancelled()

    def _write(self, session: Session, fraction: float, message: str) -> bool:
        """Store progress, message and heartbeat; returns whether cancellation was requested."""
        job = session.get(Job, self.job_id)
        job.progress = float(max(0.0, min(1.0, fraction)))
        job.message = message
        job.heartbeat_at = utcnow()
        return job.cancel_requested


def _job_function(kind: str) -> Callable:
    module_name, function_name = JOB_KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def _finish(factory: sessionmaker[Session], job_id: int, status: str, *, result=None, error=None) -> None:
    """Record the job's end, retrying for up to FINISH_RETRY_S while the database is busy."""
    def record(session: Session) -> None:
        job = session.get(Job, job_id)
        job.status = status
        job.finished_at = utcnow()
        job.heartbeat_at = job.finished_at
        if result is not None:
            job.result_json = json.dumps(result, default=str)
            job.progress = 1.0
        job.error = error

    write_transaction(factory, record, budget_s=FINISH_RETRY_S)


def run_job(factory: sessionmaker[Session], job_id: int, *,
            echo: Optional[Callable[[float, str], None]] = None) -> Job:
    """Run a queued job in this process to its end and return it. Exceptions are recorded, not raised.

    Raises ValueError for an unknown or not queued job, and DatabaseAccessError
    when the database cannot record the job's start or end.
    """
    kind = write_transaction(factory, lambda session: _start(session, job_id))
    if kind is None:
        with factory() as session:
            return session.get(Job, job_id)
    reporter = JobReporter(factory, job_id, echo=echo)
    try:
        result = _job_function(kind)(factory, job_id, reporter)
    except JobCancelled:
        _finish(factory, job_id, "cancelled", error="cancelled on request")
    except BaseException as error:  # a failed job records why, whatever it was
        log.error("job %s failed: %s", job_id, error, exc_info=not isinstance(error, ONE_LINE_ERRORS))
        _finish(factory, job_id, "failed", error=_error_text(error))
        if not isinstance(error, Exception):
            raise
    else:
        _finish(factory, job_id, "succeeded", result=result or {})
    with factory() as session:
        return session.get(Job, job_id)


def _start(session: Session, job_id: int) -> Optional[str]:
    """Mark queued job `job_id` running in this process and return its kind; None when it was cancelled instead."""
    job = session.get(Job, job_id)
    if job is None:
        raise ValueError(f"no job with id {job_id}")
    if job.status != "queued":
        raise ValueError(f"job {job_id} is {job.status}, not queued")
    if job.cancel_requested:
        job.status, job.finished_at = "cancelled", utcnow()
        return None
    job.status, job.started_at, job.heartbeat_at = "running", utcnow(), utcnow()
    job.pid, job.host = os.getpid(), socket.gethostname()
    return job.kind


def _error_text(error: BaseException) -> str:
    """The job's error field: the cause on the first line, then the last frames of the traceback.

    A ONE_LINE_ERRORS error is the whole story in one line (database busy or read-only, Ray cluster
    unreachable, ...): no traceback.
    """
    if isinstance(error, ONE_LINE_ERRORS):
        return str(error)
    summary = f"{type(error).__name__}: {error}"
    trace = "".join(traceback.format_exception(error)[-6:])
    return f"{summary}\n\n{trace}"


def spawn_job(location: str | os.PathLike, job_id: int, *, log_dir: Optional[Path] = None) -> int:
    """Start `listing-audit worker JOB_ID` on the database at `location` as a detached process; returns its pid.

    The worker outlives the app process that started it (new session), and its
    output goes to <log_dir>/job-<id>.log (default: the database's data folder's
    logs/, see db.engine.data_dir). The database reaches it in its environment
    (LISTING_AUDIT_DB), so a server password never shows in the process list.
    Its pid and host are recorded on the queued job at once, so
    `reap_dead_jobs` notices a worker that dies before it gets to start the job.
    """
    engine = make_engine(location)
    try:
        log_dir = log_dir if log_dir is not None else data_dir(engine) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"job-{job_id}.log", "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker", str(job_id)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
                env={**os.environ, DB_ENV_VAR: canonical_location(location)},
            )
        # Wait for it in the background, so that a finished worker does not stay a zombie of this process.
        threading.Thread(target=process.wait, name=f"wait-job-{job_id}", daemon=True).start()
        with make_session_factory(engine).begin() as session:
            session.execute(
                update(Job).where(Job.id == job_id, Job.status == "queued", Job.pid.is_(None))
                .values(pid=process.pid, host=socket.gethostname())
            )
    finally:
        engine.dispose()
    return process.pid


def request_cancel(session: Session, job_id: int) -> None:
    """Ask a job to stop; a queued job is cancelled at once, a running one at its next progress report."""
    job = session.get(Job, job_id)
    if job is None or job.status in FINISHED:
        return
    job.cancel_requested = True
    if job.status == "queued":
        job.status, job.finished_at = "cancelled", utcnow()


def process_alive(pid: Optional[int]) -> bool:
    """Whether process `pid` exists on this machine and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def reap_dead_jobs(session: Session) -> list[int]:
    """Mark active jobs whose worker is gone as failed. Returns their ids.

    A running job is dead when its worker process no longer exists on this host,
    or its heartbeat is older than HEARTBEAT_TIMEOUT; a queued job when the worker
    spawned for it (see spawn_job) no longer exists.
    """
    host = socket.gethostname()
    now = utcnow()
    dead_running, dead_queued = [], []
    for job in session.scalars(select(Job).where(Job.status.in_(ACTIVE))):
        gone = job.pid is not None and job.host == host and not process_alive(job.pid)
        if job.status == "queued":
            if gone:
                dead_queued.append(job.id)
            continue
        heartbeat = _aware(job.heartbeat_at) or _aware(job.started_at) or now
        if gone or now - heartbeat > HEARTBEAT_TIMEOUT:
            dead_running.append(job.id)
    for ids, error in (
        (dead_running, "the worker process stopped without finishing (killed or crashed)"),
        (dead_queued, "the worker process stopped before starting the job (killed or crashed)"),
    ):
        if ids:
            session.execute(update(Job).where(Job.id.in_(ids)).values(status="failed", finished_at=now, error=error))
    return dead_running + dead_queued


def latest_job(session: Session, dataset_id: int, kind: str) -> Optional[Job]:
    return session.scalars(
        select(Job).where(Job.dataset_id == dataset_id, Job.kind == kind).order_by(Job.id.desc()).limit(1)
    ).one_or_none()
