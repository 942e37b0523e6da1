"""A scanned tiny dataset with a finished audit job and a few flags of each kind, for the review tests.

Flags are written directly (what an audit would store), so these tests do not
depend on the audit engine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Flag, Job, Sample, utcnow
from jobs.scan import scan_dataset
from tests.pages.tiny_dataset import build_tiny_dataset

#: path -> (kind, score, suggested label, group, reason, evidence) of the planted flags, worst first.
PLANTED_FLAGS = {
    "shoe/broken.jpg": ("broken", 0.0, None, None, "cannot decode: not an image", {}),
    "bag/bag-0.png": ("mislabel", 0.05, "phone", None, "looks like a phone", {
        "suggested_probability": 0.91, "top3": [["phone", 0.91], ["bag", 0.06], ["shoe", 0.03]],
        "members": [  # each evidence member's own vote, as core.checks.mislabel.member_votes writes them
            {"member": "photo", "label": "photo", "top": "phone", "probability": 0.84, "given_probability": 0.1,
             "weight": 1.1},
            {"member": "title", "label": "title", "top": "phone", "probability": 0.93, "given_probability": 0.02,
             "weight": 0.9, "title": "Old nokia, works", "words": ["nokia"]},
        ],
    }),
    "shoe/shoe-1.png": ("mislabel", 0.10, "bag", None, "looks like a bag", {
        "suggested_probability": 0.80, "top3": [["bag", 0.8], ["shoe", 0.15], ["phone", 0.05]],
    }),
    "phone/phone-2.png": ("price", 0.20, None, None, "price far above the class median", {
        "price": 320.0, "class_median": 315.0, "best_class": "phone",
    }),
    "bag/bag-1.png": ("duplicate", 0.30, None, 1, "exact duplicate", {"members": ["bag/bag-1.png", "bag/bag-2.png"]}),
    "bag/bag-2.png": ("duplicate", 0.30, None, 1, "exact duplicate", {"members": ["bag/bag-1.png", "bag/bag-2.png"]}),
    "phone/phone-3.png": ("mislabel", 0.40, "shoe", None, "looks like a shoe", {
        "suggested_probability": 0.55, "top3": [["shoe", 0.55], ["phone", 0.4], ["bag", 0.05]],
    }),
}
CLASSES = ["bag", "phone", "shoe"]


@dataclass(frozen=True)
class ReviewData:
    root: Path
    dataset_id: int
    job_id: int
    flag_ids: dict[str, int]  # path -> flag id
    sample_ids: dict[str, int]  # path -> sample id


def add_audit_job(session: Session, dataset_id: int, *, minutes_ago: float = 0.0) -> int:
    """A succeeded audit job created `minutes_ago` minutes ago; returns its id."""
    created = utcnow() - timedelta(minutes=minutes_ago)
    job = Job(dataset_id=dataset_id, kind="audit", status="succeeded", params_json="{}",
              created_at=created, finished_at=created, progress=1.0)
    session.add(job)
    session.flush()
    return job.id


def add_flags(session: Session, job_id: int, sample_ids: dict[str, int], flags: dict = PLANTED_FLAGS) -> dict[str, int]:
    """Write `flags` (path -> (kind, score, suggested, group, reason, evidence)) for job `job_id`."""
    ids = {}
    for path, (kind, score, suggested, group, reason, evidence) in flags.items():
        flag = Flag(job_id=job_id, sample_id=sample_ids[path], kind=kind, score=score,
                    given_label=path.split("/")[0], suggested_label=suggested, group_id=group,
                    reason=reason, evidence_json=json.dumps(evidence))
        session.add(flag)
        session.flush()
        ids[path] = flag.id
    return ids


def build_review_data(root: Path, factory: sessionmaker[Session], *, audit_minutes_ago: float = 1.0) -> ReviewData:
    """Write and scan the tiny dataset under `root`, then add an audit job with PLANTED_FLAGS."""
    build_tiny_dataset(root)
    summary = scan_dataset(factory, root, workers=1)
    with factory.begin() as session:
        sample_ids = dict(session.execute(
            select(Sample.path, Sample.id).where(Sample.dataset_id == summary["dataset_id"])
        ).all())
        job_id = add_audit_job(session, summary["dataset_id"], minutes_ago=audit_minutes_ago)
        flag_ids = add_flags(session, job_id, sample_ids)
    return ReviewData(Path(summary["root"]), summary["dataset_id"], job_id, flag_ids, sample_ids)
