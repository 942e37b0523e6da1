"""Tests of the Metrics page with AppTest, on two real one-epoch runs of a tiny dataset."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.models.metrics import cell_members
from db.corrections import decide
from db.engine import make_engine, make_session_factory
from db.evaluation import compare_runs
from db.models import Correction, Job, Sample
from db.review import sample_view
from db.queries import dataset_classes
from db.runs import run_result
from jobs.runner import run_job
from tests.training_data import CLASSES, create_train_job, scanned_dataset

TIMEOUT_S = 60
GRID_COLUMNS = 6  # pages/5_Metrics.py
PAGE = Path(__file__).resolve().parents[2] / "pages" / "5_Metrics.py"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """(database path, first run result, second run result): run 2 trained after one relabel. Half the
    images validate, so that a confusion cell holds several."""
    folder = tmp_path_factory.mktemp("metrics")
    database = folder / "listing-audit.db"
    engine = make_engine(database)
    factory = make_session_factory(engine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset = scanned_dataset(factory, folder / "data")
        first = run_job(factory, create_train_job(factory, dataset, split="run", val_fraction=0.5))
        with factory.begin() as session:
            sample = session.scalars(select(Sample).where(Sample.path == "bag/bag-0.jpg")).one()
            decide(session, sample, "relabel", classes=dataset_classes(session, dataset), new_label="dress")
        second = run_job(factory, create_train_job(factory, dataset, seed=0, split="run",
                                                   val_fraction=0.5))
    finally:
        torch.set_num_threads(threads)
        engine.dispose()
    assert first.status == second.status == "succeeded"
    return database, run_result(first), run_result(second)


def open_metrics(database: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("LISTING_AUDIT_DB", str(database))
    monkeypatch.delenv("LISTING_AUDIT_DATASET", raising=False)
    page = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    page.run()
    assert not page.exception, page.exception
    return page


@pytest.fixture
def app(two_runs, monkeypatch) -> AppTest:
    return open_metrics(two_runs[0], monkeypatch)


@pytest.fixture
def own_database(two_runs, tmp_path) -> Path:
    """A copy of the runs' database, for a test that makes decisions."""
    copy = tmp_path / two_runs[0].name
    shutil.copyfile(two_runs[0], copy)
    return copy


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


def test_the_images_of_a_cell_line_up_in_rows(two_runs, own_database, monkeypatch):
    """More images in a cell than a row holds: each row of tiles gets its own columns (a column holding
    several tiles stacks them, and captions of different lengths push the rows out of line)."""
    engine = make_engine(own_database)
    try:  # the newest run, its validation images all moved into the cell bag -> bag
        with make_session_factory(engine).begin() as session:
            job = session.get(Job, two_runs[2]["run_id"])
            result = json.loads(job.result_json)
            images = len(result["validation"]["sample_ids"])
            result["validation"]["true"] = result["validation"]["pred"] = [0] * images
            job.result_json = json.dumps(result)
    finally:
        engine.dispose()
    assert images > GRID_COLUMNS, "the tiny run needs a cell of more than one row"
    page = open_metrics(own_database, monkeypatch)
    page.selectbox(key="cell_true").set_value(CLASSES[0])
    page.selectbox(key="cell_pred").set_value(CLASSES[0])
    page.run()
    assert not page.exception
    assert [len(column.get("image")) for column in page.columns if len(column.get("image"))] == [1] * images


def test_two_runs_are_compared_on_the_same_images_against_todays_labels(app, two_runs):
    database, first, second = two_runs
    assert app.selectbox(key="metrics_compare").value == first["run_id"]  # the older run by default
    assert app.radio(key="metrics_labels").value == "current"
    with make_session_factory(make_engine(database))() as session:
        expected = compare_runs(session, first["run_id"], second["run_id"])
    ground = next(c.value for c in app.caption if c.value.startswith(f"Run {first['run_id']} → run"))
    assert f"on the {expected.images} validation images both runs scored, against today's labels" in ground
    comparison = app.dataframe[1].value
    assert comparison["class"].tolist() == [*CLASSES, "macro avg"]
    row = expected.changes.set_index(["row", "metric"]).loc[(CLASSES[0], "f1")]
    assert comparison["f1"].iloc[0] == f"{row.before:.3f} → {row.after:.3f}"
    assert comparison["f1_change"].iloc[0] == f"{row.change:+.3f} ({row.low:+.3f} to {row.high:+.3f})"
    # every column has a width, and together they fit beside the sidebar of a 1440 px wide window
    config = json.loads(app.dataframe[1].proto.columns)
    widths = {name: column.get("width") for name, column in config.items() if name != "_index"}
    assert set(widths) == set(comparison.columns) and sum(widths.values()) <= 1100
    accuracy = expected.overall("accuracy")
    label = f"Accuracy, run {second['run_id']} (vs {first['run_id']}, same images)"
    assert next(m for m in app.metric if m.label == label).delta == \
        f"{accuracy.change:+.3f} ({accuracy.low:+.3f} to {accuracy.high:+.3f})"
    own = app.dataframe[2].value  # the expander with each run as it scored itself
    assert own["f1_delta"].iloc[0] == pytest.approx(second["metrics"]["f1"][0] - first["metrics"]["f1"][0], abs=1e-3)


def test_verified_labels_count_only_what_a_reviewer_decided(app, two_runs):
    app.radio(key="metrics_labels").set_value("verified").run()
    assert not app.exception
    ground = next(c.value for c in app.caption if "verified labels only" in c.value)
    assert "on the 0 validation images" in ground  # the one relabelled listing is not a validation image of both
    assert any("No listing that both runs scored has been relabelled or kept" in i.value for i in app.info)


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


def busiest_off_diagonal_cell(result: dict) -> tuple[int, int, list[int]]:
    """(true class, predicted class, sample ids) of the run's off-diagonal cell with the most validation images."""
    validation = result["validation"]
    cells = [(t, p) for t in range(len(CLASSES)) for p in range(len(CLASSES)) if t != p]
    members = {cell: cell_members(validation["true"], validation["pred"], true_class=cell[0], pred_class=cell[1])
               for cell in cells}
    true, pred = max(cells, key=lambda cell: len(members[cell]))
    return true, pred, [validation["sample_ids"][position] for position in members[(true, pred)]]


def current_states(database: Path, sample_ids: list[int]) -> dict[int, tuple[str, bool]]:
    engine = make_engine(database)
    try:
        with make_session_factory(engine)() as session:
            view = sample_view(session, sample_ids)
            return {int(i): (view.at[i, "current_label"], bool(view.at[i, "deleted"])) for i in sample_ids}
    finally:
        engine.dispose()


def corrections_of(database: Path, sample_ids: list[int]) -> list[Correction]:
    engine = make_engine(database)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(Correction).where(Correction.sample_id.in_(sample_ids))
                                        .order_by(Correction.id)))
    finally:
        engine.dispose()


def test_ticked_images_of_a_cell_are_relabelled_to_the_prediction_as_one_action_and_undone_together(
        two_runs, own_database, monkeypatch):
    true, pred, sample_ids = busiest_off_diagonal_cell(two_runs[2])
    assert len(sample_ids) >= 3, "the tiny run needs a cell with three images"
    chosen, left = sample_ids[:2], sample_ids[2:]
    page = open_metrics(own_database, monkeypatch)
    page.selectbox(key="cell_true").set_value(CLASSES[true])
    page.selectbox(key="cell_pred").set_value(CLASSES[pred]).run()
    for sample_id in chosen:
        page.checkbox(key=f"cell_tick_{sample_id}").check()
    page.run()
    assert page.button(key="cell_relabel").disabled, "no reviewer name yet"
    assert any("Enter your name under Reviewer" in caption.value for caption in page.caption)

    page.text_input(key="reviewer").input("ana").run()
    assert page.button(key="cell_relabel").label == f"Relabel 2 ticked to {CLASSES[pred]}"
    page.button(key="cell_relabel").click().run()
    assert not page.exception
    assert any(f"Relabelled 2 images to {CLASSES[pred]}" in success.value for success in page.success)
    relabels = corrections_of(own_database, sample_ids)
    assert [(c.sample_id, c.action, c.new_label, c.reviewer) for c in relabels] == [
        (sample_id, "relabel", CLASSES[pred], "ana") for sample_id in chosen]
    assert relabels[0].batch_id is not None and relabels[0].batch_id == relabels[1].batch_id
    assert relabels[0].note == f"Metrics, run {two_runs[2]['run_id']}: {CLASSES[true]} predicted as {CLASSES[pred]}"
    assert current_states(own_database, sample_ids) == {
        **{i: (CLASSES[pred], False) for i in chosen}, **{i: (CLASSES[true], False) for i in left}}
    captions = [image.proto.imgs[0].caption for image in page.get("image")]
    assert sum(f"now {CLASSES[pred]}" in caption for caption in captions) == 2
    assert not any(page.checkbox(key=f"cell_tick_{sample_id}").value for sample_id in chosen)  # ticks cleared

    page.button(key="cell_undo").click().run()
    assert not page.exception
    assert current_states(own_database, sample_ids) == {i: (CLASSES[true], False) for i in sample_ids}
    assert [c.action for c in corrections_of(own_database, sample_ids)] == ["relabel", "relabel", "undo", "undo"]


def test_ticked_images_of_a_cell_can_be_deleted(two_runs, own_database, monkeypatch):
    true, pred, sample_ids = busiest_off_diagonal_cell(two_runs[2])
    page = open_metrics(own_database, monkeypatch)
    page.text_input(key="reviewer").input("ben")
    page.selectbox(key="cell_true").set_value(CLASSES[true])
    page.selectbox(key="cell_pred").set_value(CLASSES[pred]).run()
    page.button(key="cell_tick_all").click().run()
    assert all(page.checkbox(key=f"cell_tick_{sample_id}").value for sample_id in sample_ids)
    page.button(key="cell_delete").click().run()
    assert not page.exception
    assert current_states(own_database, sample_ids) == {i: (CLASSES[true], True) for i in sample_ids}
    assert {c.reviewer for c in corrections_of(own_database, sample_ids)} == {"ben"}
    assert all(page.checkbox(key=f"cell_tick_{sample_id}").disabled for sample_id in sample_ids)


def test_a_diagonal_cell_offers_no_relabel(app):
    app.text_input(key="reviewer").input("ana")
    app.selectbox(key="cell_true").set_value(CLASSES[2])
    app.selectbox(key="cell_pred").set_value(CLASSES[2]).run()
    app.button(key="cell_tick_all").click().run()
    assert not app.button(key="cell_delete").disabled
    relabel = app.button(key="cell_relabel")
    assert relabel.disabled and "off the diagonal" in relabel.help
