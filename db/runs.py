"""Query functions for training runs (jobs of kind "train") and their per-epoch logs. Each takes the session first.

A run's id is its job id, which stays internal; people name a run by its number in the database
(`Job.number`: Run 1, Run 2, ...), which the CLI takes and the pages show (`run_name`). Its config
is in the job's params, its outcome (metrics, split, validation predictions) in the job's result, its
curves in `train_epochs`.
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Optional

import pandas as pd
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from db.engine import insert_ignoring_duplicates, json_text
from db.models import Correction, Job, Sample, Setting, TrainEpoch
from db.queries import job_by_number

TRAIN_KIND = "train"
EPOCH_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
DATABASE_ID_KEY = "database_id"
RUN_COLUMNS = ["id", "number", "status", "created_at", "finished_at", "backbone", "image_size", "epochs",
               "epochs_done", "accuracy", "macro_f1", "device", "corrections", "message", "error"]


def database_identity(session: Session) -> str:
    """This database's identity: 32 random hex digits, made and stored on first use. Writes: call it in
    `factory.begin()`.

    Run folders are named after it (jobs.train.run_dir) and a run folder records
    it, so a run never resumes from another database's checkpoint. A copy of the
    database file keeps the identity of its original.
    """
    # Insert-or-ignore first: it takes the write lock, so of two processes here at once the first one's id wins.
    session.execute(insert_ignoring_duplicates(session, Setting).values(key=DATABASE_ID_KEY, value=uuid.uuid4().hex)
                    .on_conflict_do_nothing())
    return session.scalars(select(Setting.value).where(Setting.key == DATABASE_ID_KEY)).one()


def get_run(session: Session, run_id: int) -> Optional[Job]:
    """The train job `run_id`, or None when there is no such job or it is not a training run."""
    job = session.get(Job, run_id)
    return job if job is not None and job.kind == TRAIN_KIND else None


def run_by_number(session: Session, number: int) -> Optional[Job]:
    """The training run named `number` (Run 1 is 1), or None."""
    return job_by_number(session, TRAIN_KIND, number)


def run_name(number: Optional[int], *, capital: bool = True) -> str:
    """"Run 3" (or "run 3" with capital=False) for run number 3."""
    return f"{'Run' if capital else 'run'} {number}"


def _loads(text: Optional[str]) -> dict[str, Any]:
    return json.loads(text) if text else {}


def run_config(job: Job) -> dict[str, Any]:
    """The run's training options (TrainConfig as a dict)."""
    return _loads(job.params_json).get("config", {})


def run_result(job: Job) -> dict[str, Any]:
    """The run's result dict ({} until it succeeded)."""
    return _loads(job.result_json)


def run_predictions(job: Job) -> pd.Series:
    """A finished run's validation predictions: predicted class name per sample id (empty before it succeeded)."""
    result = run_result(job)
    validation, classes = result.get("validation") or {}, result.get("classes") or []
    return pd.Series([classes[k] for k in validation.get("pred", [])], index=validation.get("sample_ids", []),
                     dtype=object, name="predicted")


#: Config keys filled in by the worker (folders), left out when asking whether two runs have the same settings.
FOLDER_KEYS = ("out_dir", "cache_dir")


def active_run_like(session: Session, dataset_id: int, config: dict[str, Any]) -> Optional[Job]:
    """A queued or running training run of the dataset with the same settings as `config` (folders aside),
    if any: starting it again would only train the same model twice."""
    wanted = {k: v for k, v in config.items() if k not in FOLDER_KEYS}
    for job in session.scalars(select(Job).where(Job.dataset_id == dataset_id, Job.kind == TRAIN_KIND,
                                                 Job.status.in_(("queued", "running"))).order_by(Job.id)):
        settings = {k: v for k, v in run_config(job).items() if k not in FOLDER_KEYS}
        if settings == wanted:
            return job
    return None


def replaced_run(job: Job) -> Optional[int]:
    """The run this one was started to replace ("retrain with the same settings"), or None."""
    replaces = _loads(job.params_json).get("replaces")
    return int(replaces) if replaces else None


def run_metrics(session: Session, run_id: int) -> Optional[dict[str, Any]]:
    """The evaluation of a finished run (core.models.metrics.classification_report), or None."""
    job = get_run(session, run_id)
    if job is None:
        return None
    return run_result(job).get("metrics")


def run_phases(session: Session, run_id: int) -> Optional[dict[str, Any]]:
    """Where a finished run's time went: {"seconds": wall, "phases": {phase: seconds}, "fold_phases":
    [{phase: seconds}, ...]} (core.models.loop.PhaseClock), or None for no such run or a run without them."""
    result = json_text(Job.result_json)
    row = session.execute(
        select(result["seconds"].as_float(), result["phases"], result["fold_phases"])
        .where(Job.id == run_id, Job.kind == TRAIN_KIND)
    ).one_or_none()
    if row is None or row[1] is None:
        return None
    seconds, phases, fold_phases = row
    return {"seconds": seconds, "phases": phases, "fold_phases": fold_phases or []}


def runs_frame(session: Session, dataset_id: int) -> pd.DataFrame:
    """One row per training run of a dataset, newest first; columns RUN_COLUMNS.

    accuracy and macro_f1 are NaN until the run succeeded; corrections is how many
    corrections the dataset had when the run started.
    """
    epochs_done = (
        select(TrainEpoch.job_id, func.count(TrainEpoch.id).label("done")).group_by(TrainEpoch.job_id).subquery()
    )
    params, result = json_text(Job.params_json), json_text(Job.result_json)
    rows = session.execute(
        select(
            Job.id, Job.number, Job.status, Job.created_at, Job.finished_at,
            params[("config", "backbone")].as_string(), params[("config", "image_size")].as_integer(),
            params[("config", "epochs")].as_integer(), func.coalesce(epochs_done.c.done, 0),
            result[("metrics", "accuracy")].as_float(), result[("metrics", "macro_avg", "f1")].as_float(),
            result["device"].as_string(), params[("snapshot", "corrections")].as_integer(),
            Job.message, Job.error,
        )
        .outerjoin(epochs_done, epochs_done.c.job_id == Job.id)
        .where(Job.dataset_id == dataset_id, Job.kind == TRAIN_KIND)
        .order_by(Job.id.desc())
    ).all()
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return table.astype({"accuracy": float, "macro_f1": float, "epochs_done": int})


def latest_out_of_fold_run(session: Session, dataset_id: int) -> Optional[str]:
    """The folder of the dataset's newest succeeded run with out-of-fold probabilities (see
    core.models.checkpoints.load_out_of_fold), or None."""
    result = json_text(Job.result_json)
    return session.scalars(
        select(result["out_dir"].as_string())
        .where(Job.dataset_id == dataset_id, Job.kind == TRAIN_KIND, Job.status == "succeeded",
               result["out_of_fold"].as_string().is_not(None))
        .order_by(Job.id.desc()).limit(1)
    ).one_or_none()


def run_epochs(session: Session, run_id: int) -> pd.DataFrame:
    """The run's per-epoch log, by epoch; columns EPOCH_COLUMNS (epoch is 0-based)."""
    rows = session.execute(
        select(*(getattr(TrainEpoch, c) for c in EPOCH_COLUMNS)).where(TrainEpoch.job_id == run_id)
        .order_by(TrainEpoch.epoch)
    ).all()
    return pd.DataFrame(rows, columns=EPOCH_COLUMNS).astype({c: float for c in EPOCH_COLUMNS[1:]})


def record_epoch(session: Session, run_id: int, *, epoch: int, train_loss: float, train_accuracy: float,
                 val_loss: float, val_accuracy: float, lr: float, seconds: float) -> None:
    """Store (or replace, when a resumed run repeats it) one epoch of a run."""
    session.execute(delete(TrainEpoch).where(TrainEpoch.job_id == run_id, TrainEpoch.epoch == epoch))
    session.add(TrainEpoch(job_id=run_id, epoch=epoch, train_loss=train_loss, train_accuracy=train_accuracy,
                           val_loss=val_loss, val_accuracy=val_accuracy, lr=lr, seconds=seconds))


def claim_train_slot(session: Session, run_id: int, host: str) -> bool:
    """Atomically mark run `run_id` running if no other train job is running on `host`.

    One UPDATE statement, so two workers cannot both claim the slot. A run that
    did not get it is set back to queued. Returns whether it got the slot.
    """
    other = aliased(Job)
    busy = exists().where(other.kind == TRAIN_KIND, other.status == "running", other.host == host,
                          other.id != run_id)
    claimed = session.execute(
        update(Job).where(Job.id == run_id, Job.status.in_(("queued", "running")),
                          Job.cancel_requested.is_(False), ~busy)
        .values(status="running").execution_options(synchronize_session=False)
    ).rowcount
    if claimed:
        return True
    session.execute(update(Job).where(Job.id == run_id, Job.status == "running").values(status="queued")
                    .execution_options(synchronize_session=False))
    return False


def running_train_job(session: Session, host: str, *, besides: int) -> Optional[Job]:
    """The train job running on `host` other than `besides`, if any."""
    return session.scalars(
        select(Job).where(Job.kind == TRAIN_KIND, Job.status == "running", Job.host == host, Job.id != besides)
        .limit(1)
    ).one_or_none()


def requeue_run(session: Session, run_id: int, *, epochs: Optional[int] = None) -> Job:
    """Queue a failed or cancelled run again so that it resumes from its last checkpoint.

    epochs: optionally change how many epochs the run trains in total.
    """
    job = get_run(session, run_id)
    if job is None:
        raise ValueError(f"no training run with id {run_id}")
    if job.status not in ("failed", "cancelled"):
        raise ValueError(f"{run_name(job.number, capital=False)} is {job.status}: only failed or cancelled runs "
                         "can be resumed")
    params = _loads(job.params_json)
    if epochs is not None:
        params["config"]["epochs"] = epochs
    params["resume"] = True
    job.params_json = json.dumps(params)
    job.status, job.cancel_requested, job.error, job.finished_at, job.result_json = "queued", False, None, None, None
    job.progress, job.message, job.pid = 0.0, "queued to resume", None
    return job


def dataset_snapshot(session: Session, dataset_id: int) -> dict[str, int]:
    """How much review a dataset has had: corrections in its log, the newest correction id,
    and how many samples are currently relabelled or deleted."""
    latest = (
        select(Correction.sample_id, func.max(Correction.id).label("last_id"))
        .join(Sample, Sample.id == Correction.sample_id).where(Sample.dataset_id == dataset_id)
        .group_by(Correction.sample_id).subquery()
    )
    current = session.execute(
        select(Sample.label, Correction.new_label, Correction.deleted)
        .join(latest, latest.c.sample_id == Sample.id).join(Correction, Correction.id == latest.c.last_id)
    ).all()
    totals = session.execute(
        select(func.count(Correction.id), func.coalesce(func.max(Correction.id), 0))
        .join(Sample, Sample.id == Correction.sample_id).where(Sample.dataset_id == dataset_id)
    ).one()
    return {
        "corrections": int(totals[0]),
        "last_correction_id": int(totals[1]),
        "relabelled": sum(1 for label, new_label, deleted in current if not deleted and new_label != label),
        "deleted": sum(1 for _, _, deleted in current if deleted),
    }
