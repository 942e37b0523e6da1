"""The evaluation split: each listing's side (evaluation or training), drawn once per dataset and shared by
every training run, so runs are compared on the same images. A new table only; no row changes.

Revision ID: 0005_evaluation_split
Revises: 0004_review_indexes
Create Date: 2026-12-07 11:40:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005_evaluation_split"
down_revision: Union[str, Sequence[str], None] = "0004_review_indexes"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "evaluation_split",
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("evaluation", sa.Boolean(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sample_id"], ["samples.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sample_id"),
    )
    op.create_index("ix_evaluation_split_dataset_id", "evaluation_split", ["dataset_id"])


def downgrade() -> None:
    op.drop_index("ix_evaluation_split_dataset_id", table_name="evaluation_split")
    op.drop_table("evaluation_split")
