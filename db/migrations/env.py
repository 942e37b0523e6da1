"""Alembic's environment for db/migrations: run the revisions on the connection listing-audit passes in.

db.engine hands over a connection that already holds the write lock (see
db.migrations.runner). From the `alembic` command line, used to write new
revisions, the database is the SQLite file named by `-x db=PATH`.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from db.models import Base


def run_migrations(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; Alembic's batch
    # mode copies the table instead, and autogenerate writes revisions that way.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_from_command_line() -> None:
    """`alembic -x db=PATH ...`: a scratch database for writing revisions (see db/migrations/README.md)."""
    from db.engine import make_engine

    path = context.get_x_argument(as_dictionary=True).get("db")
    if context.is_offline_mode() or not path:
        raise SystemExit("name the SQLite file to work on: alembic -x db=PATH ... (offline --sql mode is not supported)")
    engine = make_engine(path, upgrade=False)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
            connection.commit()
    finally:
        engine.dispose()


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    run_migrations(handed_over)
else:
    run_from_command_line()
