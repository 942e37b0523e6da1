"""Alembic run in code on a connection that db.engine opened: upgrade it, list the known revisions.

No alembic.ini: the Config is built here, with script_location pointing at this folder.
The caller owns the connection and its transaction (env.py runs inside it).
"""
from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from db.migrations import MIGRATIONS_DIR


def migrations_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for db/migrations; env.py runs the revisions on `connection` when one is given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def known_revisions() -> set[str]:
    """Every revision id in versions/."""
    scripts = ScriptDirectory.from_config(migrations_config())
    return {script.revision for script in scripts.walk_revisions()}


def head_revision() -> str:
    """The newest revision in versions/ (there is one head: revisions form a line)."""
    return ScriptDirectory.from_config(migrations_config()).get_current_head()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Run the revisions after the database's current one up to `revision`, inside the caller's transaction."""
    command.upgrade(migrations_config(connection), revision)
