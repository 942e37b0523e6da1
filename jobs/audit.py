"""The `audit` job: run the checks on a scanned dataset's current state and store the flags under the job.

Corrections are respected: each sample is audited under its current label, and
deleted or missing samples are left out. The CLI runs this in the foreground,
the app in a worker process; both go through run_audit_job.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from core.audit.checks.base import AuditContext
from core.audit.run import AuditRun, flags_table, resolve_checks, run_audit
from core.executors import resolve_executor
from core.progress import ProgressCallback, within
from db.embeddings import DbEmbeddingStore
from db.flags import store_flags
from db.models import Dataset, Job
from db.queries import dataset_classes, samples_frame
from jobs.runner import job_params

log = logging.getLogger(__name__)

#: Share of the progress bar for loading samples before the checks, and for storing flags after them.
LOAD_SHARE = 0.02
STORE_SHARE = 0.03


class AuditError(ValueError):
    """The audit cannot run as asked (dataset not scanned, no samples, unknown check); the message says why."""


def audit_params(*, checks: Optional[list[str]] = None, folds: Optional[int] = None,
                 backbone: Optional[str] = None, options: Optional[dict[str, dict]] = None,
                 executor: Optional[str] = None) -> dict[str, Any]:
    """The params_json of an audit job: the checks to run (validated, in run order) and their options.

    folds, backbone and executor (where photos are embedded: "local" or "ray") are read by the mislabel
    check from AuditContext.params; None leaves the check's default (for executor, resolved when the job
    runs: core.executors.resolve_executor). Raises AuditError for an unknown check, backbone or executor.
    """
    try:
        names = resolve_checks(checks)
        if executor is not None:
            resolve_executor(executor)
        if backbone is not None:
            from core.models.embeddings import get_backbone  # torchvision: loaded only when a backbone is named

            get_backbone(backbone)
    except ValueError as error:
        raise AuditError(str(error)) from error
    params: dict[str, Any] = {"checks": names}
    if folds is not None:
        params["folds"] = int(folds)
    if backbone is not None:
        params["backbone"] = backbone
    if options:
        params["options"] = options
    if executor is not None:
        params["executor"] = executor
    return params


def audit_samples(session: Session, dataset_id: int) -> pd.DataFrame:
    """The samples an audit looks at, indexed by sample id: present, not deleted, `label` = current label,
    `folder_label` = the folder's class."""
    frame = samples_frame(session, dataset_id)
    frame = frame[~frame["deleted"]]
    frame = frame.rename(columns={"label": "folder_label"}).rename(columns={"current_label": "label"})
    return frame.set_index("id")


@dataclass
class AuditOutcome:
    """An audit's stored summary (the job result), its full per-check tables and the samples it audited."""

    summary: dict[str, Any]
    run: AuditRun
    samples: pd.DataFrame


def audit_job(factory: sessionmaker[Session], job_id: int, progress: ProgressCallback) -> AuditOutcome:
    """Run audit job `job_id`'s checks on its dataset and store the flags under the job.

    Raises AuditError when the dataset was never scanned, has nothing to audit or a check is unknown.
    """
    with factory() as session:
        job = session.get(Job, job_id)
        params = job_params(job)
        params["executor"] = resolve_executor(params.get("executor"))
        dataset = session.get(Dataset, job.dataset_id)
        if dataset.scanned_at is None:
            raise AuditError(f"dataset {dataset.root} has not been scanned yet: scan it first")
        dataset_id, root = dataset.id, Path(dataset.root)
        classes = dataset_classes(session, dataset_id)
        samples = audit_samples(session, dataset_id)
    if samples.empty:
        raise AuditError(f"dataset {root} has no samples to audit (all deleted or missing?)")
    try:
        checks = resolve_checks(params.get("checks"))
    except ValueError as error:
        raise AuditError(str(error)) from error
    progress(LOAD_SHARE, f"auditing {len(samples)} samples")
    context = AuditContext(
        samples=samples, classes=classes, root=root, params=params,
        progress=within(progress, LOAD_SHARE, 1.0 - STORE_SHARE),
        embeddings=DbEmbeddingStore(factory),
    )
    run = run_audit(context, checks, options=params.get("options"))
    flags = flags_table(run, samples)
    progress(1.0 - STORE_SHARE, f"storing {len(flags)} flags")
    with factory.begin() as session:
        stored = store_flags(session, job_id, flags)
    flagged = int(flags["kind"].isin(list(run.results)).sum())  # the rest is ranked past a review budget
    log.info("audit job %s stored %d flags and %d listings ranked past a review budget", job_id, flagged,
             stored - flagged)
    summary = {
        "dataset_id": dataset_id,
        "samples": int(len(samples)),
        "classes": classes,
        "class_sizes": {name: int(count) for name, count in samples["label"].value_counts().sort_index().items()},
        "checks": run.summary(),
        "flags": flagged,
        "ranked_past_budget": int(stored) - flagged,
        "flags_by_kind": {name: int((flags["kind"] == name).sum()) for name in run.results},
        "failed_checks": dict(run.errors),
        "seconds": round(sum(run.seconds.values()), 3),
    }
    return AuditOutcome(summary, run, samples)


def run_audit_job(factory: sessionmaker[Session], job_id: int, reporter) -> dict:
    """Job entry point; params: see audit_params. Returns the audit summary (stored as the job result).

    Result keys: dataset_id, samples, classes, class_sizes (class -> audited samples),
    checks (per check: flags, seconds and the check's summary, or `error` for a check that failed),
    flags (total), flags_by_kind, failed_checks (check -> one-line error; the other checks' flags are
    stored all the same), seconds.
    """
    return audit_job(factory, job_id, reporter).summary
