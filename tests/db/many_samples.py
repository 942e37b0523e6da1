"""Datasets of tens of thousands of sample rows, inserted directly (no files), on a session whose SQLite
connection binds at most as many parameters per statement as SQLite's default build allows."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.orm import Session

from db.models import Dataset, Sample

#: SQLITE_MAX_VARIABLE_NUMBER of SQLite's default build (this machine's build allows 250,000).
DEFAULT_SQLITE_PARAMETERS = 32_766


def add_many_samples(session: Session, root: Path, labels: list[str]) -> int:
    """A dataset at `root` with one sample per entry of `labels` (path `<label>/<i>.jpg`, content hash i);
    returns its id. On SQLite the session's connection is limited to DEFAULT_SQLITE_PARAMETERS first."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().connection.dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER,
                                                                  DEFAULT_SQLITE_PARAMETERS)
    dataset = Dataset(root=str(root), name=root.name)
    session.add(dataset)
    session.flush()
    session.execute(Sample.__table__.insert(), [
        {"dataset_id": dataset.id, "path": f"{label}/{i}.jpg", "label": label, "file_size": 1, "mtime_ns": 0,
         "content_hash": f"{i:064x}"} for i, label in enumerate(labels)])
    return dataset.id
