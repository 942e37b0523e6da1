"""A scanned tiny dataset with a finished audit job and a few flags of each kind, for the review tests.

Flags are written directly (what an audit would store), so these tests do not
depend on the audit engine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.embeddings import DbEmbeddingStore
from db.models import Flag, Job, Sample, utcnow
from jobs.scan import scan_dataset
from tests.pages.tiny_dataset import build_tiny_dataset

#: path -> (kind, score, suggested label, group, reason, evidence) of the planted flags, worst first.
PLANTED_FLAGS = {
    "shoe/broken.jpg": ("broken", 0.0, None, None, "cannot decode: not an image", {}),
    "bag/bag-0.png": ("mislabel", 0.05, "phone", None, "looks like a phone", {
        "suggested_probability": 0.91, "top3": [["phone", 0.91], ["bag", 0.06], ["shoe", 0.03]],
        "members": [  # each evidence member's own vote, as core.audit.checks.mislabel.member_votes writes them
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


def add_weak_audit(factory: sessionmaker[Session], data: ReviewData, flags: dict, mislabel_summary: dict) -> int:
    """A newer audit (half a minute ago) with `flags` (as add_flags) whose mislabel check summarised
    `mislabel_summary` (core.audit.checks.mislabel: weak evidence, a budget, ...); returns its id."""
    with factory.begin() as session:
        job_id = add_audit_job(session, data.dataset_id, minutes_ago=0.5)
        session.get(Job, job_id).result_json = json.dumps({"checks": {"mislabel": mislabel_summary}})
        add_flags(session, job_id, data.sample_ids, flags)
    return job_id


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


#: A price flag's evidence as core.audit.checks.price writes it when similar photos set the expected price
#: (phone-2 listed at 12,990: a slipped decimal point of 1,299.00).
EXPECTED_PRICE_EVIDENCE = {
    "price": 12990.0, "class_median": 315.0, "typical_low": 150.0, "typical_high": 660.0, "z": 9.1,
    "best_class": "phone", "best_class_median": 315.0, "best_class_z": 9.1, "fits_other_class": False,
    "expected_price": 1150.0, "expected_low": 900.0, "expected_high": 1400.0, "p_value": 1e-9,
    "weights": {"photo": 0.9, "title": 0.004, "class sample": 0.06, "class": 0.036},
    "similar_source": "photo", "similar_count": 20,
    "similar": [{"path": "phone/phone-0.png", "price": 1050.0}, {"path": "phone/phone-1.png", "price": 1299.0}],
    "suggested_price": 1299.0,
}


def plant_expected_price_flag(factory: sessionmaker[Session], data: ReviewData) -> None:
    """List phone-2 at 12,990 and give its price flag EXPECTED_PRICE_EVIDENCE and the reason that goes with it."""
    with factory.begin() as session:
        session.get(Sample, data.sample_ids["phone/phone-2.png"]).price = 12990.0
        flag = session.get(Flag, data.flag_ids["phone/phone-2.png"])
        flag.evidence_json = json.dumps(EXPECTED_PRICE_EVIDENCE)
        flag.reason = "price 12,990.00 is outside the expected 900.00-1,400.00"


def store_embeddings_by_folder(factory, *, phones_filed_as_bags: tuple[str, ...] = ("bag/bag-0.png",)) -> None:
    """Cache a photo embedding per readable sample: one direction per folder class, bag-0 (and any other of
    `phones_filed_as_bags`) close to the phones."""
    directions = {"bag": [0.0, 1.0, 0.0], "phone": [1.0, 0.0, 0.0], "shoe": [0.0, 0.0, 1.0]}
    with factory() as session:
        rows = session.query(Sample.path, Sample.content_hash).filter(Sample.readable).all()
    vectors = {content_hash: np.array(directions[path.split("/")[0]]) for path, content_hash in rows}
    for path in phones_filed_as_bags:
        vectors[dict(rows)[path]] = np.array([1.0, 0.3, 0.0])
    DbEmbeddingStore(factory).put_many(vectors, "mobilenet_v2@160/whole1")
