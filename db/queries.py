"""Query functions for datasets and samples. Each takes the caller's session first.

`samples_frame` is the one place a dataset's current state is read in bulk: the
given label from the folder, the current label and deleted flag from the latest
correction of each sample.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from db.models import Correction, Dataset, Job, Sample

SAMPLE_COLUMNS = [
    "id", "path", "label", "current_label", "deleted", "readable", "error", "missing",
    "content_hash", "phash", "width", "height", "mode", "file_size",
    "brightness", "contrast", "sharpness", "entropy", "colorfulness",
    "listing_id", "price", "title", "last_correction_id",
]


def resolve_root(root: str | Path) -> str:
    return str(Path(root).expanduser().resolve())


def get_dataset(session: Session, root: str | Path) -> Optional[Dataset]:
    """The dataset registered for folder `root`, or None."""
    return session.scalars(select(Dataset).where(Dataset.root == resolve_root(root))).one_or_none()


def next_job_number(session: Session, kind: str) -> int:
    """The number the next job of `kind` in this database is named by (Run 1, Audit 1, ...). Two writers that
    take the same one meet the unique index on (kind, number), and the second one's transaction fails."""
    return int(session.scalar(select(func.max(Job.number)).where(Job.kind == kind)) or 0) + 1


def job_by_number(session: Session, kind: str, number: int) -> Optional[Job]:
    """The job of `kind` named `number`, or None."""
    return session.scalars(select(Job).where(Job.kind == kind, Job.number == number)).one_or_none()


def job_numbers(session: Session, job_ids: list[int]) -> dict[int, int]:
    """{job id: its number} of those of `job_ids` that have one."""
    rows = session.execute(select(Job.id, Job.number).where(Job.id.in_(job_ids)))
    return {int(job_id): int(number) for job_id, number in rows if number is not None}


def get_or_create_dataset(session: Session, root: str | Path) -> Dataset:
    dataset = get_dataset(session, root)
    if dataset is None:
        resolved = resolve_root(root)
        dataset = Dataset(root=resolved, name=Path(resolved).name)
        session.add(dataset)
        session.flush()
    return dataset


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.name, Dataset.id)))


def dataset_classes(session: Session, dataset_id: int) -> list[str]:
    """Sorted class names of a dataset: the folder classes of its present samples."""
    rows = session.scalars(
        select(Sample.label).where(Sample.dataset_id == dataset_id, Sample.missing.is_(False)).distinct()
    )
    classes = set(rows)
    summary = session.get(Dataset, dataset_id).last_scan_json
    if summary:
        classes.update(json.loads(summary).get("classes", {}))
    return sorted(classes)


def latest_corrections_subquery():
    """(sample_id, last_id) of each sample's latest correction."""
    return (
        select(Correction.sample_id, func.max(Correction.id).label("last_id"))
        .group_by(Correction.sample_id)
        .subquery()
    )


def samples_frame(
    session: Session,
    dataset_id: int,
    *,
    include_missing: bool = False,
    sample_ids: Optional[Iterable[int]] = None,
) -> pd.DataFrame:
    """One row per sample with its current state; columns SAMPLE_COLUMNS, sorted by path.

    current_label/deleted come from the latest correction (folder label and
    False when there is none); price is the reviewer's fixed price when there is
    one, else the listing's; last_correction_id is 0 when there is none.
    """
    latest = latest_corrections_subquery()
    statement = (
        select(
            Sample.id, Sample.path, Sample.label,
            func.coalesce(Correction.new_label, Sample.label).label("current_label"),
            func.coalesce(Correction.deleted, False).label("deleted"),
            Sample.readable, Sample.error, Sample.missing, Sample.content_hash, Sample.phash,
            Sample.width, Sample.height, Sample.mode, Sample.file_size,
            Sample.brightness, Sample.contrast, Sample.sharpness, Sample.entropy, Sample.colorfulness,
            Sample.listing_id, func.coalesce(Correction.new_price, Sample.price).label("price"), Sample.title,
            func.coalesce(Correction.id, 0).label("last_correction_id"),
        )
        .outerjoin(latest, latest.c.sample_id == Sample.id)
        .outerjoin(Correction, Correction.id == latest.c.last_id)
        .where(Sample.dataset_id == dataset_id)
        .order_by(Sample.path)
    )
    if not include_missing:
        statement = statement.where(Sample.missing.is_(False))
    if sample_ids is not None:
        statement = statement.where(Sample.id.in_(list(sample_ids)))
    # Plain tuples: building a frame from Row objects costs pandas an attribute probe per row.
    frame = pd.DataFrame([tuple(row) for row in session.execute(statement)], columns=SAMPLE_COLUMNS)
    for column in ("deleted", "readable", "missing"):
        frame[column] = frame[column].astype(bool)
    frame["price"] = frame["price"].astype(float)
    return frame


def folder_labels(session: Session, sample_ids: Sequence[int]) -> np.ndarray:
    """The folder class of each of `sample_ids`, in their order: object array (N,)."""
    found: dict[int, str] = {}
    ids = [int(i) for i in sample_ids]
    for start in range(0, len(ids), 10_000):
        chunk = ids[start:start + 10_000]
        found.update(session.execute(select(Sample.id, Sample.label).where(Sample.id.in_(chunk))).all())
    return np.array([found[i] for i in ids], dtype=object)


def known_files(session: Session, dataset_id: int) -> dict[str, tuple[int, int, int]]:
    """path -> (sample id, file size, mtime ns) of every sample already recorded, missing ones included."""
    rows = session.execute(
        select(Sample.path, Sample.id, Sample.file_size, Sample.mtime_ns).where(Sample.dataset_id == dataset_id)
    )
    return {path: (sample_id, size, mtime) for path, sample_id, size, mtime in rows}


#: Ids bound in one IN list: under SQLite's default limit of 32,766 parameters and PostgreSQL's 65,535.
ID_CHUNK = 10_000


def mark_missing(session: Session, dataset_id: int, present_paths: set[str]) -> int:
    """Mark samples whose file vanished as missing (and un-mark ones that came back). Returns how many are missing now."""
    rows = session.execute(select(Sample.id, Sample.path, Sample.missing).where(Sample.dataset_id == dataset_id)).all()
    vanished = [sid for sid, path, missing in rows if path not in present_paths and not missing]
    returned = [sid for sid, path, missing in rows if path in present_paths and missing]
    for missing, ids in ((True, vanished), (False, returned)):
        for start in range(0, len(ids), ID_CHUNK):  # one IN list binds a parameter per id
            session.execute(update(Sample).where(Sample.id.in_(ids[start:start + ID_CHUNK])).values(missing=missing))
    return sum(1 for _, path, _ in rows if path not in present_paths)


def apply_listings(session: Session, dataset_id: int, listings: pd.DataFrame) -> None:
    """Set listing_id / price / title / extra columns of every sample from a validated listings table.

    Samples with no row get None, so a row removed from listings.csv is removed here too.
    """
    by_path = {row.path: row for row in listings.itertuples(index=False)}
    rows = session.execute(
        select(Sample.id, Sample.path, Sample.listing_id, Sample.price, Sample.title, Sample.listing_json)
        .where(Sample.dataset_id == dataset_id)
    ).all()
    updates = []
    for sample_id, path, *stored in rows:
        values = listing_values(by_path.get(path))
        if list(values.values()) != stored:  # only write what changed: a warm rescan writes nothing
            updates.append({"id": sample_id, **values})
    if updates:
        session.execute(update(Sample), updates)


def listing_values(row) -> dict:
    """The Sample listing columns for one row of a validated listings table (all None for no row)."""
    if row is None:
        return {"listing_id": None, "price": None, "title": None, "listing_json": None}
    return {
        "listing_id": row.listing_id if isinstance(row.listing_id, str) else None,
        "price": None if pd.isna(row.price) else float(row.price),
        "title": row.title if isinstance(row.title, str) else None,
        "listing_json": json.dumps(row.extra) if row.extra else None,
    }


def store_dataset_scan(session: Session, dataset: Dataset, summary: dict) -> None:
    dataset.scanned_at = datetime.now(timezone.utc)
    dataset.last_scan_json = json.dumps(summary)


def correction_counts(session: Session, dataset_id: int) -> int:
    """How many corrections the dataset has in its log."""
    return session.scalar(
        select(func.count(Correction.id)).join(Sample, and_(Sample.id == Correction.sample_id))
        .where(Sample.dataset_id == dataset_id)
    ) or 0
