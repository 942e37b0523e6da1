"""Export the cleaned dataset of a registered dataset: the `export` job, also called directly by the CLI.

Reads the current state of every sample (db.review.export_frame), plans the
export (core.export.plan.plan_export) and writes it (core.export.write.write_export).
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy.orm import Session, sessionmaker

from core.export.plan import ExportPlan, plan_export
from core.export.write import write_export
from core.progress import ProgressCallback
from db.models import Dataset, Job
from db.review import export_frame
from jobs.runner import job_params


def plan_dataset_export(session: Session, dataset_id: int) -> ExportPlan:
    """The export plan of the dataset's current state; raises core.export.plan.ExportError for unsafe names."""
    return plan_export(export_frame(session, dataset_id))


def export_dataset(
    factory: sessionmaker[Session],
    dataset_id: int,
    *,
    out: str,
    mode: str = "copy",
    overwrite: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> dict:
    """Plan and write the export of dataset `dataset_id` to `out`; returns write_export's summary."""
    with factory() as session:
        root = session.get(Dataset, dataset_id).root
        plan = plan_dataset_export(session, dataset_id)
    return write_export(plan, source_root=root, out=out, mode=mode, overwrite=overwrite, progress=progress)


def run_export_job(factory: sessionmaker[Session], job_id: int, reporter) -> dict:
    """Job entry point; params: out, mode, overwrite."""
    with factory() as session:
        job = session.get(Job, job_id)
        dataset_id, params = job.dataset_id, job_params(job)
    return export_dataset(
        factory, dataset_id, out=params["out"], mode=params.get("mode", "copy"),
        overwrite=bool(params.get("overwrite", False)), progress=reporter,
    )
