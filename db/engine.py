"""Engine and session factory for the listing-audit database, and its errors as one line each.

The database is a SQLite file (the default: a plain path, or `sqlite:///PATH`)
or a PostgreSQL server (`postgresql+psycopg://user@host/db`), for a team. The
rest of the code is the same for both; what differs lives here:
- SQLite: one engine per file, with WAL, foreign keys and a busy timeout set on
  every connection, so the app, CLI and background jobs can share the file.
  Short writes take the file's write lock up front (BEGIN IMMEDIATE).
- PostgreSQL: short writes take a transaction-level advisory lock instead, so
  they are serialised exactly as on SQLite; a schema upgrade holds another one.
Either way a database that cannot be used (a folder, not SQLite, corrupted,
read-only, a server that cannot be reached, busy for too long) raises
DatabaseAccessError with one line that names it. Opening a database brings its
schema to the revision this code was written for (db/migrations). Short writes
go through `write_transaction`, which retries the whole transaction while
another process holds the write lock.
"""
from __future__ import annotations

import logging
import os
import random
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

from sqlalchemy import JSON, Connection, Engine, Table, create_engine, event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.functions import FunctionElement

from db.migrations import HEAD_REVISION, VERSION_TABLE
from db.models import Base

log = logging.getLogger(__name__)

DEFAULT_DB_PATH = Path("data") / "listing-audit.db"
ENV_VAR = "LISTING_AUDIT_DB"
#: Where runs, logs and the image cache live when the database is a server (a SQLite file keeps them beside it).
DATA_DIR_ENV_VAR = "LISTING_AUDIT_DATA_DIR"
SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
POSTGRES_DRIVER = "postgresql+psycopg"
#: Spellings of a PostgreSQL URL's scheme that mean psycopg 3, the driver listing-audit installs.
POSTGRES_SCHEMES = ("postgresql", "postgres", POSTGRES_DRIVER)
#: pg_advisory_xact_lock keys: one serialises short writes (as SQLite's write lock does), one schema upgrades.
WRITE_LOCK_KEY = 0x6C6973745F6175
MIGRATION_LOCK_KEY = 0x6C6973745F6D69
#: Seconds to wait for a PostgreSQL server to accept a connection.
CONNECT_TIMEOUT_S = 10
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


def default_location() -> str:
    """The database the app and CLI use unless told otherwise: $LISTING_AUDIT_DB or data/listing-audit.db."""
    return os.environ.get(ENV_VAR) or str(DEFAULT_DB_PATH)


def database_url(location: str | os.PathLike) -> URL:
    """The SQLAlchemy URL of the database `location` names: a file path or `sqlite:///PATH` (SQLite), or a
    `postgresql+psycopg://user@host[:port]/db` URL (`postgresql://` and `postgres://` mean the same).

    Any other URL raises DatabaseAccessError, so that a URL can never become a folder named after its scheme.
    """
    text = os.fspath(location)
    if "://" not in text:
        return URL.create("sqlite", database=text)
    try:
        url = make_url(text)
    except ArgumentError:
        url = None
    except ValueError as error:  # a port that is not a number
        shown = re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", text)
        raise DatabaseAccessError(f"malformed database URL {shown}: {error}") from error
    if url is not None and url.drivername in SQLITE_DRIVERS and url.database \
            and url.database != ":memory:" and not url.host and not url.query:
        return URL.create("sqlite", database=url.database)
    if url is not None and url.drivername in POSTGRES_SCHEMES and url.database:
        return url.set(drivername=POSTGRES_DRIVER)
    shown = url.render_as_string(hide_password=True) if url is not None else text
    raise DatabaseAccessError(
        f"unsupported database {shown}: give the path of a SQLite file or a postgresql+psycopg://user@host/db URL")


def is_sqlite(url: URL) -> bool:
    return url.drivername in SQLITE_DRIVERS


def database_file(location: str | os.PathLike) -> Optional[Path]:
    """The SQLite file that `location` names; None when it names a server."""
    url = database_url(location)
    return Path(url.database) if is_sqlite(url) else None


def describe_database(location: str | os.PathLike | URL) -> str:
    """How messages name a database: a SQLite file's path, a server's URL without its password."""
    url = location if isinstance(location, URL) else database_url(location)
    return url.database if is_sqlite(url) else url.render_as_string(hide_password=True)


def canonical_location(location: str | os.PathLike) -> str:
    """`location` as one string per database: a SQLite file's absolute path, a server's full URL (password kept).

    The app keys its engine and caches by it, and hands it to background jobs.
    """
    url = database_url(location)
    if is_sqlite(url):
        return str(Path(url.database).resolve())
    return url.render_as_string(hide_password=False)


def data_dir(engine: Engine) -> Path:
    """The folder for the database's runs, logs and image cache, absolute.

    A SQLite file keeps them beside it; a server's database in $LISTING_AUDIT_DATA_DIR (default data/).
    """
    if is_sqlite(engine.url):
        return Path(engine.url.database).resolve().parent
    return Path(os.environ.get(DATA_DIR_ENV_VAR) or DEFAULT_DB_PATH.parent).resolve()


def database_stem(engine: Engine) -> str:
    """A short name for the database in folder names: the SQLite file's stem, or the server database's name
    with anything but letters, digits, `.`, `_` and `-` replaced by `_`."""
    if is_sqlite(engine.url):
        return Path(engine.url.database).stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(engine.url.database))


def insert_ignoring_duplicates(engine_or_session: Engine | Session, table: Table | type) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the dialect in use: call `.on_conflict_do_nothing(...)` on the result."""
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    dialect = sqlite if bind.dialect.name == "sqlite" else postgresql
    return dialect.insert(table)


class json_text(FunctionElement):
    """A TEXT column holding JSON, read as JSON: index it with SQLAlchemy's JSON paths, e.g.
    `json_text(Job.result_json)[("metrics", "accuracy")].as_float()`, so queries never parse whole documents.

    SQLite's JSON functions take the text as it is; PostgreSQL needs it cast to `json`.
    """

    type = JSON()
    inherit_cache = True


@compiles(json_text)
def _json_text_as_is(element: json_text, compiler, **kw) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(json_text, "postgresql")
def _json_text_cast(element: json_text, compiler, **kw) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS JSON)"


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


#: PostgreSQL error classes (SQLSTATE) that mean "another transaction is in the way": retry later.
POSTGRES_BUSY_STATES = ("40001", "40P01", "55P03")  # serialization failure, deadlock, lock not available


def classify_postgres_error(error: BaseException, shown: str) -> Optional[DatabaseAccessError]:
    """The one-line DatabaseAccessError for a psycopg error about the server `shown`; None for other errors.

    As with SQLite, errors about the statement itself (a constraint, bad SQL) return None.
    """
    import psycopg  # installed with listing-audit; imported here so SQLite users never load it

    if not isinstance(error, psycopg.Error):
        return None
    state = error.sqlstate or ""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if state in POSTGRES_BUSY_STATES:
        return DatabaseBusy(busy_message(shown))
    if state == "25006":
        return DatabaseAccessError(f"the database {shown} is read-only: {reason}")
    if state.startswith("53"):
        return DatabaseAccessError(f"the database server {shown} is out of resources: {reason}")
    if isinstance(error, psycopg.OperationalError) and (not state or state[:2] in ("08", "28", "3D", "57")):
        return DatabaseAccessError(f"cannot connect to the database {shown}: {reason}")
    return None


def _raise_one_line_error(context: ExceptionContext) -> None:
    """handle_error hook: replace a database-level driver error by its one-line DatabaseAccessError."""
    url = context.engine.url
    if is_sqlite(url):
        replacement = classify_sqlite_error(context.original_exception, url.database)
    else:
        replacement = classify_postgres_error(context.original_exception, describe_database(url))
    if replacement is not None:
        raise replacement from context.original_exception


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


#: Seconds between tries of the switch to WAL while another connection holds the database's write lock.
WAL_SWITCH_PAUSE_S = 0.05


def _switch_to_wal(cursor) -> None:
    """PRAGMA journal_mode=WAL, retried for up to BUSY_TIMEOUT_MS while another connection holds the write
    lock: on a database still in rollback-journal mode (one written before WAL, or new) the switch fails at
    once with "database is locked" instead of waiting through the busy handler, so a second process opening
    it while the first migrates it would fail. A database already in WAL needs no lock for it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(WAL_SWITCH_PAUSE_S)


def _checked_path(url: URL) -> Path:
    """The SQLite file's path, its folder created; DatabaseAccessError when it is a folder or the folder cannot be made."""
    db_path = Path(url.database)
    if db_path.is_dir():
        raise DatabaseAccessError(f"{db_path} is a folder, not a database file")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseAccessError(f"cannot create the folder {db_path.parent} for the database: {error.strerror}") from error
    return db_path


#: Tables that make a SQLite file ours, present since the first release (which had no alembic_version).
OWN_TABLES = frozenset({"datasets", "samples", "corrections", "jobs"})


def _refuse_foreign_sqlite(path: Path) -> None:
    """DatabaseAccessError, before anything is written, when `path` is a SQLite database that holds tables
    but not ours (no alembic_version, not the tables of a release before revisions): another program's
    database, which opening would change (our tables added, its journal switched to WAL). Read-only:
    the file is opened with mode=ro and no pragma."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.Error:  # not a database, locked, unreadable: the engine says so in one line when it opens
        return
    if tables and VERSION_TABLE.name not in tables and not OWN_TABLES <= tables:
        raise DatabaseAccessError(
            f"{path} is another program's SQLite database (tables: {', '.join(sorted(tables)[:5])}"
            f"{', ...' if len(tables) > 5 else ''}), not listing-audit's; nothing was changed. "
            "Give a new file or one listing-audit made")


def _sqlite_engine(url: URL) -> Engine:
    path = Path(url.database)
    _refuse_foreign_sqlite(path)
    if _on_read_only_ground(path):
        return _read_only_sqlite_engine(path)
    engine = create_engine(
        f"sqlite:///{_checked_path(url)}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def _on_read_only_ground(path: Path) -> bool:
    """Whether `path` is an existing database file in a folder nothing can be written to (a read-only mount,
    or a folder this user may not write): SQLite could not make its lock and WAL index files there."""
    return path.is_file() and not os.access(path.parent, os.W_OK)


def _read_only_sqlite_engine(path: Path) -> Engine:
    """An engine that reads `path` and never writes (SQLite's mode=ro, immutable: nobody can change a file
    where nothing can be written); a write raises DatabaseAccessError ("attempt to write a readonly
    database"). Refused when the file's WAL holds changes not yet in it: immutable reading would miss them."""
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise DatabaseAccessError(
            f"{path} is on read-only ground and its latest changes are still in {wal.name}, which cannot be "
            "merged there: open it once where it can be written")
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    engine = create_engine(f"sqlite:///{path}", creator=lambda: sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False))
    event.listen(engine, "connect", _set_read_only_pragmas)
    log.info("opened %s read-only: its folder cannot be written", path)
    return engine


def _set_read_only_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _postgres_engine(url: URL) -> Engine:
    # pool_pre_ping: the app holds its engine for days, and a server restart must not surface as an error.
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=10,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "listing-audit"},
    )


def make_engine(location: str | os.PathLike | None = None, *, upgrade: bool = True) -> Engine:
    """Create the engine for the database at `location` (see `database_url`; default: `default_location()`).

    A SQLite file's parent folders are created. With `upgrade` (the default)
    the database is brought to HEAD_REVISION first (see `upgrade_schema`);
    without it the database is left as it is. Raises DatabaseAccessError (one
    line) when the database cannot be used; the engine raises it too for such
    errors later (e.g. writing to a read-only file, a server gone away).
    """
    url = database_url(location if location is not None else default_location())
    engine = _sqlite_engine(url) if is_sqlite(url) else _postgres_engine(url)
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
    if not inspect(connection).has_table(VERSION_TABLE.name):
        return None
    return connection.execute(select(VERSION_TABLE.c.version_num)).scalar()


def _is_at_head(engine: Engine) -> bool:
    """Whether the database is at HEAD_REVISION, in one query.

    Any error but the file's or server's own (DatabaseAccessError) answers no:
    `upgrade_schema` then looks again, carefully, holding the schema lock.
    """
    with engine.connect() as connection:
        try:
            return connection.execute(select(VERSION_TABLE.c.version_num)).scalar() == HEAD_REVISION
        except (OperationalError, ProgrammingError):  # no such table (SQLite), undefined table (PostgreSQL)
            return False


def upgrade_schema(engine: Engine) -> tuple[Optional[str], str]:
    """Bring the database to HEAD_REVISION; returns its revision before (None: none recorded) and after.

    An up-to-date database costs one query. Otherwise, holding the schema lock
    (so that two processes opening an old database do not both migrate it; the
    second waits, then finds it at head):
    - a new, empty database gets the tables of db.models and is stamped at
      head, without importing Alembic (0.3 s); tests/db/test_migrations.py
      checks that the models and the revisions describe the same schema;
    - a database written before revisions (no alembic_version) runs them all
      from the baseline, which creates only the tables and indexes it lacks;
    - an older revision runs the revisions after it;
    - a revision this code does not know raises SchemaTooNew.
    """
    if _is_at_head(engine):
        return HEAD_REVISION, HEAD_REVISION
    with _schema_lock(engine) as connection:
        before = stored_revision(connection)
        if before != HEAD_REVISION:
            _migrate_locked(connection, before)
        connection.commit()
    return before, HEAD_REVISION


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the lock against concurrent upgrades; rolled back unless committed.

    SQLite: the write lock (BEGIN IMMEDIATE), with foreign keys off: the
    revisions may copy a table and drop the original (Alembic's batch mode), and
    with foreign keys on, dropping `samples` would cascade into flags and
    corrections (the pragma only takes effect outside a transaction).
    PostgreSQL: an advisory lock held until the transaction ends; DDL is transactional there.
    """
    with engine.connect() as connection:
        if not is_sqlite(engine.url):
            with connection.begin():
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
                yield connection
            return
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection
        finally:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def _has_every_model_column(connection: Connection) -> bool:
    """Whether the database has every table of db.models with every one of its columns."""
    found = inspect(connection)
    tables = set(found.get_table_names())
    return all(table.name in tables and {column.name for column in table.columns}
               <= {column["name"] for column in found.get_columns(table.name)}
               for table in Base.metadata.sorted_tables)


def _first_line(error: Exception) -> str:
    """The driver's message of a database error, first line only."""
    return str(getattr(error, "orig", None) or error).splitlines()[0]


def _migrate_locked(connection: Connection, before: Optional[str]) -> None:
    """Bring the database from revision `before` to head, on a connection holding the schema lock."""
    shown = describe_database(connection.engine.url)
    if before is None and not inspect(connection).get_table_names():
        Base.metadata.create_all(connection)
        VERSION_TABLE.create(connection)
        connection.execute(VERSION_TABLE.insert().values(version_num=HEAD_REVISION))
        return
    if before is None and _has_every_model_column(connection):
        # Its revision record was lost (the table dropped, or the file rebuilt table by table), not its schema.
        VERSION_TABLE.create(connection)
        connection.execute(VERSION_TABLE.insert().values(version_num=HEAD_REVISION))
        log.warning("%s had every table of schema %s but no record of its revision: recorded it", shown, HEAD_REVISION)
        return
    from db.migrations import runner  # Alembic, imported only when a database needs it

    if before is not None and before not in runner.known_revisions():
        raise SchemaTooNew(f"{shown} was written by a newer listing-audit (schema {before}); upgrade listing-audit")
    broken_before = _foreign_key_violations(connection)
    try:
        runner.upgrade(connection)
    except (OperationalError, ProgrammingError) as error:  # a schema no release wrote: rolled back by the caller
        raise DatabaseAccessError(
            f"cannot upgrade {shown} from schema {before or 'none'}: its tables are not those of any listing-audit "
            f"release ({_first_line(error)}); nothing was changed") from error
    broken_after = _foreign_key_violations(connection)
    if broken_after > broken_before:
        raise DatabaseAccessError(
            f"upgrading {shown} from schema {before or 'none'} would leave rows that point at missing rows "
            f"({broken_after - broken_before}); nothing was changed"
        )
    log.info("upgraded the database %s from schema %s to %s", shown, before or "(none)", HEAD_REVISION)


def _foreign_key_violations(connection: Connection) -> int:
    """SQLite: rows whose foreign key points at no row (PRAGMA foreign_key_check). PostgreSQL enforces them: 0."""
    if not is_sqlite(connection.engine.url):
        return 0
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
    """Take the database's write lock as the session's first statement, waiting at most `wait_s` seconds.

    SQLite: BEGIN IMMEDIATE. A deferred transaction that reads and then writes
    has to upgrade its read lock, and in WAL mode SQLite refuses that upgrade
    at once (SQLITE_BUSY, no busy timeout) when another connection wrote in
    between. Taking the write lock first means the reads that follow see the
    latest state and the writes cannot be refused.
    PostgreSQL: a transaction-level advisory lock, so short writes are
    serialised as on SQLite and a decision's reads see every decision committed
    before it. Either way a lock not had in time raises DatabaseBusy.
    """
    connection = session.connection()
    wait_ms = max(1, int(wait_s * 1000))
    if not is_sqlite(connection.engine.url):
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {BUSY_TIMEOUT_MS}")
        return
    connection.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def write_transaction(factory: sessionmaker[Session], work: Callable[[Session], T], *,
                      budget_s: Optional[float] = None) -> T:
    """Run `work(session)` in one short write transaction and commit it; returns what `work` returned.

    The transaction starts by taking the write lock (`begin_immediate`). While another process holds
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
