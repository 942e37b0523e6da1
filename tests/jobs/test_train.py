"""Tests of the train job: a run's record, failure, cancel, the one-run-per-machine queue, a killed worker, resume."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sqlalchemy import select, update

from db.corrections import decide
from db.models import Job, Sample
from core.models.loop import PHASES
from core.models.checkpoints import load_out_of_fold
from db.queries import dataset_classes, samples_frame
from db.runs import (latest_out_of_fold_run, requeue_run, run_config, run_epochs, run_phases, run_result,
                     runs_frame)
from jobs.runner import job_result, reap_dead_jobs, request_cancel, run_job, spawn_job, utcnow
from db.evaluation import evaluation_sides
from jobs.train import run_dir
from tests.conftest import wait_gone
from tests.training_data import CLASSES, IMAGES_PER_CLASS, create_train_job, one_torch_thread, scanned_dataset

__all__ = ["one_torch_thread"]  # fixture used by name
WAIT_S = 180


@pytest.fixture
def dataset(factory, tmp_path):
    return scanned_dataset(factory, tmp_path / "data")


def wait_until(condition, *, timeout_s: float = WAIT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def job_state(factory, job_id: int) -> Job:
    with factory() as session:
        return session.get(Job, job_id)


def epochs_recorded(factory, job_id: int) -> int:
    with factory() as session:
        return len(run_epochs(session, job_id))


def correct(factory, dataset_id: int, path: str, action: str, **options) -> int:
    """Record a review decision on the sample at `path`; returns the sample id."""
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == path)).one()
        decide(session, sample, action, classes=dataset_classes(session, dataset_id), **options)
        return sample.id


def test_a_one_epoch_run_records_its_epochs_metrics_split_and_snapshot(factory, dataset, one_torch_thread):
    relabelled = correct(factory, dataset, "bag/bag-0.jpg", "relabel", new_label="shoe")
    deleted = correct(factory, dataset, "dress/dress-1.jpg", "delete")
    job_id = create_train_job(factory, dataset)
    messages = []
    job = run_job(factory, job_id, echo=lambda fraction, message: messages.append(message))
    assert job.status == "succeeded", job.error
    result = job_result(job)
    metrics = result["metrics"]
    split = result["split"]
    assert metrics["classes"] == list(CLASSES)
    assert sum(metrics["support"]) == len(split["val"]) == np.asarray(metrics["confusion_matrix"]).sum()
    assert len(split["train"]) + len(split["val"]) == len(CLASSES) * IMAGES_PER_CLASS - 1
    assert deleted not in split["train"] + split["val"]
    position = result["validation"]["sample_ids"].index(relabelled) if relabelled in split["val"] else None
    if position is not None:
        assert result["validation"]["true"][position] == CLASSES.index("shoe")
    assert result["snapshot"] == {"corrections": 2, "last_correction_id": result["snapshot"]["last_correction_id"],
                                  "relabelled": 1, "deleted": 1}
    assert result["run_id"] == job_id and result["out_dir"] == str(run_dir(factory, job_id))
    assert any("epoch 1/1 · step" in m and "loss" in m and "ETA" in m for m in messages)
    with factory() as session:
        epochs = run_epochs(session, job_id)
        config = run_config(session.get(Job, job_id))
        runs = runs_frame(session, dataset)
    assert epochs["epoch"].tolist() == [0] and epochs["val_accuracy"].iloc[0] == result["history"][0]["val_accuracy"]
    assert config["backbone"] == "mobilenet_v2" and config["out_dir"] == result["out_dir"]
    assert runs["id"].tolist() == [job_id] and runs["accuracy"].iloc[0] == metrics["accuracy"]
    assert runs["corrections"].iloc[0] == 2


def test_out_of_fold_probabilities_of_the_latest_k_fold_run_align_with_the_audited_samples(
        factory, dataset, one_torch_thread):
    with factory() as session:
        assert latest_out_of_fold_run(session, dataset) is None
    job = run_job(factory, create_train_job(factory, dataset, folds=2))
    run_job(factory, create_train_job(factory, dataset))  # a newer run without folds
    with factory() as session:
        folder = latest_out_of_fold_run(session, dataset)
        samples = samples_frame(session, dataset)
        classes = dataset_classes(session, dataset)
    assert folder == run_result(job)["out_dir"]
    audited = samples[samples["readable"]]["id"].tolist()[::-1]
    probs = load_out_of_fold(folder, audited, classes=classes)
    assert probs.shape == (len(audited), len(CLASSES))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_a_run_records_where_its_time_went_adding_up_to_its_wall_time(factory, dataset, one_torch_thread):
    job_id = create_train_job(factory, dataset, epochs=2, folds=2)
    started = time.perf_counter()
    job = run_job(factory, job_id)
    wall = time.perf_counter() - started
    assert job.status == "succeeded", job.error
    result = job_result(job)
    phases = result["phases"]
    assert list(phases) == list(PHASES) and all(seconds >= 0 for seconds in phases.values())
    assert sum(phases.values()) == pytest.approx(result["seconds"], abs=0.01)
    assert sum(phases.values()) == pytest.approx(wall, rel=0.1)
    assert phases["train"] > 0 and phases["evaluate"] > 0 and phases["checkpoint"] > 0 and phases["decode"] > 0
    folds = result["fold_phases"]
    assert len(folds) == 2 and all(set(fold) == {"fold_setup", "train", "evaluate"} for fold in folds)
    assert sum(fold["train"] for fold in folds) < phases["train"]  # the folds' and the main model's
    with factory() as session:
        assert run_phases(session, job_id) == {k: result[k] for k in ("seconds", "phases", "fold_phases")}


def test_a_run_that_cannot_train_is_marked_failed_with_its_error(factory, dataset, one_torch_thread):
    for path in [f"{label}/{label}-{i}.jpg" for label in CLASSES for i in range(IMAGES_PER_CLASS)]:
        correct(factory, dataset, path, "delete")
    job = run_job(factory, create_train_job(factory, dataset))
    assert job.status == "failed"
    assert "ValueError: too few usable samples" in job.error
    assert job.result_json is None


def test_an_invalid_config_fails_the_run(factory, dataset):
    job = run_job(factory, create_train_job(factory, dataset, optimizer="rmsprop"))
    assert job.status == "failed" and "unknown optimizer 'rmsprop'" in job.error


def test_cancelling_a_running_run_stops_it(factory, dataset, one_torch_thread):
    job_id = create_train_job(factory, dataset, epochs=200, patience=0)
    worker = threading.Thread(target=run_job, args=(factory, job_id))
    worker.start()
    try:
        wait_until(lambda: epochs_recorded(factory, job_id) >= 1, what="the first epoch")
        with factory.begin() as session:
            request_cancel(session, job_id)
    finally:
        worker.join(WAIT_S)
    job = job_state(factory, job_id)
    assert job.status == "cancelled" and job.finished_at is not None
    assert 1 <= epochs_recorded(factory, job_id) < 200


def test_a_second_run_waits_queued_until_the_running_one_ends(factory, dataset, one_torch_thread):
    first = create_train_job(factory, dataset)
    with factory.begin() as session:  # the first run's worker is this test process, alive
        session.execute(update(Job).where(Job.id == first).values(
            status="running", pid=os.getpid(), host=socket.gethostname(), started_at=utcnow(), heartbeat_at=utcnow()))
    second = create_train_job(factory, dataset)
    worker = threading.Thread(target=run_job, args=(factory, second))
    worker.start()
    try:
        waiting = wait_until(
            lambda: (job := job_state(factory, second)).status == "queued" and job.pid is not None and job,
            timeout_s=30, what="the second run to wait in the queue")
        assert waiting.message == f"waiting for run {first} to finish"
        time.sleep(1.5)
        assert job_state(factory, second).status == "queued"
        with factory.begin() as session:
            session.execute(update(Job).where(Job.id == first).values(status="succeeded", finished_at=utcnow()))
    finally:
        worker.join(WAIT_S)
    assert job_state(factory, second).status == "succeeded"


def test_a_queued_run_can_be_cancelled_while_it_waits(factory, dataset):
    first = create_train_job(factory, dataset)
    with factory.begin() as session:
        session.execute(update(Job).where(Job.id == first).values(
            status="running", pid=os.getpid(), host=socket.gethostname(), started_at=utcnow(), heartbeat_at=utcnow()))
    second = create_train_job(factory, dataset)
    worker = threading.Thread(target=run_job, args=(factory, second))
    worker.start()
    try:
        wait_until(lambda: (job := job_state(factory, second)).status == "queued" and job.pid is not None,
                   timeout_s=30, what="the second run to wait")
        with factory.begin() as session:
            request_cancel(session, second)
    finally:
        worker.join(30)
    assert job_state(factory, second).status == "cancelled"
    assert epochs_recorded(factory, second) == 0


def test_a_run_waiting_in_the_queue_whose_worker_died_is_marked_failed(factory, dataset):
    job_id = create_train_job(factory, dataset)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    with factory.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(pid=ended.pid, host=socket.gethostname()))
        assert reap_dead_jobs(session) == [job_id]
    assert job_state(factory, job_id).status == "failed"


@pytest.mark.slow
def test_a_killed_worker_is_detected_and_its_run_resumes_from_the_last_checkpoint(
        factory, db_path, dataset, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job_id = create_train_job(factory, dataset, epochs=500, patience=0)
    spawn_job(db_path, job_id, log_dir=tmp_path / "logs")
    wait_until(lambda: epochs_recorded(factory, job_id) >= 1, what="the worker's first epoch")
    pid = job_state(factory, job_id).pid
    os.kill(pid, signal.SIGKILL)
    try:
        with factory.begin() as session:
            wait_until(lambda: reap_dead_jobs(session) == [job_id], timeout_s=10, what="the dead worker")
    finally:
        wait_gone(pid)
    job = job_state(factory, job_id)
    assert job.status == "failed" and "stopped without finishing" in job.error
    done = epochs_recorded(factory, job_id)
    with factory.begin() as session:
        requeue_run(session, job_id, epochs=done + 1)
    job = run_job(factory, job_id)
    assert job.status == "succeeded", job.error
    result = run_result(job)
    # The worker saves the checkpoint, then records the epoch: it died after one or between the two.
    assert result["resumed_from_epoch"] in (done, done + 1)
    assert [entry["epoch"] for entry in result["history"]] == list(range(done + 1))
    assert epochs_recorded(factory, job_id) == done + 1


def test_only_failed_or_cancelled_runs_can_be_resumed(factory, dataset):
    job_id = create_train_job(factory, dataset)
    with factory.begin() as session:
        with pytest.raises(ValueError, match="only failed or cancelled"):
            requeue_run(session, job_id)


def test_runs_with_different_seeds_validate_on_the_datasets_evaluation_split(factory, dataset, one_torch_thread):
    with factory() as session:
        sides = evaluation_sides(session, dataset)
    evaluation = set(sides.index[sides])
    results = []
    for config in ({"seed": 0}, {"seed": 7}, {"seed": 7, "split": "run"}):
        job = run_job(factory, create_train_job(factory, dataset, **config))
        assert job.status == "succeeded", job.error
        results.append(job_result(job))
    readable = evaluation & set(results[0]["split"]["train"] + results[0]["split"]["val"])  # not the broken file
    assert set(results[0]["split"]["val"]) == set(results[1]["split"]["val"]) == readable
    assert [r["split_source"] for r in results] == ["dataset", "dataset", "run (seed 7)"]
    assert set(results[2]["split"]["val"]) != readable
