"""End to end in a real browser: after a review decision, Train retrains with the same settings, and Train and
Metrics show the new run compared with the one it replaces, on the same images against the same labels."""
from __future__ import annotations

import re

import pytest
import torch
from sqlalchemy import select

from db.corrections import decide
from db.models import Job, Sample
from db.queries import dataset_classes
from jobs.runner import run_job
from tests.e2e.browser import browser_page, expect, running_app, wait_until_idle  # noqa: F401 (fixture)
from tests.training_data import create_train_job, scanned_dataset

pytestmark = pytest.mark.e2e
RUN_TIMEOUT_MS = 240_000


def test_retrain_after_a_decision_then_compare_on_train_and_metrics(tmp_path, factory, db_path, browser_page,
                                                                    monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the spawned worker: two shared cores
    dataset = scanned_dataset(factory, tmp_path / "data")
    with factory.begin() as session:  # a job of another kind first: runs are named by their own numbers
        session.add(Job(dataset_id=dataset, kind="scan", status="succeeded", params_json="{}", progress=1.0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = create_train_job(factory, dataset)
        assert run_job(factory, first).status == "succeeded"
    finally:
        torch.set_num_threads(threads)
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == "bag/bag-2.jpg")).one()
        decide(session, sample, "relabel", classes=dataset_classes(session, dataset), new_label="shoe",
               reviewer="eve")

    page = browser_page
    with running_app(db_path, tmp_path / "streamlit.log") as url:
        page.goto(f"{url}/Train")
        expect(page.get_by_text("1 review decision since run 1 trained")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Evaluation split: \d+ of \d+ listings"))).to_be_visible()
        wait_until_idle(page)
        page.get_by_role("button", name="Retrain with the same settings").click()
        expect(page.get_by_text(re.compile(r"Run 2 started with the settings of run 1"))) \
            .to_be_visible()
        with factory() as session:
            second = session.scalars(select(Job.id).where(Job.kind == "train", Job.id != first)).one()
        comparison_heading = page.get_by_text("Compared with run 1, which it replaces")
        for _ in range(RUN_TIMEOUT_MS // 5_000):
            with factory() as session:
                if session.get(Job, second).status not in ("queued", "running"):
                    break
            page.wait_for_timeout(5_000)
        with factory() as session:
            assert session.get(Job, second).status == "succeeded"
        page.reload()  # the finished run's comparison is drawn when the page is opened again
        expect(comparison_heading).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Run 1 → run 2 on the \d+ validation images both runs "
                                           "scored, against today's labels"))).to_be_visible()

        page.get_by_test_id("stSidebar").get_by_role("link", name=re.compile(r"\bMetrics$")).click()
        expect(page.get_by_role("heading", name="Compare with another run")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Run 1 → run 2 on the \d+ validation images"))) \
            .to_be_visible()
        expect(page.get_by_text(re.compile(r"^Accuracy, run 2 \(vs 1, same images\)"))).to_be_visible()
        page.get_by_text("Verified only").click()
        expect(page.get_by_text(re.compile(r"against verified labels only"))).to_be_visible()
