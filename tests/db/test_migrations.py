"""Schema revisions: opening a database brings it to head; the revisions and db.models describe one schema.

The release fixture (tests/fixtures/db/README.md says how it was made) is a
database written before revisions; every test works on a copy in tmp_path.
"""
from __future__ import annotations

import logging
import multiprocessing
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, select

from db.engine import (
    DatabaseAccessError, SchemaTooNew, make_engine, make_session_factory, stored_revision, upgrade_schema,
)
from db.migrations import HEAD_REVISION, MIGRATIONS_DIR, runner
from db.models import Base, Correction, Flag, Job, Sample, Setting, TrainEpoch

RELEASE_DB = Path(__file__).resolve().parents[1] / "fixtures" / "db" / "release-2026-11.db"
#: Rows per table in the release fixture, counted when it was made.
RELEASE_COUNTS = {"datasets": 1, "samples": 15, "flags": 5, "corrections": 5, "jobs": 3, "train_epochs": 1,
                  "settings": 1, "embeddings": 0}


@pytest.fixture
def release_db(tmp_path) -> Path:
    """A copy of the database written by the release before revisions."""
    return Path(shutil.copy(RELEASE_DB, tmp_path / "release.db"))


def _sqlite(path: Path, sql: str) -> list[tuple]:
    """Run `sql` on the file with plain sqlite3 (no engine, so no upgrade), committing; returns its rows."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(sql).fetchall()
        connection.commit()
        return rows
    finally:
        connection.close()


def _schema_differences(engine) -> list:
    """What Alembic's autogenerate would change to make the database match db.models (empty: they agree)."""
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def _revision(engine) -> str | None:
    with engine.connect() as connection:
        return stored_revision(connection)


def test_head_revision_names_the_newest_revision_in_versions():
    assert runner.head_revision() == HEAD_REVISION


def test_revisions_from_an_empty_database_build_exactly_the_models(db_path):
    engine = make_engine(db_path, upgrade=False)
    with engine.connect() as connection:
        runner.upgrade(connection)
        connection.commit()
    assert _revision(engine) == HEAD_REVISION
    assert _schema_differences(engine) == []
    engine.dispose()


def test_a_new_database_is_created_at_head_and_reads_so_to_alembic(db_path):
    engine = make_engine(db_path)
    assert _revision(engine) == HEAD_REVISION
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == HEAD_REVISION
    assert _schema_differences(engine) == []
    engine.dispose()


def test_the_release_database_is_upgraded_with_every_row_intact(release_db):
    engine = make_engine(release_db)
    assert _revision(engine) == HEAD_REVISION
    assert _schema_differences(engine) == []
    for table, count in RELEASE_COUNTS.items():
        with engine.connect() as connection:
            assert connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == count, table
    factory = make_session_factory(engine)
    with factory() as session:
        decisions = session.scalars(select(Correction).order_by(Correction.id)).all()
        assert [(c.sample_id, c.action, c.old_label, c.new_label, c.deleted, c.reviewer, c.note)
                for c in decisions] == [
            (15, "relabel", "shoe", "bag", False, "ana", "it is a bag"),
            (6, "delete", "phone", "phone", True, "ben", "duplicate listing"),
            (10, "delete", "shoe", "shoe", True, "ana", ""),
            (3, "keep", "bag", "bag", False, "ben", ""),
            (6, "undo", "phone", "phone", False, "ben", ""),
        ]
        assert (decisions[4].previous_id, decisions[4].reverts_id) == (2, 2)
        assert all(c.old_price is None and c.new_price is None for c in decisions)
        assert session.get(Sample, 15).path == "shoe/shoe-copy.png"
        flags = session.scalars(select(Flag).order_by(Flag.id)).all()
        assert [(f.job_id, f.sample_id, f.kind, f.group_id) for f in flags] == [
            (2, 10, "broken", None), (2, 1, "duplicate", 1), (2, 6, "duplicate", 2), (2, 7, "duplicate", 2),
            (2, 15, "duplicate", 1),
        ]
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        assert [(j.kind, j.status) for j in jobs] == [("scan", "succeeded"), ("audit", "succeeded"),
                                                      ("train", "succeeded")]
        epoch = session.scalars(select(TrainEpoch)).one()
        assert (epoch.job_id, epoch.epoch) == (3, 0)
        assert session.get(Setting, "database_id").value == "efa4ff1ccfa74980bbf628f0b5d2d43e"
    with engine.connect() as connection:  # the migration turned foreign keys off on its connection only
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_an_old_database_lacking_a_newer_table_and_index_gets_them(release_db):
    _sqlite(release_db, "DROP TABLE settings")
    _sqlite(release_db, "DROP INDEX ix_corrections_batch_id")
    engine = make_engine(release_db)
    assert _schema_differences(engine) == []
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count(Correction.id))) == RELEASE_COUNTS["corrections"]
    engine.dispose()


def _database_at(path: Path, revision: str) -> Path:
    """A new database file at `path` brought by the revisions up to `revision` only."""
    engine = make_engine(path, upgrade=False)
    with engine.connect() as connection:
        runner.upgrade(connection, revision)
        connection.commit()
    engine.dispose()
    return path


def test_a_database_at_an_older_revision_is_upgraded(tmp_path):
    path = _database_at(tmp_path / "old.db", "0001_baseline")
    assert "old_price" not in {row[1] for row in _sqlite(path, "PRAGMA table_info(corrections)")}

    engine = make_engine(path)
    assert upgrade_schema(engine) == (HEAD_REVISION, HEAD_REVISION)  # already done by make_engine
    assert _revision(engine) == HEAD_REVISION
    assert _schema_differences(engine) == []
    engine.dispose()


def test_jobs_made_before_job_numbers_are_numbered_per_kind_in_the_order_they_were_made(tmp_path):
    path = _database_at(tmp_path / "runs.db", "0005_evaluation_split")
    _sqlite(path, "INSERT INTO datasets (id, name, root, created_at) VALUES (1, 'd', '/d', '2026-01-01')")
    for job_id, kind in enumerate(["scan", "audit", "train", "audit", "train"], start=1):
        _sqlite(path, f"INSERT INTO jobs (id, dataset_id, kind, status, params_json, progress, message, "
                      f"cancel_requested, created_at) VALUES ({job_id}, 1, '{kind}', 'succeeded', '{{}}', 1, '', 0, "
                      "'2026-01-01')")
    make_engine(path).dispose()
    assert _sqlite(path, "SELECT id, number FROM jobs ORDER BY id") == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]


def test_a_database_from_a_newer_version_is_refused_in_one_line(tmp_path):
    path = tmp_path / "newer.db"
    make_engine(path).dispose()
    _sqlite(path, "UPDATE alembic_version SET version_num = '0099_from_the_future'")
    with pytest.raises(SchemaTooNew) as refused:
        make_engine(path)
    assert str(refused.value) == (f"{path} was written by a newer listing-audit (schema 0099_from_the_future); "
                                  "upgrade listing-audit")
    assert _sqlite(path, "SELECT version_num FROM alembic_version") == [("0099_from_the_future",)]


def test_a_current_database_that_lost_its_revision_record_is_recorded_at_head_with_its_rows(tmp_path, caplog):
    path = tmp_path / "lost.db"
    factory = make_session_factory(make_engine(path))
    with factory.begin() as session:
        session.add(Setting(key="kept", value="yes"))
    factory.kw["bind"].dispose()
    _sqlite(path, "DROP TABLE alembic_version")
    with caplog.at_level(logging.WARNING, logger="db.engine"):
        engine = make_engine(path)
    assert "no record of its revision: recorded it" in caplog.text
    assert _revision(engine) == HEAD_REVISION and _schema_differences(engine) == []
    with make_session_factory(engine)() as session:
        assert session.scalars(select(Setting.value).where(Setting.key == "kept")).all() == ["yes"]
    engine.dispose()


def test_a_schema_no_release_wrote_is_refused_in_one_line_and_left_as_it_was(tmp_path):
    """Revision 0002's column without its record: running the revisions from the baseline would add it twice."""
    path = _database_at(tmp_path / "odd.db", "0002_correction_prices")
    _sqlite(path, "DROP TABLE alembic_version")
    before = _sqlite(path, "SELECT name FROM sqlite_master ORDER BY name")
    with pytest.raises(DatabaseAccessError) as refused:
        make_engine(path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"cannot upgrade {path} from schema none: its tables are not")
    assert "duplicate column name" in message and message.endswith("nothing was changed")
    assert _sqlite(path, "SELECT name FROM sqlite_master ORDER BY name") == before


def test_opening_an_up_to_date_database_takes_one_select(release_db):
    make_engine(release_db).dispose()
    engine = make_engine(release_db, upgrade=False)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    upgrade_schema(engine)
    assert len(statements) == 1 and "alembic_version" in statements[0]
    engine.dispose()


def _open_and_report_upgrades(path: str, barrier, results) -> None:
    """Child process: wait for the other, open the database, report the upgrades that this process logged
    (or the error that stopped it, so that the test fails at once rather than waiting for a report)."""
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger = logging.getLogger("db.engine")
    logger.addHandler(Collect())
    logger.setLevel(logging.INFO)
    barrier.wait(timeout=60)
    try:
        make_engine(path).dispose()
    except Exception as error:  # reported to the parent, which fails the test with it
        results.put(f"{type(error).__name__}: {error}")
        raise
    results.put([message for message in messages if message.startswith("upgraded")])


def _upgrades_by_two_processes_at_once(location) -> list[int]:
    """Open the database from two fresh processes at the same moment; how many upgrades each logged, sorted."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as two CLI commands would be
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_open_and_report_upgrades, args=(str(location), barrier, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(isinstance(report, list) for report in reports), reports
    assert [worker.exitcode for worker in workers] == [0, 0]
    return sorted(len(report) for report in reports)


def test_opening_a_database_before_wal_while_another_connection_writes_it_waits_for_that_write(release_db):
    """The release database is in rollback-journal mode: switching it to WAL fails at once, without the busy
    handler, while another connection holds its write lock (the race of two processes opening it together)."""
    assert _sqlite(release_db, "PRAGMA journal_mode") == [("delete",)]
    writer = sqlite3.connect(release_db, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    finish = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    finish.start()
    started = time.monotonic()
    try:
        engine = make_engine(release_db)
    finally:
        finish.join()
        writer.close()
    assert time.monotonic() - started >= 0.4
    assert _revision(engine) == HEAD_REVISION and _sqlite(release_db, "PRAGMA journal_mode") == [("wal",)]
    engine.dispose()


def test_two_processes_opening_one_old_database_migrate_it_once(release_db):
    assert _upgrades_by_two_processes_at_once(release_db) == [0, 1]
    assert _sqlite(release_db, "SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]
    assert _sqlite(release_db, "SELECT count(*) FROM corrections") == [(RELEASE_COUNTS["corrections"],)]


def test_two_processes_opening_one_database_at_an_older_revision_upgrade_it_once(db_path):
    engine = make_engine(db_path, upgrade=False)
    with engine.connect() as connection:
        runner.upgrade(connection, "0002_correction_prices")
        connection.commit()
    assert _upgrades_by_two_processes_at_once(db_path) == [0, 1]
    assert _revision(engine) == HEAD_REVISION and _schema_differences(engine) == []
    engine.dispose()


def _add_revision(tmp_path: Path, monkeypatch, upgrade_source: str) -> str:
    """Open databases with a copy of db/migrations that has one more revision, 0003_test, whose upgrade() is
    `upgrade_source`."""
    migrations = Path(shutil.copytree(MIGRATIONS_DIR, tmp_path / "migrations",
                                      ignore=shutil.ignore_patterns("__pycache__")))
    header = f'from alembic import op\n\nrevision = "0003_test"\ndown_revision = "{HEAD_REVISION}"\n\n\n'
    (migrations / "versions" / "0003_test.py").write_text(header + upgrade_source)
    monkeypatch.setattr(runner, "MIGRATIONS_DIR", migrations)
    monkeypatch.setattr("db.engine.HEAD_REVISION", "0003_test")
    return "0003_test"


def _counts(path: Path, tables) -> dict[str, int]:
    return {table: _sqlite(path, f"SELECT count(*) FROM {table}")[0][0] for table in tables}


def test_a_revision_that_copies_a_table_keeps_the_rows_that_refer_to_it(release_db, tmp_path, monkeypatch):
    """Batch mode drops and recreates a table; with foreign keys on, dropping `samples` would delete every
    flag and decision (ON DELETE CASCADE). The upgrade runs with them off."""
    revision = _add_revision(tmp_path, monkeypatch, (
        "def upgrade():\n"
        "    with op.batch_alter_table('samples', recreate='always'):\n"
        "        pass\n"
    ))
    engine = make_engine(release_db)
    assert _revision(engine) == revision
    engine.dispose()
    assert _counts(release_db, ("samples", "flags", "corrections")) == {
        table: RELEASE_COUNTS[table] for table in ("samples", "flags", "corrections")}


def test_a_revision_that_would_break_references_is_undone(release_db, tmp_path, monkeypatch):
    _add_revision(tmp_path, monkeypatch, "def upgrade():\n    op.execute('DELETE FROM samples WHERE id = 1')\n")
    with pytest.raises(DatabaseAccessError) as refused:
        make_engine(release_db)
    assert str(refused.value) == (f"upgrading {release_db} from schema none would leave rows that point at missing "
                                  "rows (1); nothing was changed")  # sample 1 has one flag
    assert _counts(release_db, ("samples",)) == {"samples": RELEASE_COUNTS["samples"]}
    assert _sqlite(release_db, "SELECT name FROM sqlite_master WHERE name = 'alembic_version'") == []
