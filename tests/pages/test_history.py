"""The History page with AppTest: the log, its filters and paging, undo from there, CSV download and import."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.corrections import decide, undo_decision, write_corrections_csv
from db.models import Correction, Sample
from db.review import export_frame
from tests.review_data import CLASSES, build_review_data

TIMEOUT_S = 30
PAGE = Path(__file__).resolve().parents[2] / "pages" / "6_History.py"


@pytest.fixture
def data(tmp_path, factory, app_db):
    return build_review_data(tmp_path / "tiny", factory)


def _decide(factory, data, path, action, **options) -> int:
    with factory.begin() as session:
        return decide(session, session.get(Sample, data.sample_ids[path]), action, classes=CLASSES, **options).id


@pytest.fixture
def decided(factory, data):
    _decide(factory, data, "bag/bag-0.png", "relabel", new_label="phone", reviewer="ann", note="clearly a phone")
    _decide(factory, data, "shoe/shoe-1.png", "delete", reviewer="bob")
    _decide(factory, data, "phone/phone-0.png", "keep", reviewer="ann")
    return data


def open_history(reviewer: str = "carol") -> AppTest:
    app = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    app.run()
    if reviewer:
        app.text_input(key="reviewer").set_value(reviewer).run()
    assert not app.exception, app.exception
    return app


def table(app: AppTest):
    return app.dataframe[0].value


def test_the_log_lists_who_when_what_newest_first(decided):
    app = open_history()
    log = table(app)
    assert list(log["action"]) == ["keep", "delete", "relabel"]
    assert list(log["reviewer"]) == ["ann", "bob", "ann"]
    assert log.iloc[2]["change"] == "bag → phone" and log.iloc[2]["note"] == "clearly a phone"
    assert log.iloc[1]["change"] == "shoe → shoe (deleted)"
    assert "3 decisions" in app.caption[0].value


def test_a_price_fix_and_its_undo_read_as_prices(factory, data):
    with factory.begin() as session:
        session.get(Sample, data.sample_ids["phone/phone-2.png"]).price = 45450.0
    fix = _decide(factory, data, "phone/phone-2.png", "price", new_price=45.0, reviewer="ann")
    _decide(factory, data, "phone/phone-2.png", "relabel", new_label="bag", reviewer="ann")
    with factory() as session:  # the fixed price stands through the later relabel
        assert export_frame(session, data.dataset_id).set_index("path").loc["phone/phone-2.png", "price_fixed"]
    with factory.begin() as session:
        for correction_id in sorted(session.scalars(select(Correction.id).where(Correction.id >= fix)), reverse=True):
            undo_decision(session, correction_id, classes=CLASSES, reviewer="ann")
    app = open_history()
    assert list(table(app)["change"]) == ["45.00 → 45,450.00", "bag → phone", "phone → bag", "45,450.00 → 45.00"]
    with factory() as session:
        assert not export_frame(session, data.dataset_id).set_index("path").loc["phone/phone-2.png", "price_fixed"]


def test_filters_by_reviewer_class_and_action(decided):
    app = open_history()
    app.multiselect(key="history_reviewer").set_value(["bob"]).run()
    assert list(table(app)["path"]) == ["shoe/shoe-1.png"]
    app.multiselect(key="history_reviewer").set_value([]).run()
    app.multiselect(key="history_class").set_value(["phone"]).run()
    assert list(table(app)["path"]) == ["phone/phone-0.png", "bag/bag-0.png"]
    app.multiselect(key="history_action").set_value(["relabel"]).run()
    assert list(table(app)["path"]) == ["bag/bag-0.png"]
    app.multiselect(key="history_class").set_value(["shoe"]).run()
    assert "No decision matches the filters." in app.info[0].value


def test_pages_through_a_long_log(factory, data):
    for _ in range(30):
        _decide(factory, data, "bag/bag-0.png", "delete", reviewer="ann")
        _decide(factory, data, "bag/bag-0.png", "restore", reviewer="ann")
    app = open_history()
    assert len(table(app)) == 50 and table(app)["id"].iloc[0] == 60
    app.number_input(key="history_page").set_value(2).run()
    assert list(table(app)["id"]) == list(range(10, 0, -1))


def test_undo_a_decision_from_the_log(factory, decided):
    app = open_history()
    app.number_input(key="history_undo_id").set_value(2).run()
    app.button(key="history_undo").click().run()
    assert "Decision 2 undone" in app.success[0].value
    assert table(app).iloc[0][["action", "reviewer", "path"]].tolist() == ["undo", "carol", "shoe/shoe-1.png"]
    app.number_input(key="history_undo_id").set_value(2).run()
    app.button(key="history_undo").click().run()
    assert "was undone already" in app.error[0].value


def test_undo_from_the_log_refuses_a_decision_that_is_not_the_latest(factory, decided):
    _decide(factory, decided, "bag/bag-0.png", "delete", reviewer="bob")
    app = open_history()
    app.number_input(key="history_undo_id").set_value(1).run()
    app.button(key="history_undo").click().run()
    assert "only the latest decision on bag/bag-0.png can be undone; decision 4 came after it" in app.error[0].value


def test_download_offers_the_whole_log(decided):
    app = open_history()
    button = app.download_button(key="download_log")
    assert button.label == "Download the whole log" and button.proto.url


def test_import_a_log_from_another_machine_reports_what_it_skipped(tmp_path, factory, decided):
    stream = io.StringIO()
    with factory() as session:
        write_corrections_csv(session, decided.dataset_id, stream)
    lines = stream.getvalue().splitlines()
    extra = lines[1].replace("bag/bag-0.png", "bag/nowhere.png").replace(",1,", ",9,", 1)
    upload = "\n".join(lines + [extra]).encode()
    app = open_history()
    app.file_uploader(key="import_log").upload("log.csv", upload, "text/csv").run()
    app.button(key="import_run").click().run()
    assert not app.exception, app.exception
    assert "added 0 decisions, skipped 4" in app.success[0].value  # everything is already here
    reasons = list(app.dataframe[1].value["reason"])  # dataframes carry no key in AppTest
    assert reasons.count("already in the log") == 3 and "no sample with this path in the dataset" in reasons
    with factory() as session:
        assert session.scalar(select(func.count(Correction.id))) == 3


def test_import_of_a_file_that_is_not_a_log(decided):
    app = open_history()
    app.file_uploader(key="import_log").upload("x.csv", b"a,b\n1,2\n", "text/csv").run()
    app.button(key="import_run").click().run()
    assert "missing columns" in app.error[0].value
