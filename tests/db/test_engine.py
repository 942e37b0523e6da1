"""Tests of db/engine.py: pragmas, unusable files as one-line errors, and short writes that retry while busy."""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from db.engine import (
    WRITE_LOCK_KEY, DatabaseAccessError, DatabaseBusy, busy_message, classify_sqlite_error, database_file,
    describe_database, make_engine, make_session_factory, write_transaction,
)
from db.models import Dataset


def _take_write_lock(location):
    """Another connection holding the database's write lock (SQLite: BEGIN EXCLUSIVE; PostgreSQL: the advisory
    lock of db.engine.begin_immediate), and the statement that releases it."""
    if database_file(location) is not None:
        connection = sqlite3.connect(location, isolation_level=None, check_same_thread=False)
        connection.execute("BEGIN EXCLUSIVE")
        return connection, "COMMIT"
    connection = psycopg.connect(make_url(location).set(drivername="postgresql").render_as_string(False),
                                 autocommit=True)
    connection.execute(f"SELECT pg_advisory_lock({WRITE_LOCK_KEY})")
    return connection, f"SELECT pg_advisory_unlock({WRITE_LOCK_KEY})"


def write_lock_is_free_elsewhere(location) -> bool:
    """Whether another connection could take the database's write lock right now (without waiting)."""
    if database_file(location) is not None:
        other = sqlite3.connect(location, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as error:
            assert str(error) == "database is locked"
            return False
        finally:
            other.close()
    url = make_url(location).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url, autocommit=True) as other:
        return other.execute(f"SELECT pg_try_advisory_xact_lock({WRITE_LOCK_KEY})").fetchone()[0]


@contextmanager
def write_lock_held(location, *, for_s: float | None = None):
    """Hold the database's write lock from another connection inside the block,
    or, with `for_s`, from a thread that releases it after `for_s` seconds."""
    connection, release = _take_write_lock(location)
    releaser = threading.Timer(for_s, connection.execute, args=(release,)) if for_s is not None else None
    if releaser:
        releaser.start()
    try:
        yield connection
    finally:
        if releaser:
            releaser.join()
        else:
            connection.execute(release)
        connection.close()


def add_dataset(session, name: str = "shop") -> int:
    dataset = Dataset(root=f"/data/{name}", name=name)
    session.add(dataset)
    session.flush()
    return dataset.id


def count_datasets(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count(Dataset.id)))


@pytest.mark.sqlite_only
def test_every_connection_gets_wal_foreign_keys_and_a_busy_timeout(factory):
    with factory() as session:
        pragmas = {name: session.execute(text(f"PRAGMA {name}")).scalar() for name in
                   ("journal_mode", "foreign_keys", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30_000}


def test_a_write_transaction_commits_what_its_work_returns(factory):
    dataset_id = write_transaction(factory, add_dataset)
    with factory() as session:
        assert session.get(Dataset, dataset_id).name == "shop"


def test_a_write_transaction_holds_the_write_lock_from_its_first_statement(factory, db_path):
    assert write_lock_is_free_elsewhere(db_path)
    assert write_transaction(factory, lambda session: write_lock_is_free_elsewhere(db_path)) is False
    assert write_lock_is_free_elsewhere(db_path)


def test_a_write_transaction_waits_for_a_lock_released_within_its_budget(factory, db_path):
    with write_lock_held(db_path, for_s=0.6):
        started = time.monotonic()
        write_transaction(factory, add_dataset, budget_s=10)
        waited = time.monotonic() - started
    assert 0.4 < waited < 5
    assert count_datasets(factory) == 1


def test_a_write_transaction_retries_the_whole_transaction_after_a_busy_attempt(factory, db_path, monkeypatch, caplog):
    monkeypatch.setattr("db.engine.ATTEMPT_WAIT_S", 0.05)  # short attempts, so that several fail while locked
    caplog.set_level(logging.DEBUG, logger="db.engine")
    calls = []

    def work(session):
        calls.append(1)
        return add_dataset(session)

    with write_lock_held(db_path, for_s=0.5):
        write_transaction(factory, work, budget_s=10)
    assert len(calls) == 1  # `work` only runs once the lock is ours: failed attempts never reach it
    assert sum("database busy, retrying" in record.message for record in caplog.records) >= 2
    assert count_datasets(factory) == 1


def test_a_lock_held_past_the_budget_is_one_busy_line_and_nothing_is_written(factory, db_path, monkeypatch):
    monkeypatch.setenv("LISTING_AUDIT_DB_RETRY_S", "0.3")
    with write_lock_held(db_path):
        started = time.monotonic()
        with pytest.raises(DatabaseBusy) as caught:
            write_transaction(factory, add_dataset)
        assert time.monotonic() - started < 3
    shown = describe_database(db_path)
    assert str(caught.value) == busy_message(shown) == f"the database {shown} is busy, try again"
    assert count_datasets(factory) == 0


def test_other_errors_of_the_work_roll_back_at_once_without_retrying(factory):
    calls = []

    def work(session):
        calls.append(1)
        add_dataset(session)
        raise ValueError("not this one")

    with pytest.raises(ValueError, match="not this one"):
        write_transaction(factory, work)
    assert len(calls) == 1 and count_datasets(factory) == 0


def test_a_folder_is_refused_with_one_line(tmp_path):
    with pytest.raises(DatabaseAccessError, match=r"^.* is a folder, not a database file$"):
        make_engine(tmp_path)


def test_a_text_file_is_refused_and_left_as_it_was(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n" * 200)
    with pytest.raises(DatabaseAccessError) as caught:
        make_engine(notes)
    assert str(caught.value) == f"{notes} is not a listing-audit database (not SQLite)"
    assert notes.read_text() == "shopping list\n" * 200


def corrupt(path) -> None:
    """Keep the first page (a valid header and schema root) of the SQLite file at `path`; overwrite the rest."""
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    path.write_bytes(data[:page_size] + b"\x07" * (len(data) - page_size))


@pytest.mark.sqlite_only
def test_a_corrupted_database_is_refused_with_one_line(db_path):
    engine = make_engine(db_path)
    with make_session_factory(engine).begin() as session:
        add_dataset(session)
    engine.dispose()
    corrupt(db_path)
    with pytest.raises(DatabaseAccessError, match=r"^.* is corrupted \(database disk image is malformed\); restore"):
        make_engine(db_path)


@pytest.mark.sqlite_only
def test_a_write_refused_by_a_read_only_database_is_one_line(db_path):
    make_engine(db_path).dispose()
    read_only = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as caught:
        read_only.execute("INSERT INTO datasets (root, name) VALUES ('/x', 'x')")
    read_only.close()
    error = classify_sqlite_error(caught.value, db_path)
    assert str(error) == f"{db_path} is read-only: attempt to write a readonly database; make the file and its folder writable"


def test_errors_about_the_statement_keep_their_own_exception(factory):
    with pytest.raises(Exception) as caught:
        with factory() as session:
            session.execute(text("SELECT * FROM no_such_table"))
    assert not isinstance(caught.value, DatabaseAccessError)
    assert classify_sqlite_error(ValueError("not sqlite"), "x.db") is None
