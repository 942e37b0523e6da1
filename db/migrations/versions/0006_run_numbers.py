"""Jobs: run_number, a training run's name in this database (Run 1, Run 2, ...), where runs used to be named
by their job id (the first run after a scan and three audits was "Run 5"). Existing runs are numbered in the
order they were made.

Revision ID: 0006_run_numbers
Revises: 0005_evaluation_split
Create Date: 2026-12-07 23:10:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006_run_numbers"
down_revision: Union[str, Sequence[str], None] = "0005_evaluation_split"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("run_number", sa.Integer(), nullable=True))
    op.execute("UPDATE jobs SET run_number = (SELECT COUNT(*) FROM jobs AS earlier "
               "WHERE earlier.kind = 'train' AND earlier.id <= jobs.id) WHERE kind = 'train'")
    op.create_index("ix_jobs_run_number", "jobs", ["run_number"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_jobs_run_number", table_name="jobs")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("run_number")
