"""Corrections: old_price and new_price, for a reviewer's fix of a listing's price (nullable, not written yet).

Revision ID: 0002_correction_prices
Revises: 0001_baseline
Create Date: 2026-11-30 16:44:17.815896
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002_correction_prices"
down_revision: Union[str, Sequence[str], None] = "0001_baseline"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("corrections") as batch_op:
        batch_op.add_column(sa.Column("old_price", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("new_price", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("corrections") as batch_op:
        batch_op.drop_column("new_price")
        batch_op.drop_column("old_price")
