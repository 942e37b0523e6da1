"""Jobs: number, a job's name among the jobs of its kind in this database (Run 1, Audit 1, ...), where jobs
used to be named by their id (the first training run after a scan and three audits was "Run 5"). Existing
jobs are numbered per kind in the order they were made.

Revision ID: 0006_job_numbers
Revises: 0005_evaluation_split
Create Date: 2026-12-07 23:10:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006_job_numbers"
down_revision: Union[str, Sequence[str], None] = "0005_evaluation_split"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("number", sa.Integer(), nullable=True))
    op.execute("UPDATE jobs SET number = (SELECT COUNT(*) FROM jobs AS earlier "
               "WHERE earlier.kind = jobs.kind AND earlier.id <= jobs.id)")
    op.create_index("ix_jobs_kind_number", "jobs", ["kind", "number"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_jobs_kind_number", table_name="jobs")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("number")
