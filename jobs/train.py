"""The "train" job: wait for the machine's training slot, train on the dataset's current labels, record the run.

Params: {"config": TrainConfig as a dict, "resume": bool, "replaces": run id or absent (a retrain with the
same settings after a review round)}. With config.split "dataset" (the default) the run validates on
the dataset's evaluation split (db.evaluation), extended here to listings scanned since. One training run at a
time per machine: a second run stays queued (its worker polling) until the first
ends. Epochs go to `train_epochs` as they finish; the result holds the metrics,
the split and a snapshot of the dataset's review state. A run's files go to its
own folder (run_dir), which records the database and run it belongs to; a run
never resumes from, or writes over, a folder that another run recorded.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from core.models.config import TrainConfig
from db.engine import data_dir as engine_data_dir, database_stem, describe_database
from db.models import Dataset, Job
from db.evaluation import ensure_evaluation_split, evaluation_sides
from db.queries import dataset_classes, samples_frame
from db.runs import claim_train_slot, database_identity, dataset_snapshot, record_epoch, running_train_job
from jobs.runner import JobCancelled, JobReporter, job_params, reap_dead_jobs, utcnow

if TYPE_CHECKING:
    from core.models.loop import EpochLog

#: Seconds between checks of the training slot while queued.
QUEUE_POLL_S = 1.0


def data_dir(factory: sessionmaker[Session]) -> Path:
    """The folder for the database's runs and image cache (db.engine.data_dir: beside a SQLite file)."""
    return engine_data_dir(factory.kw["bind"])


def database_runs_dir(factory: sessionmaker[Session]) -> Path:
    """This database's folder of runs: <data dir>/runs/<database stem>-<first 8 hex digits of its identity>.

    Several databases may share a data dir, and job ids start at 1 in each, so
    each database keeps its runs in its own folder. The stem (its first 60
    characters, so the name stays within 255 bytes) tells people whose runs they
    are and keeps a copy of a database file (same identity) apart from its
    original; the random identity stored in the database (db.runs.database_identity)
    keeps apart databases that had the same file name, such as one deleted and
    made again, whose job ids restart at 1.
    """
    with factory.begin() as session:
        identity = database_identity(session)
    return data_dir(factory) / "runs" / f"{database_stem(factory.kw['bind'])[:60]}-{identity[:8]}"


def run_dir(factory: sessionmaker[Session], run_id: int) -> Path:
    """Default checkpoint folder of a run: <database_runs_dir>/<run id>."""
    return database_runs_dir(factory) / str(run_id)


def run_owner(factory: sessionmaker[Session], run_id: int) -> dict[str, Any]:
    """What a run records in its folder, and checks there before resuming (core.models.checkpoints.claim_run_folder)."""
    with factory.begin() as session:
        identity = database_identity(session)
    return {"database_id": identity, "run_id": run_id, "database": describe_database(factory.kw["bind"].url)}


def wait_for_train_slot(factory: sessionmaker[Session], run_id: int, *, poll_s: float = QUEUE_POLL_S) -> None:
    """Block until this run holds the machine's training slot; raises JobCancelled if cancelled meanwhile."""
    host = socket.gethostname()
    while True:
        with factory.begin() as session:
            reap_dead_jobs(session)  # a dead worker must not hold the slot
            if claim_train_slot(session, run_id, host):
                return
            job = session.get(Job, run_id)
            if job.status == "cancelled" or job.cancel_requested:
                raise JobCancelled()
            other = running_train_job(session, host, besides=run_id)
            job.message = f"waiting for run {other.number} to finish" if other else "waiting for the training slot"
            job.heartbeat_at = utcnow()
        time.sleep(poll_s)


def _config_for(factory: sessionmaker[Session], run_id: int, params: dict[str, Any]) -> TrainConfig:
    values = dict(params.get("config") or {})
    folder = run_dir(factory, run_id)
    values["out_dir"] = values.get("out_dir") or str(folder)
    values["cache_dir"] = values.get("cache_dir") or str(data_dir(factory) / "cache" / "images")
    return TrainConfig.from_dict(values)


def _epoch_recorder(factory: sessionmaker[Session], run_id: int):
    def record(entry: "EpochLog") -> None:
        with factory.begin() as session:
            record_epoch(session, run_id, epoch=entry.epoch, train_loss=entry.train_loss,
                         train_accuracy=entry.train_accuracy, val_loss=entry.val_loss,
                         val_accuracy=entry.val_accuracy, lr=entry.lr, seconds=entry.seconds)
    return record


def run_train_job(factory: sessionmaker[Session], job_id: int, reporter: JobReporter) -> dict[str, Any]:
    """Job entry point (see the module docstring); returns the run's result dict.

    The run's clock starts once it holds the training slot, so its start-up phase counts loading
    torch and the dataset but not the time queued.
    """
    with factory() as session:
        job = session.get(Job, job_id)
        params, dataset_id = job_params(job), job.dataset_id
    config = _config_for(factory, job_id, params)
    resume = bool(params.get("resume"))
    wait_for_train_slot(factory, job_id)
    started = time.perf_counter()
    reporter(0.0, "loading the dataset")
    # torch is loaded only here, in the worker that trains: the app and the CLI import this module too.
    from core.models.loop import EpochLog, PhaseClock
    from core.train.run import main as train_main

    clock = PhaseClock(started=started)
    with factory.begin() as session:
        dataset = session.get(Dataset, dataset_id)
        root = dataset.root
        classes = dataset_classes(session, dataset_id)
        samples = samples_frame(session, dataset_id)
        if config.split == "dataset":
            ensure_evaluation_split(session, dataset_id)
            samples["evaluation"] = samples["id"].map(evaluation_sides(session, dataset_id))
        # A resumed run trains on the samples it started with, so it keeps the snapshot taken then.
        snapshot = params.get("snapshot") if resume else None
        if snapshot is None:
            snapshot = dataset_snapshot(session, dataset_id)
        # Store the full config (defaults and folders filled in) and the snapshot with the run.
        session.get(Job, job_id).params_json = json.dumps({**params, "config": config.to_dict(), "snapshot": snapshot})
    record = _epoch_recorder(factory, job_id)
    result = train_main(config, samples, classes, root, progress=reporter, on_epoch=record, resume=resume,
                        owner=run_owner(factory, job_id), clock=clock)
    if resume:  # epochs before the checkpoint, including one whose row the stopped worker never wrote
        for entry in result["history"]:
            record(EpochLog(**entry))
    result["run_id"] = job_id
    result["snapshot"] = snapshot
    result["split_source"] = "dataset" if config.split == "dataset" else f"run (seed {config.seed})"
    return result
