"""Indexes for the Review page at a million samples.

The queue's counts and pages read an audit's flags through an index that holds every
column their conditions need (kind, duplicate group, sample), worst first, with or
without a kind; a class's prices come from an index without reading the samples, and
its examples from an index in content-hash order. They replace the narrower
(job, kind, score) and (dataset, label) indexes, which are their prefixes. Indexes
only: no table is copied, no row changes.

Revision ID: 0004_review_indexes
Revises: 0003_postgres_big_integers
Create Date: 2026-11-30 19:31:40.087824
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0004_review_indexes"
down_revision: Union[str, Sequence[str], None] = "0003_postgres_big_integers"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.drop_index("ix_flags_job_kind_score", table_name="flags")
    op.create_index("ix_flags_queue", "flags", ["job_id", "score", "id", "kind", "group_id", "sample_id"])
    op.create_index("ix_flags_queue_kind", "flags", ["job_id", "kind", "score", "id", "group_id", "sample_id"])
    op.drop_index("ix_samples_dataset_label", table_name="samples")
    op.create_index("ix_samples_class_hash", "samples", ["dataset_id", "label", "content_hash"])
    op.create_index("ix_samples_class_price", "samples", ["dataset_id", "label", "missing", "price"])


def downgrade() -> None:
    op.drop_index("ix_samples_class_price", table_name="samples")
    op.drop_index("ix_samples_class_hash", table_name="samples")
    op.create_index("ix_samples_dataset_label", "samples", ["dataset_id", "label"])
    op.drop_index("ix_flags_queue_kind", table_name="flags")
    op.drop_index("ix_flags_queue", table_name="flags")
    op.create_index("ix_flags_job_kind_score", "flags", ["job_id", "kind", "score"])
