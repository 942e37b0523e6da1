"""Review queue, decided state, bulk decisions, undo of a reviewer's last action, history and the CSV log."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.corrections import (
    Decision, DecisionConflict, DecisionError, decide, decide_many, import_corrections_csv, undo_last_action,
    write_corrections_csv,
)
from db.models import Correction, Sample
from db.review import (
    CARRIED_IN_BULK, HistoryFilter, QueueFilter, bulk_accept_candidates, carry_to_copies, class_examples, class_prices,
    data_version, duplicate_members, export_frame, history_count, history_frame, history_reviewers, latest_audit_job,
    mislabel_decisions, open_copies, queue_count, queue_page, queue_rank, queue_summary,
)
from tests.review_data import CLASSES, add_audit_job, add_flags, build_review_data

QUEUE_ORDER = ["shoe/broken.jpg", "bag/bag-0.png", "shoe/shoe-1.png", "phone/phone-2.png", "bag/bag-1.png",
               "phone/phone-3.png"]


@pytest.fixture
def data(tmp_path, factory):
    return build_review_data(tmp_path / "tiny", factory)


def _decide(factory, data, path, action, **options):
    with factory.begin() as session:
        sample = session.get(Sample, data.sample_ids[path])
        return decide(session, sample, action, classes=CLASSES, **options).id


def _paths(factory, data, queue, *, offset=0, limit=50):
    with factory() as session:
        return list(queue_page(session, data.job_id, queue, offset=offset, limit=limit)["path"])


def test_latest_audit_job_ignores_failed_and_other_kinds(factory, data):
    with factory.begin() as session:
        from db.models import Job
        session.add(Job(dataset_id=data.dataset_id, kind="audit", status="failed"))
        session.add(Job(dataset_id=data.dataset_id, kind="scan", status="succeeded"))
    with factory() as session:
        assert latest_audit_job(session, data.dataset_id).id == data.job_id


def test_queue_is_worst_first_with_one_row_per_duplicate_group(factory, data):
    assert _paths(factory, data, QueueFilter(state="all")) == QUEUE_ORDER
    with factory() as session:
        assert queue_count(session, data.job_id, QueueFilter(state="all")) == 6


def test_queue_pages_with_offset_and_limit(factory, data):
    queue = QueueFilter(state="all")
    assert _paths(factory, data, queue, offset=0, limit=2) == QUEUE_ORDER[:2]
    assert _paths(factory, data, queue, offset=2, limit=2) == QUEUE_ORDER[2:4]
    assert _paths(factory, data, queue, offset=6, limit=2) == []


def test_queue_filters_by_kind_class_and_score(factory, data):
    assert _paths(factory, data, QueueFilter(kinds=("mislabel",))) == [
        "bag/bag-0.png", "shoe/shoe-1.png", "phone/phone-3.png"]
    assert _paths(factory, data, QueueFilter(classes=("shoe",))) == ["shoe/broken.jpg", "shoe/shoe-1.png"]
    assert _paths(factory, data, QueueFilter(score_min=0.1, score_max=0.3)) == [
        "shoe/shoe-1.png", "phone/phone-2.png", "bag/bag-1.png"]


def test_queue_rows_carry_evidence_and_current_state(factory, data):
    _decide(factory, data, "bag/bag-0.png", "relabel", new_label="shoe", reviewer="ann")
    with factory() as session:
        row = queue_page(session, data.job_id, QueueFilter(state="all"), offset=1, limit=1).iloc[0]
    assert row["path"] == "bag/bag-0.png"
    assert row["evidence"]["top3"][0] == ["phone", 0.91]
    assert (row["label"], row["current_label"], row["suggested_label"]) == ("bag", "shoe", "phone")
    assert row["decided"] and row["last_correction_id"] > 0 and row["mtime_ns"] > 0


def test_a_decision_closes_the_flag_and_undoing_it_reopens_it(factory, data):
    _decide(factory, data, "bag/bag-0.png", "keep", reviewer="ann")
    assert "bag/bag-0.png" not in _paths(factory, data, QueueFilter(state="open"))
    assert _paths(factory, data, QueueFilter(state="decided")) == ["bag/bag-0.png"]
    _decide(factory, data, "bag/bag-0.png", "undo", reviewer="ann")
    assert _paths(factory, data, QueueFilter(state="open")) == QUEUE_ORDER
    assert _paths(factory, data, QueueFilter(state="decided")) == []


def test_decisions_made_before_the_audit_do_not_close_its_flags(factory, data):
    _decide(factory, data, "bag/bag-0.png", "keep", reviewer="ann")
    with factory.begin() as session:
        newer = add_audit_job(session, data.dataset_id, minutes_ago=0.0)
        flags = add_flags(session, newer, data.sample_ids)
    with factory() as session:
        assert latest_audit_job(session, data.dataset_id).id == newer
        rows = queue_page(session, newer, QueueFilter(state="open"), offset=0, limit=50)
    assert flags["bag/bag-0.png"] in set(rows["flag_id"])


def test_deciding_any_member_of_a_duplicate_group_decides_the_group(factory, data):
    _decide(factory, data, "bag/bag-2.png", "delete", reviewer="ann")
    assert "bag/bag-1.png" not in _paths(factory, data, QueueFilter(state="open"))
    assert _paths(factory, data, QueueFilter(kinds=("duplicate",), state="decided")) == ["bag/bag-1.png"]


def test_a_relabel_of_a_member_from_another_flag_leaves_its_duplicate_group_open(factory, data):
    duplicates = QueueFilter(kinds=("duplicate",), state="open")
    _decide(factory, data, "bag/bag-2.png", "relabel", new_label="shoe", reviewer="ann")  # a mislabel accepted
    _decide(factory, data, "bag/bag-1.png", "price", new_price=12.0, reviewer="ann")
    assert _paths(factory, data, duplicates) == ["bag/bag-1.png"]
    _decide(factory, data, "bag/bag-2.png", "relabel", new_label="bag", reviewer="ann",
            flag_id=data.flag_ids["bag/bag-2.png"])  # taken on the group's own flag
    assert _paths(factory, data, duplicates) == []


def test_queue_rank_finds_a_flag_or_says_it_is_not_there(factory, data):
    with factory() as session:
        assert queue_rank(session, data.job_id, QueueFilter(state="all"), data.flag_ids["phone/phone-2.png"]) == 3
        assert queue_rank(session, data.job_id, QueueFilter(kinds=("price",)), data.flag_ids["bag/bag-0.png"]) is None


def test_queue_summary_counts_open_and_decided_per_kind(factory, data):
    _decide(factory, data, "shoe/shoe-1.png", "relabel", new_label="bag", reviewer="ann")
    with factory() as session:
        summary = queue_summary(session, data.job_id).set_index("kind")
    assert summary.loc["mislabel"].to_dict() == {"items": 3, "open": 2, "decided": 1}
    assert summary.loc["duplicate", "items"] == 1


def test_duplicate_members_come_from_the_group_and_the_evidence(factory, data):
    with factory() as session:
        members = duplicate_members(session, data.job_id, data.flag_ids["bag/bag-1.png"])
    assert list(members["path"]) == ["bag/bag-1.png", "bag/bag-2.png"]
    assert list(members["flag_id"]) == [data.flag_ids["bag/bag-1.png"], data.flag_ids["bag/bag-2.png"]]


def test_class_examples_prefer_unflagged_readable_samples(factory, data):
    with factory() as session:
        examples = class_examples(session, data.dataset_id, "bag", limit=2)
        shoes = class_examples(session, data.dataset_id, "shoe", limit=10)
        prices = class_prices(session, data.dataset_id, "phone")
    assert len(examples) == 2 and examples["path"][0] == "bag/bag-3.png"  # the only bag image without a flag
    assert "shoe/broken.jpg" not in set(shoes["path"])
    assert sorted(prices) == [300.0, 310.0, 320.0, 330.0]


def test_class_examples_fill_up_with_flagged_samples_in_content_hash_order(factory, data):
    with factory() as session:
        examples = class_examples(session, data.dataset_id, "bag", limit=4)
        hashes = dict(session.execute(select(Sample.path, Sample.content_hash)).all())
    flagged = sorted(["bag/bag-0.png", "bag/bag-1.png", "bag/bag-2.png"],
                     key=lambda path: (hashes[path], data.sample_ids[path]))
    assert list(examples["path"]) == ["bag/bag-3.png", *flagged]


def test_bulk_candidates_are_the_worst_open_mislabels_and_skip_ones_already_fixed(factory, data):
    _decide(factory, data, "bag/bag-0.png", "relabel", new_label="phone", reviewer="bob")
    _decide(factory, data, "bag/bag-0.png", "undo", reviewer="bob")
    _decide(factory, data, "shoe/shoe-1.png", "delete", reviewer="bob")
    _decide(factory, data, "shoe/shoe-1.png", "undo", reviewer="bob")
    with factory() as session:
        top = bulk_accept_candidates(session, data.job_id, QueueFilter(), count=2)
    assert list(top["path"]) == ["bag/bag-0.png", "shoe/shoe-1.png"]
    assert list(top["applicable"]) == [True, True]


def test_decide_many_is_all_or_nothing_under_the_callers_transaction(factory, data):
    ids = data.sample_ids
    stale = _decide(factory, data, "shoe/shoe-1.png", "keep", reviewer="bob")
    with pytest.raises(DecisionConflict):
        with factory.begin() as session:
            decide_many(session, [
                Decision(ids["bag/bag-0.png"], "relabel", "phone", expected_last_id=0),
                Decision(ids["shoe/shoe-1.png"], "relabel", "bag", expected_last_id=0),  # bob decided since
            ], classes=CLASSES, reviewer="ann")
    with factory() as session:
        assert session.scalar(select(func.count(Correction.id))) == 1
    with factory.begin() as session:
        made = decide_many(session, [
            Decision(ids["bag/bag-0.png"], "relabel", "phone", expected_last_id=0),
            Decision(ids["shoe/shoe-1.png"], "relabel", "bag", expected_last_id=stale),
        ], classes=CLASSES, reviewer="ann")
    assert len({c.batch_id for c in made}) == 1 and made[0].batch_id


def test_decide_many_refuses_a_sample_twice(factory, data):
    sample_id = data.sample_ids["bag/bag-0.png"]
    with factory.begin() as session, pytest.raises(DecisionError, match="more than once"):
        decide_many(session, [Decision(sample_id, "keep"), Decision(sample_id, "delete")], classes=CLASSES)


def test_undo_last_action_walks_back_the_reviewers_own_actions(factory, data):
    ids = data.sample_ids
    _decide(factory, data, "bag/bag-0.png", "relabel", new_label="phone", reviewer="ann")
    with factory.begin() as session:
        decide_many(session, [Decision(ids["bag/bag-1.png"], "keep"), Decision(ids["bag/bag-2.png"], "delete")],
                    classes=CLASSES, reviewer="ann")
    _decide(factory, data, "shoe/shoe-1.png", "keep", reviewer="bob")
    with factory.begin() as session:
        undone = undo_last_action(session, data.dataset_id, "ann", classes=CLASSES)
    assert sorted(c.sample_id for c in undone) == sorted([ids["bag/bag-1.png"], ids["bag/bag-2.png"]])
    with factory.begin() as session:
        undone = undo_last_action(session, data.dataset_id, "ann", classes=CLASSES)
    assert [(c.sample_id, c.new_label) for c in undone] == [(ids["bag/bag-0.png"], "bag")]
    with factory.begin() as session, pytest.raises(DecisionError, match="no decision left"):
        undo_last_action(session, data.dataset_id, "ann", classes=CLASSES)
    with factory() as session:
        frame = export_frame(session, data.dataset_id).set_index("path")
    assert frame.loc["shoe/shoe-1.png", "reviewer"] == "bob"
    assert frame.loc["bag/bag-0.png", ["current_label", "last_action"]].tolist() == ["bag", ""]


def test_undo_last_action_refuses_when_someone_decided_since(factory, data):
    _decide(factory, data, "bag/bag-0.png", "relabel", new_label="phone", reviewer="ann")
    _decide(factory, data, "bag/bag-0.png", "delete", reviewer="bob")
    with factory.begin() as session, pytest.raises(DecisionConflict, match="decided on again"):
        undo_last_action(session, data.dataset_id, "ann", classes=CLASSES)
    with factory.begin() as session, pytest.raises(DecisionError, match="reviewer name"):
        undo_last_action(session, data.dataset_id, "", classes=CLASSES)


def test_history_filters_by_reviewer_class_and_action_newest_first(factory, data):
    _decide(factory, data, "bag/bag-0.png", "relabel", new_label="phone", reviewer="ann", note="obvious")
    _decide(factory, data, "shoe/shoe-1.png", "delete", reviewer="bob")
    _decide(factory, data, "bag/bag-0.png", "undo", reviewer="ann")
    with factory() as session:
        everything = history_frame(session, data.dataset_id)
        ann = history_frame(session, data.dataset_id, HistoryFilter(reviewers=("ann",)))
        phones = history_frame(session, data.dataset_id, HistoryFilter(classes=("phone",)))
        deletes = history_count(session, data.dataset_id, HistoryFilter(actions=("delete",)))
        page = history_frame(session, data.dataset_id, offset=1, limit=1)
        reviewers = history_reviewers(session, data.dataset_id)
    assert list(everything["action"]) == ["undo", "delete", "relabel"]
    assert list(ann["path"]) == ["bag/bag-0.png", "bag/bag-0.png"]
    assert list(phones["action"]) == ["undo", "relabel"]  # phone before the undo, phone after the relabel
    assert deletes == 1 and list(page["action"]) == ["delete"] and reviewers == ["ann", "bob"]
    assert everything["created_at"].dt.tz is not None


def test_data_version_changes_with_each_decision(factory, data):
    with factory() as session:
        before = data_version(session, data.dataset_id)
    _decide(factory, data, "bag/bag-0.png", "keep", reviewer="ann")
    with factory() as session:
        assert data_version(session, data.dataset_id) != before


# --- the log as CSV ----------------------------------------------------------------------------


def _log_csv(factory, data) -> str:
    stream = io.StringIO()
    with factory() as session:
        write_corrections_csv(session, data.dataset_id, stream)
    return stream.getvalue()


def test_corrections_move_between_databases_and_a_second_import_adds_nothing(tmp_path, factory, data):
    from db.engine import make_engine, make_session_factory

    _decide(factory, data, "bag/bag-0.png", "relabel", new_label="phone", reviewer="ann", note="clearly a phone")
    _decide(factory, data, "shoe/shoe-1.png", "delete", reviewer="bob")
    _decide(factory, data, "shoe/shoe-1.png", "undo", reviewer="bob")
    with factory.begin() as session:
        decide_many(session, [Decision(data.sample_ids["bag/bag-1.png"], "keep"),
                              Decision(data.sample_ids["bag/bag-2.png"], "delete")], classes=CLASSES, reviewer="ann")
    log = _log_csv(factory, data)

    other = make_session_factory(make_engine(tmp_path / "other.db"))
    from jobs.scan import scan_dataset
    scan_dataset(other, data.root, workers=1)
    with other() as session:
        dataset_id = session.scalar(select(Sample.dataset_id).limit(1))
    with other.begin() as session:
        first = import_corrections_csv(session, dataset_id, io.StringIO(log), classes=CLASSES)
    with other.begin() as session:
        second = import_corrections_csv(session, dataset_id, io.StringIO(log), classes=CLASSES)
    assert first.added == 5 and first.skipped == []
    assert second.added == 0 and [reason for _, _, reason in second.skipped] == ["already in the log"] * 5
    with other() as session:
        imported = export_frame(session, dataset_id).set_index("path")
        history = history_frame(session, dataset_id, newest_first=False)
        batch = undo_last_action(session, dataset_id, "ann", classes=CLASSES)
    assert imported.loc["bag/bag-0.png", "current_label"] == "phone"
    assert not imported.loc["shoe/shoe-1.png", "deleted"] and imported.loc["bag/bag-2.png", "deleted"]
    assert list(history["note"])[0] == "clearly a phone"
    assert len(batch) == 2  # the batch survived the trip: undo reverts both decisions of that action


def test_import_reports_rows_that_do_not_apply(factory, data):
    header = "id,created_at,path,action,old_label,new_label,was_deleted,deleted,reviewer,note,reverts_id,flag_id,batch_id"
    rows = [
        "1,2024-01-01T10:00:00+00:00,bag/nope.png,keep,bag,bag,False,False,ann,,,,",
        "2,2024-01-01T10:01:00+00:00,bag/bag-0.png,relabel,bag,tablet,False,False,ann,,,,",
        "3,2024-01-01T10:02:00+00:00,shoe/shoe-0.png,relabel,phone,bag,False,False,ann,,,,",
        "4,not a time,shoe/shoe-0.png,keep,shoe,shoe,False,False,ann,,,,",
        "5,2024-01-01T10:03:00+00:00,phone/phone-0.png,restore,phone,phone,False,False,ann,,,,",
        "6,2024-01-01T10:04:00+00:00,phone/phone-1.png,keep,phone,phone,False,False,ann,,,,",
    ]
    with factory.begin() as session:
        report = import_corrections_csv(session, data.dataset_id, io.StringIO("\n".join([header] + rows)),
                                        classes=CLASSES)
    reasons = {line: reason for line, _, reason in report.skipped}
    assert report.added == 1
    assert "no sample" in reasons[2] and "unknown class 'tablet'" in reasons[3]
    assert "the row was decided on 'phone'" in reasons[4] and "malformed" in reasons[5]
    assert "not deleted" in reasons[6]
    with factory.begin() as session, pytest.raises(DecisionError, match="missing columns"):
        import_corrections_csv(session, data.dataset_id, io.StringIO("path,label\nx,y\n"), classes=CLASSES)


# --- two processes at once ------------------------------------------------------------------------

_WORKER = """
import json, sys
from db.corrections import DecisionConflict, decide, sample_state
from db.engine import make_engine, make_session_factory
from db.models import Sample
factory = make_session_factory(make_engine(sys.argv[1]))
reviewer, sample_ids = sys.argv[2], json.loads(sys.argv[3])
made, conflicts = [], 0
for _ in range(15):
    for sample_id in sample_ids:
        with factory() as session:  # what the reviewer sees ...
            seen = sample_state(session, session.get(Sample, sample_id))
        try:
            with factory.begin() as session:  # ... and what they decide on it a moment later
                made.append(decide(
                    session, session.get(Sample, sample_id), "restore" if seen.deleted else "delete",
                    classes=["bag", "phone", "shoe"], reviewer=reviewer, expected_last_id=seen.last_correction_id,
                ).id)
        except DecisionConflict:
            conflicts += 1
print(json.dumps({"made": made, "conflicts": conflicts}))
"""


def test_two_processes_deciding_on_the_same_samples_lose_nothing(factory, data, db_path):
    sample_ids = [data.sample_ids[path] for path in ("bag/bag-0.png", "bag/bag-1.png", "phone/phone-0.png")]
    repo = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(db_path), name, json.dumps(sample_ids)],
                         cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("ann", "bob")
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    made = [cid for result in results for cid in result["made"]]
    with factory() as session:
        log = session.execute(select(Correction.id, Correction.sample_id, Correction.previous_id)
                              .order_by(Correction.id)).all()
    assert sorted(made) == [row.id for row in log]  # every reported decision is in the log, nothing more
    for sample_id in sample_ids:  # and each sample's history is one unbroken chain
        chain = [row for row in log if row.sample_id == sample_id]
        assert [row.previous_id for row in chain] == [0] + [row.id for row in chain[:-1]]
    assert len(made) + sum(r["conflicts"] for r in results) == 2 * 15 * len(sample_ids)


def test_mislabel_decisions_say_which_flags_a_decision_confirmed_or_refuted(factory, data):
    _decide(factory, data, "bag/bag-0.png", "relabel", new_label="phone", reviewer="ann")
    _decide(factory, data, "shoe/shoe-1.png", "keep", reviewer="ann")
    _decide(factory, data, "phone/phone-3.png", "delete", reviewer="ann")
    with factory.begin() as session:  # the delete is undone: that flag is open again
        undo_last_action(session, data.dataset_id, "ann", classes=CLASSES)
    with factory() as session:
        frame = mislabel_decisions(session, data.job_id).set_index("flag_id")
    bag, shoe, phone = (data.flag_ids[p] for p in ("bag/bag-0.png", "shoe/shoe-1.png", "phone/phone-3.png"))
    assert list(frame.index) == [bag, shoe, phone]  # worst first
    assert frame.loc[bag, ["decided", "confirmed", "refuted"]].tolist() == [True, True, False]
    assert frame.loc[shoe, ["decided", "confirmed", "refuted"]].tolist() == [True, False, True]
    assert frame.loc[phone, ["decided", "confirmed", "refuted"]].tolist() == [False, False, False]
    assert frame.loc[bag, "decided_at"] <= frame.loc[shoe, "decided_at"]


def test_many_decisions_carry_relabels_and_keeps_to_open_copies_but_never_a_groups_deletions(factory, data):
    """A page or a plan: a relabel reaches its copies once (not those the list decides itself); the deletions
    of a duplicate group's extra copies stay where they are, or the copy kept would be deleted too."""
    ids = data.sample_ids
    with factory.begin() as session:
        job_id = add_audit_job(session, data.dataset_id)
        group = {path: ("duplicate", 0.3, None, 5, "exact duplicate", {})
                 for path in ("bag/bag-0.png", "bag/bag-1.png", "bag/bag-2.png")}
        add_flags(session, job_id, ids, group)
        add_flags(session, job_id, ids, {"shoe/shoe-1.png": ("duplicate", 0.3, None, 6, "exact duplicate", {}),
                                         "shoe/shoe-2.png": ("duplicate", 0.3, None, 6, "exact duplicate", {})})
        decisions = [Decision(ids["bag/bag-0.png"], "relabel", new_label="phone"),
                     Decision(ids["bag/bag-2.png"], "keep"),
                     Decision(ids["shoe/shoe-2.png"], "delete")]
        made = carry_to_copies(session, job_id, decisions, actions=CARRIED_IN_BULK)
        assert [(d.sample_id, d.action, d.new_label) for d in made[3:]] == [(ids["bag/bag-1.png"], "relabel", "phone")]
        assert [d.sample_id for d in carry_to_copies(session, job_id, decisions)[3:]] == [
            ids["bag/bag-1.png"], ids["shoe/shoe-1.png"]]  # one listing's own delete reaches its copy


def test_open_copies_are_the_groups_other_listings_under_the_same_label_and_undecided(factory, data):
    with factory.begin() as session:
        job_id = add_audit_job(session, data.dataset_id)
        group = {path: ("duplicate", 0.3, None, 4, "near duplicate", {})
                 for path in ("bag/bag-0.png", "bag/bag-1.png", "bag/bag-2.png", "phone/phone-1.png")}
        add_flags(session, job_id, data.sample_ids, group)
        mislabel = add_flags(session, job_id, data.sample_ids,
                             {"bag/bag-1.png": ("mislabel", 0.1, "phone", None, "odd", {})})
    _decide(factory, data, "bag/bag-2.png", "keep", reviewer="ann")  # decided since the audit: not carried to
    ids = data.sample_ids
    with factory() as session:
        copies = open_copies(session, job_id, ids["bag/bag-0.png"])
        assert copies == [(ids["bag/bag-1.png"], mislabel["bag/bag-1.png"])]  # phone-1 is under another label
        assert open_copies(session, job_id, ids["shoe/shoe-1.png"]) == []  # in no group
