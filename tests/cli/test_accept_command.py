"""`listing-audit accept`: the latest audit's suggestions as one undoable action, on a real scanned dataset."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from db.engine import make_engine, make_session_factory
from db.models import Correction
from tests.audit_data import BROKEN_PATH, COPY_PATH, TYPO_PATH, build_audit_dataset
from tests.cli import run_cli


def corrections(db_path) -> int:
    with make_session_factory(make_engine(db_path))() as session:
        return session.scalar(select(func.count(Correction.id)))


@pytest.fixture
def audited(tmp_path, db_path, capsys):
    root = build_audit_dataset(tmp_path / "shop")
    assert run_cli(capsys, "scan", root, "--db", db_path, "--workers", "1")[0] == 0
    assert run_cli(capsys, "audit", root, "--db", db_path, "--checks", "broken,duplicate,price")[0] == 0
    return root


def test_dry_run_shows_the_plan_and_changes_nothing(capsys, audited, db_path):
    code, out, err = run_cli(capsys, "accept", audited, "--db", db_path, "--dry-run", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["relabelled"], result["deleted"], result["dry_run"]) == (0, 2, True)
    assert {row["path"] for row in result["decisions"]} == {BROKEN_PATH, COPY_PATH}
    assert corrections(db_path) == 0


def test_accept_deletes_broken_files_and_duplicate_copies_as_one_undoable_action(capsys, audited, db_path):
    code, out, err = run_cli(capsys, "accept", audited, "--db", db_path, "--reviewer", "ann")
    assert code == 0, err
    assert "0 relabelled, 2 deleted" in out and "--undo" in out
    assert corrections(db_path) == 2
    history = json.loads(run_cli(capsys, "history", audited, "--db", db_path, "--format", "json")[1])
    assert {row["action"] for row in history} == {"delete"}
    deleted = {row["path"] for row in history}
    assert BROKEN_PATH in deleted and len(deleted & {TYPO_PATH, COPY_PATH}) == 1  # one of the pair is kept
    assert len({row["batch_id"] for row in history}) == 1
    code, out, _ = run_cli(capsys, "accept", audited, "--db", db_path, "--reviewer", "ann")
    assert code == 0 and "nothing to accept" in out  # the flags are decided now
    code, out, _ = run_cli(capsys, "accept", audited, "--db", db_path, "--reviewer", "ann", "--undo")
    assert code == 0 and "undid 2 decisions" in out
    code, out, _ = run_cli(capsys, "accept", audited, "--db", db_path, "--reviewer", "ann", "--dry-run")
    assert "would relabel 0 and delete 2" in out  # undone: the flags are open again


def test_only_the_chosen_kinds_are_accepted(capsys, audited, db_path):
    code, out, err = run_cli(capsys, "accept", audited, "--db", db_path, "--kinds", "broken", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["deleted"] == 1
    code, _, err = run_cli(capsys, "accept", audited, "--db", db_path, "--kinds", "price")
    assert code == 2 and "--kinds takes mislabel, duplicate, broken; not price" in err


def test_a_dataset_never_audited_is_refused(capsys, tmp_path, db_path):
    root = build_audit_dataset(tmp_path / "fresh")
    assert run_cli(capsys, "scan", root, "--db", db_path, "--workers", "1")[0] == 0
    code, _, err = run_cli(capsys, "accept", root, "--db", db_path)
    assert code == 2 and "run `listing-audit audit DATASET_DIR` first" in err
