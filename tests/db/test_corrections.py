"""Tests of db/corrections.py `decide`: each action's rules, undo, derived state, conflicts, two processes at once."""
from __future__ import annotations

import io
import multiprocessing

import pytest
from sqlalchemy import select

from db.corrections import (
    DecisionConflict, DecisionError, SampleState, decide, import_corrections_csv, sample_state, undo_target,
    write_corrections_csv,
)
from db.engine import make_engine, make_session_factory
from db.models import Correction, Sample
from db.queries import get_or_create_dataset, samples_frame

CLASSES = ["bags", "hats", "shoes"]


@pytest.fixture
def samples(factory, tmp_path) -> dict[str, int]:
    """Three samples of class shoes; returns path -> id."""
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, tmp_path / "shop")
        rows = [Sample(dataset_id=dataset.id, path=f"shoes/{n}.jpg", label="shoes", file_size=1, mtime_ns=1)
                for n in ("a", "b", "c")]
        session.add_all(rows)
        session.flush()
        return {row.path: row.id for row in rows}


def act(factory, sample_id: int, action: str, **options) -> Correction:
    with factory.begin() as session:
        return decide(session, session.get(Sample, sample_id), action, classes=CLASSES, **options)


def state(factory, sample_id: int):
    with factory() as session:
        return sample_state(session, session.get(Sample, sample_id))


def test_each_action_records_before_and_after(factory, samples):
    a = samples["shoes/a.jpg"]
    relabel = act(factory, a, "relabel", new_label="bags", reviewer="ann", note="it is a bag")
    assert (relabel.old_label, relabel.new_label, relabel.was_deleted, relabel.deleted) == ("shoes", "bags", False, False)
    assert (relabel.previous_id, relabel.reviewer, relabel.note) == (0, "ann", "it is a bag")
    delete = act(factory, a, "delete")
    assert (delete.old_label, delete.new_label, delete.deleted, delete.previous_id) == ("bags", "bags", True, relabel.id)
    restore = act(factory, a, "restore")
    assert (restore.new_label, restore.was_deleted, restore.deleted) == ("bags", True, False)
    keep = act(factory, a, "keep")
    assert (keep.new_label, keep.deleted, keep.previous_id) == ("bags", False, restore.id)
    assert state(factory, a) == SampleState("bags", False, keep.id)


@pytest.mark.parametrize("setup, action, options, message", [
    ([], "relabel", {"new_label": "boots"}, "unknown class 'boots'"),
    ([], "relabel", {}, "unknown class None"),
    ([], "relabel", {"new_label": "shoes"}, "already labelled 'shoes'"),
    ([], "restore", {}, "is not deleted, so it cannot be restored"),
    ([], "undo", {}, "has no decision to undo"),
    ([], "approve", {}, "unknown action 'approve'"),
    (["delete"], "delete", {}, "is already deleted"),
    (["delete"], "keep", {}, "restore it instead of keeping it"),
    (["delete"], "relabel", {"new_label": "bags"}, "restore it before relabelling"),
])
def test_impossible_decisions_raise_and_change_nothing(factory, samples, setup, action, options, message):
    a = samples["shoes/a.jpg"]
    for earlier in setup:
        act(factory, a, earlier)
    before = state(factory, a)
    with pytest.raises(DecisionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        act(factory, a, action, **options)
    assert state(factory, a) == before
    with factory() as session:
        assert len(session.scalars(select(Correction)).all()) == len(setup)


def test_undo_twice_walks_back_and_a_third_has_nothing_left(factory, samples):
    a = samples["shoes/a.jpg"]
    relabel = act(factory, a, "relabel", new_label="hats")
    delete = act(factory, a, "delete")
    first_undo = act(factory, a, "undo")
    assert (first_undo.reverts_id, first_undo.new_label, first_undo.deleted) == (delete.id, "hats", False)
    second_undo = act(factory, a, "undo")
    assert (second_undo.reverts_id, second_undo.new_label, second_undo.deleted) == (relabel.id, "shoes", False)
    with pytest.raises(DecisionError, match="no decision to undo"):
        act(factory, a, "undo")
    with factory() as session:
        assert undo_target(session, a) is None
        frame = samples_frame(session, session.get(Sample, a).dataset_id).set_index("path")
    assert frame.loc["shoes/a.jpg", "current_label"] == "shoes" and not frame.loc["shoes/a.jpg", "deleted"]
    assert frame.loc["shoes/a.jpg", "last_correction_id"] == second_undo.id


def test_undo_after_a_new_decision_reverts_the_new_one(factory, samples):
    a = samples["shoes/a.jpg"]
    act(factory, a, "relabel", new_label="hats")
    act(factory, a, "undo")
    again = act(factory, a, "relabel", new_label="bags")
    undo = act(factory, a, "undo")
    assert undo.reverts_id == again.id and undo.new_label == "shoes"
    with pytest.raises(DecisionError):
        act(factory, a, "undo")


def test_history_is_append_only(factory, samples):
    a = samples["shoes/a.jpg"]
    made = [act(factory, a, "relabel", new_label="hats"), act(factory, a, "undo"), act(factory, a, "delete")]
    with factory() as session:
        log = session.scalars(select(Correction).order_by(Correction.id)).all()
    assert [c.id for c in log] == [c.id for c in made]
    assert [c.previous_id for c in log] == [0, made[0].id, made[1].id]


def test_stale_expected_last_id_is_a_conflict(factory, samples):
    a = samples["shoes/a.jpg"]
    seen = state(factory, a).last_correction_id  # what a reviewer loaded: no decision yet
    act(factory, a, "relabel", new_label="hats", expected_last_id=seen)  # a first reviewer acts on it
    with pytest.raises(DecisionConflict, match="changed by someone else"):
        act(factory, a, "relabel", new_label="bags", expected_last_id=seen)  # a second one, on the same view
    assert state(factory, a).label == "hats"
    latest = state(factory, a).last_correction_id
    assert act(factory, a, "relabel", new_label="bags", expected_last_id=latest).new_label == "bags"


def test_a_decision_rolls_back_with_the_callers_transaction(factory, samples):
    a = samples["shoes/a.jpg"]
    with pytest.raises(RuntimeError):
        with factory.begin() as session:
            decide(session, session.get(Sample, a), "delete", classes=CLASSES)
            raise RuntimeError("something after the decision failed")
    assert state(factory, a).last_correction_id == 0


def test_decisions_on_several_samples_in_one_transaction(factory, samples):
    with factory.begin() as session:
        for sample_id in samples.values():
            decide(session, session.get(Sample, sample_id), "delete", classes=CLASSES)
    with factory() as session:
        frame = samples_frame(session, session.get(Sample, samples["shoes/a.jpg"]).dataset_id)
    assert frame["deleted"].all()


def _decide_repeatedly(db_path: str, sample_ids: list[int], barrier, results) -> None:
    """A reviewer's process: relabel each sample many times, always on the state it last read."""
    factory = make_session_factory(make_engine(db_path))
    landed, conflicts = [], 0
    barrier.wait()
    for round_index in range(12):
        for sample_id in sample_ids:
            with factory() as session:
                seen = sample_state(session, session.get(Sample, sample_id))
            target = [c for c in CLASSES if c != seen.label][round_index % 2]
            try:
                with factory.begin() as session:
                    landed.append(decide(session, session.get(Sample, sample_id), "relabel", classes=CLASSES,
                                         new_label=target, expected_last_id=seen.last_correction_id).id)
            except DecisionConflict:
                conflicts += 1
    results.put((landed, conflicts))


def test_two_processes_deciding_at_once_lose_nothing(factory, samples, db_path):
    """Every decision either lands or raises DecisionConflict, and each sample's history stays one chain."""
    sample_ids = list(samples.values())
    context = multiprocessing.get_context("fork")  # children build their own engine on the file
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_decide_repeatedly, args=(str(db_path), sample_ids, barrier, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    landed = [cid for made, _ in outcomes for cid in made]
    assert len(landed) + sum(conflicts for _, conflicts in outcomes) == 2 * 12 * len(sample_ids)
    with factory() as session:
        log = session.scalars(select(Correction).order_by(Correction.id)).all()
    assert sorted(landed) == [c.id for c in log]
    for sample_id in sample_ids:
        chain = [c for c in log if c.sample_id == sample_id]
        assert [c.previous_id for c in chain] == [0] + [c.id for c in chain[:-1]]
        assert all(c.old_label == before.new_label for before, c in zip(chain, chain[1:]))


def test_a_fixed_price_is_the_samples_price_survives_relabels_and_replays_elsewhere(factory, samples, tmp_path):
    a = samples["shoes/a.jpg"]
    with factory.begin() as session:
        session.get(Sample, a).price = 9000.0
    act(factory, a, "price", new_price=90.0)
    act(factory, a, "relabel", new_label="bags")
    assert state(factory, a).price == 90.0  # a relabel carries the fixed price along
    with factory() as session:
        frame = samples_frame(session, session.get(Sample, a).dataset_id).set_index("id")
        log = io.StringIO()
        write_corrections_csv(session, session.get(Sample, a).dataset_id, log)
    assert frame.loc[a, "price"] == 90.0 and frame.loc[a, "current_label"] == "bags"
    with pytest.raises(DecisionError, match="a price must be a number of 0 or more"):
        act(factory, a, "price", new_price=float("nan"))
    act(factory, a, "undo")
    act(factory, a, "undo")
    assert state(factory, a).price is None  # back to the listing's own price

    other = make_session_factory(make_engine(tmp_path / "other.db"))  # the same dataset on another machine
    with other.begin() as session:
        dataset = get_or_create_dataset(session, tmp_path / "shop")
        session.add(Sample(dataset_id=dataset.id, path="shoes/a.jpg", label="shoes", file_size=1, mtime_ns=1,
                           price=9000.0))
    with other.begin() as session:
        report = import_corrections_csv(session, dataset.id, io.StringIO(log.getvalue()), classes=CLASSES)
    assert report.added == 2 and not report.skipped
    with other() as session:
        assert samples_frame(session, dataset.id)["price"].tolist() == [90.0]
