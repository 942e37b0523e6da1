"""Samples: file_size and mtime_ns as 64-bit integers on PostgreSQL (SQLite's INTEGER already is).

mtime_ns (nanoseconds since 1970) passed 2**31 in 1970 and file sizes can; a
32-bit INTEGER on PostgreSQL refuses them. Nothing changes on SQLite.

Revision ID: 0003_postgres_big_integers
Revises: 0002_correction_prices
Create Date: 2026-11-30 18:58:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003_postgres_big_integers"
down_revision: Union[str, Sequence[str], None] = "0002_correction_prices"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = ("file_size", "mtime_ns")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.alter_column("samples", column, type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.alter_column("samples", column, type_=sa.Integer(), existing_type=sa.BigInteger())
