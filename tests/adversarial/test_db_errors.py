"""A database file that cannot be used is one line for the user, never a traceback: CLI, worker and app.

Each case is a real file: text, a folder, a corrupted SQLite file, a read-only
database, and a database whose write lock another connection holds.
"""
from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from cli.main import main
from db.engine import make_engine, make_session_factory
from db.corrections import decide
from db.models import Correction, Sample
from tests.cli import run_cli
from tests.db.test_engine import corrupt, write_lock_held
from tests.review_data import CLASSES, build_review_data

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def one_error_line(err: str) -> str:
    """The single `error: ...` line of a command's stderr (fails when there is more)."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0].removeprefix("error: ")


def decisions(db_path: Path) -> int:
    engine = make_engine(db_path)
    try:
        with make_session_factory(engine)() as session:
            return session.scalar(select(func.count(Correction.id)))
    finally:
        engine.dispose()


def test_a_text_file_as_db_is_one_line_from_the_real_command(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "correct", str(tmp_path), "a.png", "--keep", "--db", str(notes)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert one_error_line(result.stderr) == f"{notes} is not a listing-audit database (not SQLite)"
    assert notes.read_text() == "not a database\n" * 100


def test_a_folder_as_db_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "history", tmp_path, "--db", tmp_path)
    assert code == 2 and one_error_line(err) == f"{tmp_path} is a folder, not a database file"


def test_a_corrupted_db_is_one_line(capsys, tmp_path, db_path):
    engine = make_engine(db_path)
    data = build_review_data(tmp_path / "tiny", make_session_factory(engine))
    engine.dispose()
    corrupt(db_path)
    code, _, err = run_cli(capsys, "correct", data.root, "bag/bag-0.png", "--keep", "--db", db_path)
    assert code == 2
    assert one_error_line(err).startswith(f"{db_path} is corrupted (database disk image is malformed); restore it")


def run_cli_as_nobody(argv: list[str]) -> tuple[int, str, str]:
    """Run `listing-audit argv...` in a forked child that dropped root for user nobody: (exit code, stdout, stderr)."""
    receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)

    def child() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
        send.send((code, out.getvalue(), err.getvalue()))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=120)
    assert process.exitcode == 0 and receive.poll(), f"the child failed (exit code {process.exitcode})"
    return receive.recv()


def test_a_read_only_db_is_one_line_and_unchanged(capsys, tmp_path):
    # root writes to 0444 files anyway, so as root the command runs as user nobody; its folder must let nobody in
    folder = Path(tempfile.mkdtemp(prefix="read-only-db-"))
    try:
        folder.chmod(0o777)
        db_path = folder / "listing-audit.db"
        engine = make_engine(db_path)
        data = build_review_data(tmp_path / "tiny", make_session_factory(engine))
        engine.dispose()
        db_path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        argv = ["correct", str(data.root), "bag/bag-0.png", "--keep", "--reviewer", "ann", "--db", str(db_path)]
        code, _, err = run_cli_as_nobody(argv) if os.geteuid() == 0 else run_cli(capsys, *argv)
        assert code == 2
        assert one_error_line(err) == (
            f"{db_path} is read-only: attempt to write a readonly database; make the file and its folder writable"
        )
        assert decisions(db_path) == 0
    finally:
        shutil.rmtree(folder)


def test_a_db_where_nothing_can_be_written_is_read_and_a_write_is_one_line(capsys, tmp_path):
    """A read-only mount, or a folder the user may not write: SQLite cannot make its lock and WAL index files
    there, so the database is opened read-only (history, flags and export read it) and a decision is refused
    in one line. As root the commands run as user nobody, for whom the folder is read-only."""
    folder = Path(tempfile.mkdtemp(prefix="read-only-folder-"))
    try:
        db_path = folder / "listing-audit.db"
        engine = make_engine(db_path)
        factory = make_session_factory(engine)
        data = build_review_data(tmp_path / "tiny", factory)
        with factory.begin() as session:
            decide(session, session.get(Sample, data.sample_ids["bag/bag-0.png"]), "keep", classes=CLASSES,
                   reviewer="ann")
        engine.dispose()
        folder.chmod(0o555)
        run = run_cli_as_nobody if os.geteuid() == 0 else (lambda argv: run_cli(capsys, *argv))
        code, out, err = run(["history", str(data.root), "--db", str(db_path)])
        assert code == 0, err
        assert "bag/bag-0.png" in out and "keep" in out and "ann" in out
        code, out, err = run(["correct", str(data.root), "bag/bag-1.png", "--keep", "--reviewer", "bob",
                              "--db", str(db_path)])
        assert code == 2 and one_error_line(err) == (
            f"{db_path} is read-only: attempt to write a readonly database; make the file and its folder writable")
        assert sorted(path.name for path in folder.iterdir()) == ["listing-audit.db"]  # no lock or WAL files made
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_a_db_where_nothing_can_be_written_with_changes_left_in_its_wal_is_refused_in_one_line(capsys, tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="read-only-wal-"))
    try:
        db_path = folder / "listing-audit.db"
        build_review_data(tmp_path / "tiny", make_session_factory(make_engine(db_path)))
        (folder / "listing-audit.db-wal").write_bytes(b"\0" * 4096)  # as a writer killed mid-way leaves it
        folder.chmod(0o555)
        argv = ["history", str(tmp_path / "tiny"), "--db", str(db_path)]
        code, _, err = run_cli_as_nobody(argv) if os.geteuid() == 0 else run_cli(capsys, *argv)
        assert code == 2 and one_error_line(err) == (
            f"{db_path} is on read-only ground and its latest changes are still in listing-audit.db-wal, which "
            "cannot be merged there: open it once where it can be written")
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_a_locked_db_is_retried_then_one_busy_line(capsys, tmp_path, factory, db_path, monkeypatch):
    data = build_review_data(tmp_path / "tiny", factory)
    monkeypatch.setenv("LISTING_AUDIT_DB_RETRY_S", "0.5")
    argv = ["correct", data.root, "bag/bag-0.png", "--keep", "--reviewer", "ann", "--db", db_path]
    with write_lock_held(db_path):
        started = time.monotonic()
        code, out, err = run_cli(capsys, *argv)
        assert time.monotonic() - started < 5
    assert code == 2 and out == ""
    assert one_error_line(err) == f"the database {db_path} is busy, try again"
    assert decisions(db_path) == 0
    code, out, _ = run_cli(capsys, *argv)  # the lock is gone: the same command goes through
    assert code == 0 and out.startswith("kept bag/bag-0.png")
    assert decisions(db_path) == 1


@pytest.mark.parametrize("command", ["correct", "accept", "import"])
def test_a_lock_released_within_the_budget_is_waited_for(capsys, tmp_path, factory, db_path, monkeypatch, command):
    data = build_review_data(tmp_path / "tiny", factory)
    monkeypatch.setenv("LISTING_AUDIT_DB_RETRY_S", "20")
    log = tmp_path / "log.csv"
    log.write_text("id,created_at,path,action,old_label,new_label,was_deleted,deleted,reviewer,note,reverts_id,"
                   "flag_id,batch_id\n1,2026-11-30T10:00:00,bag/bag-0.png,keep,bag,bag,false,false,ann,,,,\n")
    argv = {"correct": ["correct", data.root, "bag/bag-0.png", "--keep"],
            "accept": ["accept", data.root, "--kinds", "broken"],
            "import": ["corrections", "import", data.root, log]}[command]
    with write_lock_held(db_path, for_s=1.0):
        code, out, err = run_cli(capsys, *argv, "--db", db_path)
    assert code == 0 and err == "" and decisions(db_path) == 1, (out, err)


@pytest.mark.parametrize("script", ["app.py", "pages/2_Review.py"])
def test_the_app_shows_the_same_line_instead_of_a_traceback(tmp_path, monkeypatch, script):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    monkeypatch.setenv("LISTING_AUDIT_DB", str(notes))
    app = AppTest.from_file(str(REPO / script), default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    assert [error.value for error in app.error] == [f"{notes} is not a listing-audit database (not SQLite)"]



@pytest.mark.parametrize("tables", [
    "CREATE TABLE samples (id INTEGER PRIMARY KEY, reading REAL)",  # a table named like ours, not ours
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
])
def test_another_programs_sqlite_database_is_refused_in_one_line_and_left_unchanged(capsys, tmp_path, tables):
    import sqlite3

    path = tmp_path / "theirs.db"
    connection = sqlite3.connect(path)
    connection.execute(tables)
    connection.commit()
    connection.close()
    before = path.read_bytes()
    code, _, err = run_cli(capsys, "history", tmp_path, "--db", path)
    assert code == 2
    assert one_error_line(err).startswith(f"{path} is another program's SQLite database (tables: ")
    assert path.read_bytes() == before and not Path(f"{path}-wal").exists()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    connection.close()


def test_a_malformed_postgres_url_is_one_line_without_its_password(capsys, tmp_path):
    code, _, err = run_cli(capsys, "history", tmp_path, "--db", "postgresql+psycopg://bob:secret@host:abc/x")
    assert code == 2
    line = one_error_line(err)
    assert line.startswith("malformed database URL postgresql+psycopg://bob:***@host:abc/x") and "secret" not in line
