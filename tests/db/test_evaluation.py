"""The dataset's evaluation split in the database, reference labels, and runs compared on common ground."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import select

from db.corrections import decide, undo_decision
from db.engine import make_engine, make_session_factory
from db.evaluation import compare_runs, ensure_evaluation_split, evaluation_sides, reference_labels, split_summary
from db.models import Job, Sample
from db.queries import dataset_classes, next_job_number
from jobs.scan import scan_dataset
from tests.conftest import make_image
from tests.db.many_samples import add_many_samples

CLASSES = ("bag", "coat", "shoe")


def write_dataset(root, count: int = 10, start: int = 0):
    for label in CLASSES:
        for i in range(start, start + count):
            make_image(root / label / f"{label}{i}.png", size=(24, 24))
    return root


def by_path(factory, dataset_id: int) -> dict[str, bool]:
    with factory() as session:
        sides = evaluation_sides(session, dataset_id)
        paths = dict(session.execute(select(Sample.id, Sample.path).where(Sample.dataset_id == dataset_id)).all())
    return {paths[sample_id]: bool(side) for sample_id, side in sides.items()}


def sample_id(session, path: str) -> int:
    return session.scalars(select(Sample.id).where(Sample.path == path)).one()


def act(factory, dataset_id: int, path: str, action: str, **options):
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == path)).one()
        return decide(session, sample, action, classes=dataset_classes(session, dataset_id), reviewer="ann",
                      **options)


def test_the_split_is_drawn_at_the_first_scan_and_is_the_same_in_a_new_database_and_survives_rescans_and_decisions(factory, tmp_path):
    root = write_dataset(tmp_path / "data")
    dataset_id = scan_dataset(factory, root, workers=1)["dataset_id"]
    first = by_path(factory, dataset_id)
    assert len(first) == 30 and sum(first.values()) == 6  # two of each class's ten
    assert {label: sum(v for p, v in first.items() if p.startswith(label)) for label in CLASSES} == \
        {"bag": 2, "coat": 2, "shoe": 2}
    other = make_session_factory(make_engine(tmp_path / "other.db"))
    other_id = scan_dataset(other, root, workers=1)["dataset_id"]
    assert by_path(other, other_id) == first
    evaluated = sorted(p for p, v in first.items() if v)
    act(factory, dataset_id, evaluated[0], "relabel", new_label="shoe" if not evaluated[0].startswith("shoe")
        else "bag")
    act(factory, dataset_id, evaluated[1], "delete")
    write_dataset(root, count=10, start=10)
    summary = scan_dataset(factory, root, workers=1)
    assert summary["evaluation_split_added"] == 30
    second = by_path(factory, dataset_id)
    assert {p: second[p] for p in first} == first
    with factory() as session:
        assert split_summary(session, dataset_id) == {"evaluation": sum(second.values()),
                                                      "training": 60 - sum(second.values()), "unassigned": 0}


def test_a_split_of_more_listings_than_one_statement_can_bind_is_stored(factory, tmp_path):
    """20,000 listings: one multi-row INSERT of their sides would bind 80,000 parameters, past PostgreSQL's
    65,535 and the 32,766 of SQLite's default build (set here; this machine's allows 250,000, which a scan of
    100,000 listings, 400,000 parameters, exceeded)."""
    listings = 20_000
    with factory.begin() as session:
        dataset_id = add_many_samples(session, tmp_path / "big", [CLASSES[i % 3] for i in range(listings)])
        assert ensure_evaluation_split(session, dataset_id) == listings
    with factory() as session:
        summary = split_summary(session, dataset_id)
    assert summary["unassigned"] == 0 and 0.18 < summary["evaluation"] / listings < 0.22


def test_reference_labels_are_todays_labels_or_only_the_verified_ones(factory, tmp_path):
    dataset_id = scan_dataset(factory, write_dataset(tmp_path / "data", count=3), workers=1)["dataset_id"]
    act(factory, dataset_id, "bag/bag0.png", "relabel", new_label="coat")
    act(factory, dataset_id, "bag/bag1.png", "keep")
    act(factory, dataset_id, "bag/bag2.png", "delete")
    undone = act(factory, dataset_id, "coat/coat0.png", "relabel", new_label="shoe")
    with factory.begin() as session:
        undo_decision(session, undone.id, classes=list(CLASSES), reviewer="ann")
    with factory() as session:
        current = reference_labels(session, dataset_id)
        verified = reference_labels(session, dataset_id, labels="verified")
        ids = {path: sample_id(session, path) for path in ("bag/bag0.png", "bag/bag1.png", "bag/bag2.png",
                                                           "coat/coat0.png")}
        with pytest.raises(ValueError, match="current, verified"):
            reference_labels(session, dataset_id, labels="truth")
    assert len(current) == 8 and ids["bag/bag2.png"] not in current.index
    assert current[ids["bag/bag0.png"]] == "coat" and current[ids["coat/coat0.png"]] == "coat"
    assert verified.to_dict() == {ids["bag/bag0.png"]: "coat", ids["bag/bag1.png"]: "bag"}


def stored_run(session, dataset_id: int, predictions: dict[int, str], classes=CLASSES, status="succeeded") -> int:
    """A finished train job whose result holds `predictions` (sample id -> class) as its validation predictions."""
    result = {"classes": list(classes), "validation": {"sample_ids": list(predictions),
                                                       "pred": [classes.index(p) for p in predictions.values()]}}
    job = Job(dataset_id=dataset_id, kind="train", status=status, params_json="{}", result_json=json.dumps(result),
              number=next_job_number(session, "train"))
    session.add(job)
    session.flush()
    return job.id


def test_two_runs_with_different_splits_are_compared_on_their_common_images_against_todays_labels(factory, tmp_path):
    dataset_id = scan_dataset(factory, write_dataset(tmp_path / "data", count=4), workers=1)["dataset_id"]
    act(factory, dataset_id, "bag/bag0.png", "relabel", new_label="coat")
    with factory.begin() as session:
        labels = reference_labels(session, dataset_id)
        ids = labels.index.tolist()
        before = stored_run(session, dataset_id, {i: "bag" for i in ids[:8]})
        after = stored_run(session, dataset_id, {i: labels[i] for i in ids[4:]})
        failed = stored_run(session, dataset_id, {}, status="failed")
    with factory() as session:
        comparison = compare_runs(session, before, after, rounds=50)
        failed_number = session.get(Job, failed).number
        with pytest.raises(ValueError, match=f"run {failed_number} is not a finished training run"):
            compare_runs(session, before, failed)
    assert (comparison.images, comparison.before_only, comparison.after_only) == (4, 4, 4)
    common = pd.Series({i: labels[i] for i in ids[4:8]})
    accuracy = comparison.overall("accuracy")
    assert accuracy["before"] == pytest.approx((common == "bag").mean()) and accuracy["after"] == 1.0
