"""Flags stored per audit job, read back with paths, counted per kind and class, compared between audits."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from db.flags import (
    FLAG_FRAME_COLUMNS, audit_jobs, class_flag_counts, diff_flags, flag_counts, flags_frame, previous_audit_job,
    store_flags,
)
from db.models import Dataset, Job, Sample


@pytest.fixture
def dataset(factory):
    """A dataset with samples a/0..a/3 and b/0..b/1; returns (dataset id, {path: sample id})."""
    with factory.begin() as session:
        dataset = Dataset(root="/data/shop", name="shop")
        session.add(dataset)
        session.flush()
        samples = [Sample(dataset_id=dataset.id, path=f"{label}/{i}.jpg", label=label, file_size=1, mtime_ns=0)
                   for label, count in (("a", 4), ("b", 2)) for i in range(count)]
        session.add_all(samples)
        session.flush()
        return dataset.id, {s.path: s.id for s in samples}


def audit(factory, dataset_id, rows, *, checks=("mislabel", "price", "duplicate"), status="succeeded",
          class_sizes=None):
    """An audit job with flags given as (sample id, kind, score, suggested, group); returns its id."""
    with factory.begin() as session:
        job = Job(dataset_id=dataset_id, kind="audit", status=status, params_json=json.dumps({"checks": list(checks)}),
                  result_json=json.dumps({"class_sizes": class_sizes or {"a": 4, "b": 2}}))
        session.add(job)
        session.flush()
        flags = pd.DataFrame([
            {"sample_id": sample_id, "kind": kind, "score": score, "given_label": "a" if sample_id < 5 else "b",
             "suggested_label": suggested, "group": group, "reason": f"{kind} reason",
             "evidence": {"z": np.float64(4.5), "members": np.array([1, 2])}}
            for sample_id, kind, score, suggested, group in rows
        ], columns=["sample_id", "kind", "score", "given_label", "suggested_label", "group", "reason", "evidence"])
        assert store_flags(session, job.id, flags) == len(rows)
        return job.id


def test_flags_come_back_with_their_paths_worst_first(factory, dataset):
    dataset_id, ids = dataset
    job_id = audit(factory, dataset_id, [
        (ids["a/0.jpg"], "price", 0.3, None, None),
        (ids["a/1.jpg"], "mislabel", 0.1, "b", None),
        (ids["b/0.jpg"], "duplicate", 0.2, np.nan, 7),
    ])
    with factory() as session:
        frame = flags_frame(session, job_id)
        only_price = flags_frame(session, job_id, kind="price")
    assert list(frame.columns) == FLAG_FRAME_COLUMNS
    assert list(frame["path"]) == ["a/1.jpg", "b/0.jpg", "a/0.jpg"]
    assert list(frame["suggested_label"]) == ["b", None, None]
    assert list(frame["group"]) == [None, 7, None]
    assert frame["evidence"].iloc[0] == {"z": 4.5, "members": [1, 2]}
    assert list(only_price["path"]) == ["a/0.jpg"]


def test_each_audit_keeps_its_own_flags(factory, dataset):
    dataset_id, ids = dataset
    first = audit(factory, dataset_id, [(ids["a/0.jpg"], "price", 0.3, None, None)])
    second = audit(factory, dataset_id, [(ids["a/1.jpg"], "price", 0.2, None, None)])
    with factory() as session:
        assert list(flags_frame(session, first)["path"]) == ["a/0.jpg"]
        assert list(flags_frame(session, second)["path"]) == ["a/1.jpg"]
        assert [job.id for job in audit_jobs(session, dataset_id)] == [second, first]
        assert previous_audit_job(session, session.get(Job, second)).id == first
        assert previous_audit_job(session, session.get(Job, first)) is None


def test_failed_audits_are_not_previous_audits(factory, dataset):
    dataset_id, ids = dataset
    first = audit(factory, dataset_id, [])
    audit(factory, dataset_id, [], status="failed")
    third = audit(factory, dataset_id, [])
    with factory() as session:
        assert previous_audit_job(session, session.get(Job, third)).id == first
        assert len(audit_jobs(session, dataset_id, status=None)) == 3


def test_counts_per_kind_and_noisiest_classes(factory, dataset):
    dataset_id, ids = dataset
    job_id = audit(factory, dataset_id, [
        (ids["a/0.jpg"], "price", 0.3, None, None),
        (ids["a/0.jpg"], "mislabel", 0.1, "b", None),
        (ids["a/1.jpg"], "mislabel", 0.2, "b", None),
        (ids["b/0.jpg"], "duplicate", 0.2, None, 1),
    ])
    with factory() as session:
        assert flag_counts(session, job_id) == {"duplicate": 1, "mislabel": 2, "price": 1}
        table = class_flag_counts(session, job_id)
    assert list(table.index) == ["a", "b"]  # both half flagged: more flagged samples first
    assert table.loc["a", ["mislabel", "price", "duplicate", "flagged_samples", "samples"]].tolist() == [2, 1, 0, 2, 4]
    assert table.loc["b", "flagged_share"] == 0.5 and table.loc["a", "flagged_share"] == 0.5


def test_a_ranking_past_the_budget_is_not_counted_as_flags_of_its_class(factory, dataset):
    dataset_id, ids = dataset
    job_id = audit(factory, dataset_id, [(ids["a/1.jpg"], "mislabel", 0.1, "b", None),
                                         (ids["a/2.jpg"], "maybe_mislabel", 0.4, "b", None),
                                         (ids["b/0.jpg"], "maybe_mislabel", 0.5, "a", None)])
    with factory() as session:
        assert flag_counts(session, job_id) == {"maybe_mislabel": 2, "mislabel": 1}  # the queue's kinds
        table = class_flag_counts(session, job_id)
    assert "maybe_mislabel" not in table.columns
    assert table["flagged_samples"].to_dict() == {"a": 1, "b": 0}


def test_class_counts_of_an_audit_without_flags(factory, dataset):
    dataset_id, _ = dataset
    job_id = audit(factory, dataset_id, [])
    with factory() as session:
        table = class_flag_counts(session, job_id)
        assert flag_counts(session, job_id) == {}
    assert list(table.index) == ["a", "b"] and table["flagged_samples"].sum() == 0


def test_diff_reports_new_and_resolved_flags_over_the_checks_both_audits_ran(factory, dataset):
    dataset_id, ids = dataset
    old = audit(factory, dataset_id, [
        (ids["a/0.jpg"], "price", 0.3, None, None),
        (ids["a/1.jpg"], "mislabel", 0.2, "b", None),
        (ids["a/2.jpg"], "duplicate", 0.2, None, 1),
    ])
    new = audit(factory, dataset_id, [
        (ids["a/0.jpg"], "price", 0.25, None, None),
        (ids["a/3.jpg"], "mislabel", 0.1, "b", None),
    ], checks=("mislabel", "price"))
    with factory() as session:
        diff = diff_flags(session, old, new)
    assert list(diff.new["path"]) == ["a/3.jpg"] and list(diff.resolved["path"]) == ["a/1.jpg"]
    assert diff.kept == 1  # a/0 price; the duplicate check did not run again, so a/2 is not "resolved"
    assert diff.counts().to_dict("index") == {"mislabel": {"new": 1, "resolved": 1}}


@pytest.mark.postgresql_only
def test_on_postgresql_the_planner_counts_an_audit_s_flags_as_soon_as_they_are_stored(factory, dataset):
    dataset_id, ids = dataset
    audit(factory, dataset_id, [(ids["a/0.jpg"], "price", 0.3, None, None), (ids["a/1.jpg"], "mislabel", 0.1, "b", None)])
    with factory() as session:
        planned_rows = session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'flags'"))
    assert planned_rows == 2  # -1 (never analysed) until autovacuum came by
