"""A throwaway PostgreSQL server for the tests, and a fresh database on it per test.

The server is started once per test run by scripts/pg_throwaway.sh (initdb in a
temporary folder, 127.0.0.1 only) and stopped when the run ends, also when it
fails; $LISTING_AUDIT_TEST_POSTGRES names an already running server instead
(its URL, with a user allowed to CREATE DATABASE). Without PostgreSQL installed
the PostgreSQL cases are skipped, except under LISTING_AUDIT_REQUIRE_POSTGRES=1
(`make test`), where that is a failed set-up.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

SERVER_ENV = "LISTING_AUDIT_TEST_POSTGRES"
REQUIRE_ENV = "LISTING_AUDIT_REQUIRE_POSTGRES"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg_throwaway.sh"
#: The backends the db/, jobs/ and cli/ tests run against (the `db_path` fixture's parameters).
BACKENDS = ("sqlite", "postgresql")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here."""


def postgres_installed() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@contextmanager
def throwaway_server() -> Iterator[str]:
    """The URL of a PostgreSQL server (admin database `postgres`) for as long as the context lasts."""
    existing = os.environ.get(SERVER_ENV)
    if existing:
        yield existing
        return
    if not postgres_installed():
        raise PostgresUnavailable("PostgreSQL is not installed (Debian package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="listing-audit-test-pg-"))
    try:
        started = subprocess.run([str(SCRIPT), "start", str(folder / "server")], capture_output=True, text=True)
        if started.returncode != 0:
            raise PostgresUnavailable(f"cannot start PostgreSQL: {started.stderr.strip() or started.stdout.strip()}")
        yield started.stdout.strip()
    finally:
        subprocess.run([str(SCRIPT), "stop", str(folder / "server")], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


class DatabaseMaker:
    """Creates and drops databases on one server through an AUTOCOMMIT connection to its admin database."""

    def __init__(self, server_url: str) -> None:
        self.server_url = make_url(server_url)
        self._admin: Engine = create_engine(self.server_url, isolation_level="AUTOCOMMIT")

    def create(self) -> str:
        """A new, empty database; returns its URL as text (password kept, for the code under test)."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return self.server_url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        """Drop the database, disconnecting whatever still uses it (a child process, a leaked pool)."""
        name = make_url(url).database
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def dispose(self) -> None:
        self._admin.dispose()
