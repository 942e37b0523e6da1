"""Engine and session factory for the listing-audit SQLite database, and its errors as one line each.

One engine per database file, with WAL, foreign keys and a busy timeout set on
every connection, so the app, CLI and background jobs can share the file. A
file that cannot be used (a folder, not SQLite, corrupted, read-only, busy for
too long) raises DatabaseAccessError with one line that names the file.
Opening a database brings its schema to the revision this code was written
for (db/migrations). Short writes go through `write_transaction`, which takes
the write lock up front and retries the whole transaction while another
process holds it.
"""
from __future__ import annotations

import logging
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.migrations import HEAD_REVISION, VERSION_TABLE
from db.models import Base

log = logging.getLogger(__name__)

DEFAULT_DB_PATH = Path("data") / "listing-audit.db"
ENV_VAR = "LISTING_AUDIT_DB"
BUSY_TIMEOUT_MS = 30_000
#: Seconds a short write (a decision, a job's progress) keeps retrying while the database is busy.
WRITE_RETRY_ENV_VAR = "LISTING_AUDIT_DB_RETRY_S"
DEFAULT_WRITE_RETRY_S = 60.0
#: Longest wait for the write lock within one attempt, and the cap of the pause between attempts.
ATTEMPT_WAIT_S = 2.0
MAX_BACKOFF_S = 1.0

T = TypeVar("T")


class DatabaseAccessError(Exception):
    """The database file cannot be used right now; the message is one line that names the file."""


class DatabaseBusy(DatabaseAccessError):
    """Another process held the write lock for longer than we were willing to wait."""


class SchemaTooNew(DatabaseAccessError):
    """The database was written by a newer listing-audit, at a schema revision this code does not know."""


def default_db_path() -> Path:
    """The database the app and CLI use unless told otherwise: $LISTING_AUDIT_DB or data/listing-audit.db."""
    return database_file(os.environ.get(ENV_VAR) or DEFAULT_DB_PATH)


def database_file(location: str | os.PathLike) -> Path:
    """The SQLite file that `location` names: a path, or a `sqlite:///PATH` URL.

    Any other URL raises DatabaseAccessError: only SQLite files are supported,
    and a URL such as postgresql://host/db must not become a folder named `postgresql:`.
    """
    text = os.fspath(location)
    if "://" not in text:
        return Path(text)
    try:
        url = make_url(text)
    except ArgumentError:
        url = None
    if url is not None and url.drivername in ("sqlite", "sqlite+pysqlite") and url.database \
            and url.database != ":memory:" and not url.host and not url.query:
        return Path(url.database)
    shown = url.render_as_string(hide_password=True) if url is not None else text
    raise DatabaseAccessError(f"database URLs are not supported yet: {shown}; give the path of a SQLite file")


def busy_message(path: str | os.PathLike) -> str:
    return f"the database {path} is busy, try again"


def classify_sqlite_error(error: BaseException, path: str | os.PathLike) -> Optional[DatabaseAccessError]:
    """The one-line DatabaseAccessError for a sqlite3 error about the file at `path`; None for other errors.

    Errors about the statement itself (a constraint, bad SQL) are not the file's
    fault and return None, so they keep their own exception and traceback.
    """
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(error, sqlite3.Error) or code is None:
        return None
    primary = code & 0xFF
    reason = str(error)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseBusy(busy_message(path))
    if primary == sqlite3.SQLITE_NOTADB:
        return DatabaseAccessError(f"{path} is not a listing-audit database (not SQLite)")
    if primary == sqlite3.SQLITE_CORRUPT:
        return DatabaseAccessError(f"{path} is corrupted ({reason}); restore it from a backup or use another file")
    if primary == sqlite3.SQLITE_READONLY:
        return DatabaseAccessError(f"{path} is read-only: {reason}; make the file and its folder writable")
    if primary == sqlite3.SQLITE_CANTOPEN:
        return DatabaseAccessError(f"cannot open the database {path}: {reason}")
    if primary == sqlite3.SQLITE_FULL:
        return DatabaseAccessError(f"cannot write to the database {path}: the disk is full")
    if primary in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM):
        return DatabaseAccessError(f"cannot use the database {path}: {reason}")
    return None


def _raise_one_line_error(context: ExceptionContext) -> None:
    """handle_error hook: replace a file-level sqlite3 error by its one-line DatabaseAccessError."""
    replacement = classify_sqlite_error(context.original_exception, context.engine.url.database)
    if replacement is not None:
        raise replacement from context.original_exception


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _checked_path(path: str | os.PathLike | None) -> Path:
    """The database path, its folder created; DatabaseAccessError when it is a folder or the folder cannot be made."""
    db_path = database_file(path) if path is not None else default_db_path()
    if db_path.is_dir():
        raise DatabaseAccessError(f"{db_path} is a folder, not a database file")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseAccessError(f"cannot create the folder {db_path.parent} for the database: {error.strerror}") from error
    return db_path


def make_engine(path: str | os.PathLike | None = None, *, upgrade: bool = True) -> Engine:
    """Create the SQLite engine for `path` (a file path or `sqlite:///` URL), creating parent folders.

    With `upgrade` (the default) the database is brought to HEAD_REVISION first
    (see `upgrade_schema`); without it the file is left as it is. Raises
    DatabaseAccessError (one line) when the file cannot be used; the engine
    raises it too for such errors later (e.g. writing to a read-only file).
    """
    db_path = _checked_path(path)
    engine = create_engine(
        f"sqlite:///{db_path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _set_sqlite_pragmas)
    event.listen(engine, "handle_error", _raise_one_line_error)
    if upgrade:
        try:
            upgrade_schema(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


def stored_revision(connection: Connection) -> Optional[str]:
    """The schema revision recorded in the database; None when it has none (new, or written before revisions)."""
    try:
        return connection.execute(select(VERSION_TABLE.c.version_num)).scalar()
    except OperationalError as error:
        if "no such table" not in str(error.orig):
            raise
        return None


def upgrade_schema(engine: Engine) -> tuple[Optional[str], str]:
    """Bring the database to HEAD_REVISION; returns its revision before (None: none recorded) and after.

    An up-to-date database costs one SELECT. Otherwise, holding the write lock
    (BEGIN IMMEDIATE, so that two processes opening an old database do not
    both migrate it; the second waits, then finds it at head):
    - a new, empty database gets the tables of db.models and is stamped at
      head, without importing Alembic (0.3 s); tests/db/test_migrations.py
      checks that the models and the revisions describe the same schema;
    - a database written before revisions (no alembic_version) runs them all
      from the baseline, which creates only the tables and indexes it lacks;
    - an older revision runs the revisions after it;
    - a revision this code does not know raises SchemaTooNew.
    """
    with engine.connect() as connection:
        before = stored_revision(connection)
    if before == HEAD_REVISION:
        return before, before
    with engine.connect() as connection:
        # The revisions may copy a table and drop the original (Alembic's batch
        # mode); with foreign keys on, dropping `samples` would cascade into
        # flags and corrections. The pragma only takes effect outside a transaction.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            before = stored_revision(connection)
            if before != HEAD_REVISION:
                _migrate_locked(connection, before)
            connection.commit()
        finally:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
    return before, HEAD_REVISION


def _migrate_locked(connection: Connection, before: Optional[str]) -> None:
    """Bring the database from revision `before` to head, on a connection holding the write lock."""
    path = connection.engine.url.database
    if before is None and not _has_tables(connection):
        Base.metadata.create_all(connection)
        VERSION_TABLE.create(connection)
        connection.execute(VERSION_TABLE.insert().values(version_num=HEAD_REVISION))
        return
    from db.migrations import runner  # Alembic, imported only when a database needs it

    if before is not None and before not in runner.known_revisions():
        raise SchemaTooNew(f"{path} was written by a newer listing-audit (schema {before}); upgrade listing-audit")
    broken_before = _foreign_key_violations(connection)
    runner.upgrade(connection)
    broken_after = _foreign_key_violations(connection)
    if broken_after > broken_before:
        raise DatabaseAccessError(
            f"upgrading {path} from schema {before or 'none'} would leave rows that point at missing rows "
            f"({broken_after - broken_before}); nothing was changed"
        )
    log.info("upgraded the database %s from schema %s to %s", path, before or "(none)", HEAD_REVISION)


def _has_tables(connection: Connection) -> bool:
    return connection.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").first() is not None


def _foreign_key_violations(connection: Connection) -> int:
    """Rows whose foreign key points at no row (PRAGMA foreign_key_check)."""
    return len(connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall())


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """The one sessionmaker for `engine`; callers own their sessions (`with factory.begin() as s:`)."""
    return sessionmaker(engine, expire_on_commit=False)


def write_retry_budget_s() -> float:
    """Seconds a short write keeps retrying while the database is busy: $LISTING_AUDIT_DB_RETRY_S or 60."""
    text = os.environ.get(WRITE_RETRY_ENV_VAR, "").strip()
    try:
        return max(0.0, float(text)) if text else DEFAULT_WRITE_RETRY_S
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", WRITE_RETRY_ENV_VAR, text)
        return DEFAULT_WRITE_RETRY_S


def begin_immediate(session: Session, *, wait_s: float) -> None:
    """Start the session's transaction with BEGIN IMMEDIATE, waiting at most `wait_s` seconds for the write lock.

    A deferred transaction that reads and then writes has to upgrade its read
    lock, and in WAL mode SQLite refuses that upgrade at once (SQLITE_BUSY,
    no busy timeout) when another connection wrote in between. Taking the
    write lock first means the reads that follow see the latest state and the
    writes cannot be refused. Must be the session's first statement.
    """
    connection = session.connection()
    connection.exec_driver_sql(f"PRAGMA busy_timeout={max(1, int(wait_s * 1000))}")
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def write_transaction(factory: sessionmaker[Session], work: Callable[[Session], T], *,
                      budget_s: Optional[float] = None) -> T:
    """Run `work(session)` in one short write transaction and commit it; returns what `work` returned.

    The transaction starts with BEGIN IMMEDIATE. While another process holds
    the write lock, the whole transaction is retried (a fresh session, `work`
    called again) after a jittered pause, for at most `budget_s` seconds in all
    (default: write_retry_budget_s()); then DatabaseBusy is raised. So `work`
    must only touch the database: no output, no files. Any other exception
    from `work` rolls back and propagates at once. Not for use inside another
    write transaction of this process: it would wait for its own lock.
    """
    budget_s = write_retry_budget_s() if budget_s is None else budget_s
    deadline = time.monotonic() + budget_s
    attempt = 0
    while True:
        try:
            with factory.begin() as session:
                begin_immediate(session, wait_s=min(ATTEMPT_WAIT_S, max(0.0, deadline - time.monotonic())))
                return work(session)
        except DatabaseBusy:
            attempt += 1
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise
            pause_s = min(left_s, random.uniform(0.0, min(MAX_BACKOFF_S, 0.02 * 2 ** attempt)))
            log.debug("database busy, retrying the write (attempt %d) in %.3f s", attempt + 1, pause_s)
            time.sleep(pause_s)
