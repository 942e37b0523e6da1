"""Engine and session factory for the listing-audit SQLite database.

One engine per database file, with WAL, foreign keys and a busy timeout set on
every connection, so the app, CLI and background jobs can share the file.
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from db.models import Base

DEFAULT_DB_PATH = Path("data") / "listing-audit.db"
ENV_VAR = "LISTING_AUDIT_DB"
BUSY_TIMEOUT_MS = 30_000


def default_db_path() -> Path:
    """The database the app and CLI use unless told otherwise: $LISTING_AUDIT_DB or data/listing-audit.db."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DB_PATH)


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(path: str | os.PathLike | None = None) -> Engine:
    """Create (and initialise) the SQLite engine for `path`, creating parent folders and tables."""
    db_path = Path(path) if path is not None else default_db_path()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{db_path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _set_sqlite_pragmas)
    Base.metadata.create_all(engine)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """The one sessionmaker for `engine`; callers own their sessions (`with factory.begin() as s:`)."""
    return sessionmaker(engine, expire_on_commit=False)
