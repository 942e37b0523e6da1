"""Many reviewers at once, on every backend: 8 processes x 200 decisions on overlapping samples.

Each process decides through the path the CLI and the app use (write_transaction
+ decide with the state it last read). Every decision must land exactly once or
be refused as a conflict that names the decision in the way; none may be lost,
and each sample's log must stay one unbroken chain.
"""
from __future__ import annotations

import multiprocessing
import random
import re

import pytest
from sqlalchemy import select

from db.corrections import DecisionConflict, DecisionError, decide, sample_state
from db.engine import make_engine, make_session_factory, write_transaction
from db.models import Correction, Sample
from db.queries import get_or_create_dataset
from db.review import history_frame, history_reviewers

CLASSES = ["bags", "hats", "shoes"]
REVIEWERS, DECISIONS, SAMPLES = 8, 200, 40
CONFLICT = re.compile(
    r"^shop/\d+\.jpg was changed by someone else (since you loaded it|at the same moment) "
    r"\(r\d (relabelled it \w+ -> \w+|deleted it|restored it|kept it) at \d\d:\d\d:\d\d UTC\); "
    r"reload to see the latest decision$"
)

pytestmark = pytest.mark.slow


def _next_move(rng: random.Random, label: str, deleted: bool) -> tuple[str, dict]:
    """A decision a reviewer could make on a sample in this state: mostly relabels, some deletes, keeps, restores."""
    if deleted:
        return "restore", {}
    roll = rng.random()
    if roll < 0.1:
        return "delete", {}
    if roll < 0.2:
        return "keep", {}
    return "relabel", {"new_label": rng.choice([name for name in CLASSES if name != label])}


def _review(location: str, reviewer: str, sample_ids: list[int], barrier, results) -> None:
    """A reviewer's process: DECISIONS decisions on random samples, each on the state it read just before."""
    factory = make_session_factory(make_engine(location))
    rng = random.Random(reviewer)
    outcomes = []
    barrier.wait(timeout=120)
    for _ in range(DECISIONS):
        sample_id = rng.choice(sample_ids)
        with factory() as session:
            seen = sample_state(session, session.get(Sample, sample_id))
        action, options = _next_move(rng, seen.label, seen.deleted)

        def work(session, sample_id=sample_id, action=action, options=options, seen=seen):
            return decide(session, session.get(Sample, sample_id), action, classes=CLASSES, reviewer=reviewer,
                          expected_last_id=seen.last_correction_id, **options).id

        try:
            outcomes.append(("landed", write_transaction(factory, work)))
        except DecisionConflict as conflict:
            outcomes.append(("conflict", str(conflict)))
        except DecisionError as error:
            outcomes.append(("refused", str(error)))
        except Exception as error:  # reported to the parent, which fails the test with it
            outcomes.append(("error", f"{type(error).__name__}: {error}"))
    results.put((reviewer, outcomes))
    factory.kw["bind"].dispose()


def test_eight_reviewers_deciding_at_once_lose_nothing_and_conflicts_name_the_other_decision(factory, db_path,
                                                                                            tmp_path):
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, tmp_path / "shop")
        rows = [Sample(dataset_id=dataset.id, path=f"shop/{n}.jpg", label=CLASSES[n % 3], file_size=1, mtime_ns=1)
                for n in range(SAMPLES)]
        session.add_all(rows)
        session.flush()
        sample_ids, dataset_id = [row.id for row in rows], dataset.id

    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate app servers or CLIs would be
    barrier, results = context.Barrier(REVIEWERS), context.Queue()
    workers = [context.Process(target=_review, args=(str(db_path), f"r{n}", sample_ids, barrier, results))
               for n in range(REVIEWERS)]
    for worker in workers:
        worker.start()
    reports = dict(results.get(timeout=600) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)

    outcomes = [(reviewer, kind, value) for reviewer, done in reports.items() for kind, value in done]
    assert len(outcomes) == REVIEWERS * DECISIONS
    assert [outcome for outcome in outcomes if outcome[1] in ("error", "refused")] == []
    landed = {value: reviewer for reviewer, kind, value in outcomes if kind == "landed"}
    conflicts = [value for _, kind, value in outcomes if kind == "conflict"]
    assert len(landed) + len(conflicts) == REVIEWERS * DECISIONS and conflicts
    assert [message for message in conflicts if not CONFLICT.match(message)] == []

    with factory() as session:
        stored = session.execute(select(Correction.id, Correction.sample_id, Correction.reviewer,
                                        Correction.previous_id, Correction.old_label, Correction.new_label)
                                 .order_by(Correction.id)).all()
        history = history_frame(session, dataset_id)
        reviewers = history_reviewers(session, dataset_id)
    assert {row.id: row.reviewer for row in stored} == landed  # each landed once, by whom it says; nothing else
    chains: dict[int, list] = {}
    for row in stored:
        chains.setdefault(row.sample_id, []).append(row)
    for chain in chains.values():  # every decision was made on the state the one before it left
        assert [row.previous_id for row in chain] == [0] + [row.id for row in chain[:-1]]
        assert [row.old_label for row in chain[1:]] == [row.new_label for row in chain[:-1]]
    assert reviewers == [f"r{n}" for n in range(REVIEWERS)]
    assert dict(zip(history["id"], history["reviewer"])) == landed  # the History page's query shows who decided
