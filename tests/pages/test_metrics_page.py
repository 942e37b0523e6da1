"""Tests of the Metrics page with AppTest, on two real one-epoch runs of a tiny dataset."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.metrics import cell_members
from db.corrections import decide
from db.engine import make_engine, make_session_factory
from db.models import Sample
from db.queries import dataset_classes
from db.runs import run_result
from jobs.runner import run_job
from tests.training_data import CLASSES, create_train_job, scanned_dataset

TIMEOUT_S = 60
PAGE = Path(__file__).resolve().parents[2] / "pages" / "5_Metrics.py"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """(database path, first run result, second run result): run 2 trained after one relabel."""
    folder = tmp_path_factory.mktemp("metrics")
    database = folder / "listing-audit.db"
    engine = make_engine(database)
    factory = make_session_factory(engine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset = scanned_dataset(factory, folder / "data")
        first = run_job(factory, create_train_job(factory, dataset))
        with factory.begin() as session:
            sample = session.scalars(select(Sample).where(Sample.path == "bag/bag-0.jpg")).one()
            decide(session, sample, "relabel", classes=dataset_classes(session, dataset), new_label="dress")
        second = run_job(factory, create_train_job(factory, dataset, seed=0))
    finally:
        torch.set_num_threads(threads)
        engine.dispose()
    assert first.status == second.status == "succeeded"
    return database, run_result(first), run_result(second)


@pytest.fixture
def app(two_runs, monkeypatch) -> AppTest:
    monkeypatch.setenv("LISTING_AUDIT_DB", str(two_runs[0]))
    monkeypatch.delenv("LISTING_AUDIT_DATASET", raising=False)
    page = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    page.run()
    assert not page.exception, page.exception
    return page


def metric_values(page: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in page.metric}


def cell_caption(page: AppTest) -> str:
    return next(m.value for m in page.markdown if "validation images of class" in m.value)


def test_the_newest_run_is_shown_with_its_report(app, two_runs):
    _, _, second = two_runs
    assert app.selectbox(key="metrics_run").value == second["run_id"]
    values = metric_values(app)
    assert values["Accuracy"] == f"{second['metrics']['accuracy']:.3f}"
    assert values["Macro F1"] == f"{second['metrics']['macro_avg']['f1']:.3f}"
    assert values["Validation images"] == str(second["metrics"]["n"])
    assert values["Corrections applied"] == "1"
    report = app.dataframe[0].value
    assert report["class"].tolist() == [*CLASSES, "macro avg", "weighted avg"]
    assert report["support"].tolist()[:3] == second["metrics"]["support"]


def test_picking_a_confusion_cell_shows_its_validation_images(app, two_runs):
    _, _, second = two_runs
    validation = second["validation"]
    for true_class in CLASSES:
        for pred_class in CLASSES:
            app.selectbox(key="cell_true").set_value(true_class)
            app.selectbox(key="cell_pred").set_value(pred_class)
            app.run()
            assert not app.exception
            expected = cell_members(validation["true"], validation["pred"], true_class=CLASSES.index(true_class),
                                    pred_class=CLASSES.index(pred_class))
            assert cell_caption(app).startswith(f"**{len(expected)}** validation images of class **{true_class}**")
            assert len(app.get("image")) == len(expected)


def test_two_runs_are_compared_per_class(app, two_runs):
    _, first, second = two_runs
    assert app.selectbox(key="metrics_compare").value == first["run_id"]  # the older run by default
    comparison = app.dataframe[1].value
    assert comparison["class"].tolist() == [*CLASSES, "accuracy", "macro avg", "weighted avg"]
    expected = second["metrics"]["f1"][0] - first["metrics"]["f1"][0]
    assert comparison["f1_delta"].iloc[0] == pytest.approx(expected)
    label = f"Accuracy (run {second['run_id']} vs {first['run_id']})"
    delta = second["metrics"]["accuracy"] - first["metrics"]["accuracy"]
    assert next(m for m in app.metric if m.label == label).delta == f"{delta:+.3f}"


def test_choosing_an_older_run_and_no_comparison(app, two_runs):
    _, first, _ = two_runs
    app.selectbox(key="metrics_run").set_value(first["run_id"]).run()
    assert not app.exception
    assert metric_values(app)["Corrections applied"] == "0"
    app.selectbox(key="metrics_compare").set_value(0).run()
    assert len(app.dataframe) == 1  # the report only


def test_a_dataset_without_finished_runs_says_so(factory, app_db, tmp_path):
    scanned_dataset(factory, tmp_path / "data")
    page = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    page.run()
    assert not page.exception
    assert "No finished training run yet" in page.info[0].value
