"""`listing-audit db current|upgrade`, and --db / $LISTING_AUDIT_DB refusing database URLs instead of making folders."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from db.migrations import HEAD_REVISION
from tests.cli import run_cli

RELEASE_DB = Path(__file__).resolve().parents[1] / "fixtures" / "db" / "release-2026-11.db"


@pytest.fixture
def release_db(tmp_path) -> Path:
    """A copy of a database written before schema revisions (see tests/fixtures/db/README.md)."""
    return Path(shutil.copy(RELEASE_DB, tmp_path / "release.db"))


def test_db_current_and_upgrade_print_the_revision_before_and_after(capsys, release_db):
    code, out, _ = run_cli(capsys, "db", "current", "--db", release_db)
    assert code == 0
    assert out == (f"none (new, or written before schema revisions); head is {HEAD_REVISION}: "
                   "run `listing-audit db upgrade`\n")

    code, out, _ = run_cli(capsys, "db", "upgrade", "--db", release_db)
    assert (code, out) == (0, f"upgraded {release_db}: schema none -> {HEAD_REVISION}\n")

    code, out, _ = run_cli(capsys, "db", "current", "--db", release_db)
    assert (code, out) == (0, f"{HEAD_REVISION} (head)\n")
    code, out, _ = run_cli(capsys, "db", "upgrade", "--db", release_db)
    assert (code, out) == (0, f"{release_db} is at schema {HEAD_REVISION} (head); nothing to upgrade\n")


def test_db_commands_read_the_database_from_the_environment(capsys, release_db, monkeypatch):
    monkeypatch.setenv("LISTING_AUDIT_DB", str(release_db))
    assert run_cli(capsys, "db", "upgrade")[1] == f"upgraded {release_db}: schema none -> {HEAD_REVISION}\n"


def test_db_current_names_an_older_revision_and_the_command_to_run(capsys, release_db):
    run_cli(capsys, "db", "upgrade", "--db", release_db)
    _sqlite(release_db, "UPDATE alembic_version SET version_num = '0001_baseline'")
    code, out, _ = run_cli(capsys, "db", "current", "--db", release_db)
    assert (code, out) == (0, f"0001_baseline; head is {HEAD_REVISION}: run `listing-audit db upgrade`\n")


def test_a_database_from_a_newer_version_is_named_and_refused(capsys, release_db):
    run_cli(capsys, "db", "upgrade", "--db", release_db)
    _sqlite(release_db, "UPDATE alembic_version SET version_num = '0099_from_the_future'")
    code, out, _ = run_cli(capsys, "db", "current", "--db", release_db)
    assert code == 0 and out.startswith("0099_from_the_future (newer than this listing-audit knows")
    refusal = (f"error: {release_db} was written by a newer listing-audit (schema 0099_from_the_future); "
               "upgrade listing-audit\n")
    assert run_cli(capsys, "db", "upgrade", "--db", release_db) == (2, "", refusal)
    assert run_cli(capsys, "history", release_db.parent, "--db", release_db) == (2, "", refusal)


def test_db_commands_create_no_database(capsys, tmp_path):
    missing = tmp_path / "nowhere" / "none.db"
    for command in ("current", "upgrade"):
        assert run_cli(capsys, "db", command, "--db", missing) == (2, "", f"error: no database at {missing}\n")
    assert not missing.parent.exists()


UNSUPPORTED = "mysql://reviewer:secret@db.example/listings"
REFUSAL = ("error: unsupported database mysql://reviewer:***@db.example/listings: give the path of a SQLite file "
           "or a postgresql+psycopg://user@host/db URL\n")
#: Nothing listens on port 1 of this machine.
UNREACHABLE = "postgresql://reviewer:secret@127.0.0.1:1/listings"


def test_an_unsupported_database_url_is_refused_not_taken_for_a_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "history", tmp_path, "--db", UNSUPPORTED) == (2, "", REFUSAL)
    monkeypatch.setenv("LISTING_AUDIT_DB", UNSUPPORTED)
    assert run_cli(capsys, "history", tmp_path) == (2, "", REFUSAL)
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_cannot_be_reached_is_one_line_without_the_password(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "history", tmp_path, "--db", UNREACHABLE)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.startswith("error: cannot connect to the database "
                          "postgresql+psycopg://reviewer:***@127.0.0.1:1/listings: ")
    assert "secret" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_url_names_the_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "history", tmp_path, "--db", "sqlite:///listing.db")
    assert code == 2 and "is not in the database" in err  # the database opened; the folder was never scanned
    assert {path.name for path in tmp_path.iterdir()} <= {"listing.db", "listing.db-wal", "listing.db-shm"}
    assert run_cli(capsys, "db", "current", "--db", f"sqlite:///{tmp_path / 'listing.db'}")[1] == \
        f"{HEAD_REVISION} (head)\n"


def _sqlite(path: Path, sql: str) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute(sql)
        connection.commit()
    finally:
        connection.close()
