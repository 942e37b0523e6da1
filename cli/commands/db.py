"""`listing-audit db current|upgrade [--db PATH|URL]`: the database's schema revision, and bringing it to this version's.

Every command already upgrades the database it opens; `db upgrade` does it on
purpose (before a backup, or to see what changed) and prints the revision before and after.
"""
from __future__ import annotations

import argparse
from typing import Optional

from sqlalchemy import Engine

from cli.common import CliError, add_db_option
from db.engine import (
    database_file, default_location, describe_database, make_engine, stored_revision, upgrade_schema,
)
from db.migrations import HEAD_REVISION

NO_REVISION = "none (new, or written before schema revisions)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("db", help="show or upgrade the database's schema revision")
    commands = parser.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    current = commands.add_parser("current", help="print the database's schema revision")
    add_db_option(current)
    current.set_defaults(func=run_current)
    upgrade = commands.add_parser("upgrade", help="upgrade the database to this version's schema")
    add_db_option(upgrade)
    upgrade.set_defaults(func=run_upgrade)


def _existing_database(args: argparse.Namespace) -> Engine:
    """The engine of the --db database, left at its revision; CliError when there is no such SQLite file
    (none is created). A server's database must exist already: connecting to it says so otherwise."""
    location = args.db or default_location()
    path = database_file(location)
    if path is not None and not path.is_file():
        raise CliError(f"no database at {path}")
    return make_engine(location, upgrade=False)


def describe(revision: Optional[str]) -> str:
    """`revision` for people: this version's, older (and what to run), or newer than this version knows."""
    if revision == HEAD_REVISION:
        return f"{revision} (head)"
    from db.migrations.runner import known_revisions  # Alembic: 0.3 s that the other commands need not pay

    if revision is not None and revision not in known_revisions():
        return f"{revision} (newer than this listing-audit knows, whose head is {HEAD_REVISION}; upgrade listing-audit)"
    return f"{revision or NO_REVISION}; head is {HEAD_REVISION}: run `listing-audit db upgrade`"


def run_current(args: argparse.Namespace) -> int:
    engine = _existing_database(args)
    try:
        with engine.connect() as connection:
            print(describe(stored_revision(connection)))
    finally:
        engine.dispose()
    return 0


def run_upgrade(args: argparse.Namespace) -> int:
    engine = _existing_database(args)
    try:
        before, after = upgrade_schema(engine)
    finally:
        engine.dispose()
    path = describe_database(engine.url)
    if before == after:
        print(f"{path} is at schema {after} (head); nothing to upgrade")
    else:
        print(f"upgraded {path}: schema {before or 'none'} -> {after}")
    return 0
