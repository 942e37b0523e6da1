"""The app on a PostgreSQL database: home, Review decisions and conflicts, History, with AppTest.

The page tests run on SQLite; these walk the same pages once against a fresh
database on the tests' throwaway PostgreSQL server (tests/postgres.py), as a
team's app server would use it.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from db.corrections import decide
from db.engine import make_engine, make_session_factory
from db.models import Sample
from tests.pages.test_review import heading, log, open_review
from tests.review_data import CLASSES, build_review_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server_factory(postgres_databases, tmp_path, monkeypatch):
    """A fresh PostgreSQL database as the app's database (LISTING_AUDIT_DB), with the data dir in tmp_path."""
    url = postgres_databases.create()
    monkeypatch.setenv("LISTING_AUDIT_DB", url)
    monkeypatch.setenv("LISTING_AUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LISTING_AUDIT_ROOTS", str(tmp_path))
    monkeypatch.delenv("LISTING_AUDIT_DATASET", raising=False)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()
    postgres_databases.drop(url)


@pytest.fixture
def data(tmp_path, server_factory):
    return build_review_data(tmp_path / "tiny", server_factory)


def test_home_page_shows_the_dataset_and_its_audit(data):
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    assert not app.error, [error.value for error in app.error]


def test_review_decisions_and_a_named_conflict_on_a_server(server_factory, data):
    app = open_review(kinds=("mislabel",))
    app.button(key="accept_suggestion").click().run()
    assert not app.exception, app.exception
    assert log(server_factory) == [("bag/bag-0.png", "relabel", "phone", False, "ann",
                                    data.flag_ids["bag/bag-0.png"])]
    shown = heading(app).split(" · ")[-1]
    with server_factory.begin() as session:  # bob decides on the image ann is looking at
        decide(session, session.get(Sample, data.sample_ids[shown]), "delete", classes=CLASSES, reviewer="bob")
    app.button(key="keep").click().run()
    shown_text = app.warning[0].value.replace("\\", "")  # the page escapes markdown in messages
    assert f"{shown} was changed by someone else since you loaded it (bob deleted it at " in shown_text
    assert [(action, reviewer) for _, action, _, _, reviewer, _ in log(server_factory)] == [
        ("relabel", "ann"), ("delete", "bob")]


def test_history_shows_who_decided_what(server_factory, data):
    with server_factory.begin() as session:
        decide(session, session.get(Sample, data.sample_ids["shoe/shoe-1.png"]), "delete", classes=CLASSES,
               reviewer="bob")
    app = AppTest.from_file(str(ROOT / "pages" / "6_History.py"), default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert list(table["reviewer"]) == ["bob"] and "shoe/shoe-1.png" in list(table["path"])
