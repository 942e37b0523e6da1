"""Tests of the Train page with AppTest: it renders, starts a run in a worker process, shows it and where its time
went, offers resume."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

from db.corrections import decide
from db.evaluation import split_summary
from db.models import Job, Sample
from db.queries import dataset_classes
from db.runs import record_epoch, replaced_run, run_config, run_result
from jobs.runner import request_cancel, run_job, utcnow
from tests.conftest import wait_gone
from tests.training_data import create_train_job, scanned_dataset

TIMEOUT_S = 60
WORKER_TIMEOUT_S = 240
PAGE = Path(__file__).resolve().parents[2] / "pages" / "4_Train.py"


@pytest.fixture
def dataset(factory, app_db, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the spawned worker: two shared cores
    return scanned_dataset(factory, tmp_path / "data")


def open_page() -> AppTest:
    page = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    page.run()
    assert not page.exception, page.exception
    return page


def wait_for_worker(factory, job_id: int) -> Job:
    """Wait until the job's worker process has ended (the job finished) and reap it; returns the job."""
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while time.monotonic() < deadline:
        with factory() as session:
            job = session.get(Job, job_id)
        if job.status not in ("queued", "running"):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"run {job_id} did not finish in {WORKER_TIMEOUT_S} s")
    if job.pid:
        wait_gone(job.pid)  # the worker is this process's child, waited for by spawn_job
    return job


def test_the_page_renders_its_form_without_runs(dataset):
    page = open_page()
    assert page.selectbox(key="train_backbone").value == "mobilenet_v2"
    assert page.number_input(key="train_epochs").value == 10
    assert "No training run yet." in [info.value for info in page.info]
    assert "No estimate yet: the first mobilenet_v2 run on this dataset sets one." in [c.value for c in page.caption]


def finished_job(session, dataset_id: int, kind: str) -> None:
    session.add(Job(dataset_id=dataset_id, kind=kind, status="succeeded", params_json="{}", progress=1.0))


def test_starting_a_run_spawns_a_worker_that_trains_and_the_page_shows_it(factory, dataset):
    with factory.begin() as session:  # an earlier job of another kind: runs are named by their own number
        finished_job(session, dataset, "audit")
    page = open_page()
    page.checkbox(key="train_pretrained").uncheck()
    page.number_input(key="train_epochs").set_value(1)
    page.selectbox(key="train_image_size").set_value(32)
    page.number_input(key="train_batch_size").set_value(4)
    page.selectbox(key="train_device").set_value("cpu")
    page.button(key="train_start").click().run()
    assert not page.exception, page.exception
    with factory() as session:
        job = session.scalars(select(Job).where(Job.kind == "train")).one()
        config = run_config(job)
    assert (config["epochs"], config["image_size"], config["pretrained"], config["device"]) == (1, 32, False, "cpu")
    assert job.id == 2 and "Run 1 started." in [s.value for s in page.success]
    finished = wait_for_worker(factory, job.id)
    assert finished.status == "succeeded", finished.error
    page.run()
    assert not page.exception
    assert page.selectbox(key="train_run_id").value == job.id
    result = run_result(finished)
    phases, table = page.dataframe[0].value, page.dataframe[1].value  # dataframes carry no key in AppTest
    assert phases["phase"].tolist() == list(result["phases"])
    assert phases["seconds"].tolist() == list(result["phases"].values())
    assert (phases["seconds"] >= 0).all() and phases["share"].sum() == pytest.approx(1.0, abs=0.01)
    assert any("Where the time went" in m.value for m in page.markdown)
    assert table["status"].tolist() == ["succeeded"]
    assert table["accuracy"].iloc[0] == pytest.approx(result["metrics"]["accuracy"])
    # the picker names the run by what never changes; the estimate for the next run comes from this one
    label = page.selectbox(key="train_run_id").format_func(job.id)
    assert label.startswith("Run 1 · mobilenet_v2 · 32 px · 1 epochs · ") and "queued" not in label
    assert any(c.value.startswith("Expected time with these settings: about ") and "(from run 1;" in c.value
               for c in page.caption)


def test_a_cancelled_run_can_be_resumed(factory, dataset):
    job_id = create_train_job(factory, dataset)
    with factory.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="cancelled", finished_at=utcnow()))
    page = open_page()
    assert any("cancelled" in w.value for w in page.warning)
    assert page.button(key="train_resume").label == "Start it again"  # cancelled before an epoch ended
    with factory.begin() as session:
        record_epoch(session, job_id, epoch=0, train_loss=1.0, train_accuracy=0.5, val_loss=1.0,
                     val_accuracy=0.5, lr=1e-3, seconds=1.0)
    page.run()
    assert page.button(key="train_resume").label == "Resume from the last checkpoint"
    page.button(key="train_resume").click().run()
    assert not page.exception, page.exception
    with factory.begin() as session:
        job = session.get(Job, job_id)
        assert job.status in ("queued", "running") and job.pid is not None
        request_cancel(session, job_id)  # the test needs the page's action, not a second training
    wait_for_worker(factory, job_id)


def test_after_a_review_round_the_page_retrains_with_the_same_settings_and_compares_with_the_run_replaced(
        factory, dataset):
    first = create_train_job(factory, dataset, seed=4)
    assert run_job(factory, first).status == "succeeded"
    page = open_page()
    assert "train_retrain" not in [b.key for b in page.button]  # no decision since the run
    split = next(c.value for c in page.caption if c.value.startswith("Evaluation split: "))
    with factory() as session:
        summary = split_summary(session, dataset)
    assert f"{summary['evaluation']} of {summary['evaluation'] + summary['training']} listings" in split
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == "bag/bag-1.jpg")).one()
        decide(session, sample, "relabel", classes=dataset_classes(session, dataset), new_label="dress")

    page = open_page()
    assert any(f"1 review decision since run {first} trained" in i.value for i in page.info)
    page.button(key="train_retrain").click().run()
    assert not page.exception, page.exception
    with factory() as session:
        second = session.scalars(select(Job.id).where(Job.kind == "train", Job.id != first)).one()
    retrained = wait_for_worker(factory, second)
    assert retrained.status == "succeeded", retrained.error
    with factory() as session:
        configs = [run_config(session.get(Job, run_id)) for run_id in (first, second)]
        assert replaced_run(session.get(Job, second)) == first
    assert configs[1]["out_dir"] != configs[0]["out_dir"]
    assert {k: v for k, v in configs[1].items() if k != "out_dir"} == {k: v for k, v in configs[0].items()
                                                                       if k != "out_dir"}

    page = open_page()
    assert page.selectbox(key="train_run_id").value == second
    assert "train_retrain" not in [b.key for b in page.button]
    assert any(m.value == f"**Compared with run {first}, which it replaces**" for m in page.markdown)
    assert any(c.value.startswith(f"Run {first} → run {second} on the ") for c in page.caption)
    assert any(m.label.startswith(f"Accuracy, run {second} (vs {first}") for m in page.metric)


def test_a_second_start_with_the_same_settings_starts_nothing_and_enter_does_not_submit(factory, dataset):
    page = open_page()
    form = next(block for block in page.main.children.values() if getattr(block, "type", None) == "form")
    assert form.proto.form.enter_to_submit is False
    page.checkbox(key="train_pretrained").uncheck()
    page.selectbox(key="train_image_size").set_value(32)
    page.button(key="train_start").click().run()
    page.button(key="train_start").click().run()
    assert not page.exception, page.exception
    with factory.begin() as session:
        jobs = session.scalars(select(Job.id).where(Job.kind == "train")).all()
        assert len(jobs) == 1
        request_cancel(session, jobs[0])
    assert len(page.warning) == 1 and re.fullmatch(
        rf"Run {jobs[0]} with these settings is already (queued|running): nothing was started\.", page.warning[0].value)
    wait_for_worker(factory, jobs[0])
