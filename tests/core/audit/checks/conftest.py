"""Fixtures for the check tests: a real dataset folder scanned into a temporary database, as an AuditContext."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.audit.checks.base import AuditContext
from db.queries import dataset_classes
from jobs.audit import audit_samples
from jobs.scan import scan_dataset


@pytest.fixture
def scanned_context(factory):
    """scanned_context(root) -> AuditContext of the dataset at `root` after a real scan (current labels)."""

    def build(root: Path, **options) -> AuditContext:
        dataset_id = scan_dataset(factory, root, workers=1)["dataset_id"]
        with factory() as session:
            samples = audit_samples(session, dataset_id)
            classes = dataset_classes(session, dataset_id)
        return AuditContext(samples=samples, classes=classes, root=Path(root), **options)

    return build
