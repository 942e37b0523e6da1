"""The schema versions of the listing-audit database: Alembic revisions in versions/, run by db.engine.

HEAD_REVISION names the newest revision, so that opening an up-to-date database
needs one SELECT and no Alembic import (importing Alembic takes about 0.3 s).
tests/db/test_migrations.py checks that it is the head of versions/.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

MIGRATIONS_DIR = Path(__file__).resolve().parent
#: The revision that db.models describes; update it with every new revision.
HEAD_REVISION = "0006_job_numbers"

#: Alembic's table of the database's revision, as Alembic itself defines it
#: (alembic.ddl.impl.DefaultImpl.version_table_impl), for stamping a new database without Alembic.
VERSION_TABLE = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
