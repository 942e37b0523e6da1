"""Two databases in one folder: each run keeps its own folder and model, and never resumes from another's."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import update

from core.models.checkpoints import BEST_CHECKPOINT, LAST_CHECKPOINT, OWNER_FILE
from db.engine import make_engine, make_session_factory
from db.models import Job
from db.runs import requeue_run, run_result
from jobs.runner import run_job
from jobs.scan import scan_dataset
from tests.cli import run_cli
from tests.training_data import CLASSES, create_train_job, one_torch_thread, write_training_images

__all__ = ["one_torch_thread"]  # fixture used by name
OTHER_CLASSES = {"bag": "hat", "dress": "sock", "shoe": "tie"}


class Database:
    """A database file with one scanned tiny dataset."""

    def __init__(self, path: Path, root: Path, classes: dict[str, str]):
        self.path, self.root = path, root
        self.engine = make_engine(path)
        self.factory = make_session_factory(self.engine)
        write_training_images(root)
        for old, new in classes.items():
            if old != new:
                (root / old).rename(root / new)
        self.dataset_id = scan_dataset(self.factory, root, workers=1)["dataset_id"]


@pytest.fixture
def databases(tmp_path):
    folder = tmp_path / "x"
    a = Database(folder / "a.db", tmp_path / "shop-a", {name: name for name in CLASSES})
    b = Database(folder / "b.db", tmp_path / "shop-b", OTHER_CLASSES)
    yield a, b
    a.engine.dispose()
    b.engine.dispose()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stop_in_folder(database: Database, run_id: int, folder: Path) -> None:
    """Mark the run failed with `folder` as its checkpoint folder, as if it had been trained there."""
    with database.factory.begin() as session:
        params = json.loads(session.get(Job, run_id).params_json)
        params["config"]["out_dir"] = str(folder)
        session.execute(update(Job).where(Job.id == run_id).values(status="failed", params_json=json.dumps(params)))


def _train(database: Database, **config) -> dict:
    job = run_job(database.factory, create_train_job(database.factory, database.dataset_id, **config))
    assert job.status == "succeeded", job.error
    return run_result(job)


def test_each_database_trains_into_its_own_run_folder(databases, one_torch_thread):
    a, b = databases
    first = _train(a)
    model_a = _digest(Path(first["out_dir"]) / BEST_CHECKPOINT)
    second = _train(b)
    assert first["run_id"] == second["run_id"] == 1  # job ids start at 1 in each database
    folder_a, folder_b = Path(first["out_dir"]), Path(second["out_dir"])
    assert folder_a != folder_b and folder_a.parent.parent == folder_b.parent.parent == a.path.parent / "runs"
    assert folder_a.parent.name.startswith("a-") and folder_b.parent.name.startswith("b-")
    assert _digest(folder_a / BEST_CHECKPOINT) == model_a  # b's run did not write over a's model
    assert first["classes"] == list(CLASSES) and second["classes"] == sorted(OTHER_CLASSES.values())
    owners = [json.loads((folder / OWNER_FILE).read_text()) for folder in (folder_a, folder_b)]
    assert [owner["run_id"] for owner in owners] == [1, 1]
    assert owners[0]["database_id"] != owners[1]["database_id"]
    assert [owner["database"] for owner in owners] == [str(a.path.resolve()), str(b.path.resolve())]


def test_resuming_from_another_databases_checkpoint_is_refused(capsys, databases, one_torch_thread):
    a, b = databases
    _train(a)
    foreign = Path(_train(b)["out_dir"])
    before = {name: _digest(foreign / name) for name in (BEST_CHECKPOINT, LAST_CHECKPOINT)}
    _stop_in_folder(a, 1, foreign)  # a's run 1 in b's run 1 folder: what one shared runs/<run id> used to give
    code, out, err = run_cli(capsys, "train", a.root, "--db", a.path, "--resume", "1")
    assert code == 2 and out == ""
    assert err.startswith("error: run 1 failed: ForeignRunFolder: ") and len(err.strip().splitlines()) == 1
    assert f"belongs to run 1 of database {b.path.resolve()}, not to run 1 of database {a.path.resolve()}" in err
    assert {name: _digest(foreign / name) for name in (BEST_CHECKPOINT, LAST_CHECKPOINT)} == before


def test_a_new_run_does_not_write_over_another_runs_folder(databases, one_torch_thread):
    a, b = databases
    foreign = Path(_train(b)["out_dir"])
    model = _digest(foreign / BEST_CHECKPOINT)
    job = run_job(a.factory, create_train_job(a.factory, a.dataset_id, out_dir=str(foreign)))
    assert job.status == "failed" and "ForeignRunFolder" in job.error and "belongs to run 1 of database" in job.error
    assert _digest(foreign / BEST_CHECKPOINT) == model


def test_a_folder_with_a_checkpoint_but_no_owner_record_is_not_resumed(databases, tmp_path, one_torch_thread):
    a, _ = databases
    first = Path(_train(a)["out_dir"])
    unowned = tmp_path / "unowned"
    shutil.copytree(first, unowned)
    (unowned / OWNER_FILE).unlink()
    _stop_in_folder(a, 1, unowned)
    with a.factory.begin() as session:
        requeue_run(session, 1)
    job = run_job(a.factory, 1)
    assert job.status == "failed" and f"no {OWNER_FILE} saying whose they are" in job.error
