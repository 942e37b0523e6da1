"""Tests of how db/engine.py tells the backends apart: locations, URLs, data folders, dialect-specific SQL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import (
    DatabaseAccessError, canonical_location, data_dir, database_stem, database_url, describe_database, is_sqlite,
    json_text, make_engine, make_session_factory,
)
from db.models import Dataset, Job, Setting
from db.runs import database_identity


@pytest.mark.parametrize("location, driver, database", [
    ("data/listing-audit.db", "sqlite", "data/listing-audit.db"),
    ("sqlite:///data/a.db", "sqlite", "data/a.db"),
    ("sqlite:////abs/a.db", "sqlite", "/abs/a.db"),
    ("postgresql://ann@db.example/listings", "postgresql+psycopg", "listings"),
    ("postgres://ann@db.example:5433/listings", "postgresql+psycopg", "listings"),
    ("postgresql+psycopg://ann:pw@db.example/listings", "postgresql+psycopg", "listings"),
])
def test_a_location_is_a_sqlite_path_or_a_postgresql_url(location, driver, database):
    url = database_url(location)
    assert (url.drivername, url.database) == (driver, database)
    assert is_sqlite(url) == (driver == "sqlite")


@pytest.mark.parametrize("location", [
    "mysql://ann@db.example/listings", "sqlite://", "sqlite:///:memory:", "postgresql://db.example",
    "postgresql+asyncpg://ann@db.example/listings", "://nothing",
])
def test_other_urls_are_refused_in_one_line(location):
    with pytest.raises(DatabaseAccessError, match=r"^unsupported database .*: give the path of a SQLite file or a "
                                                  r"postgresql\+psycopg://user@host/db URL$"):
        database_url(location)


def test_messages_never_show_a_password_but_the_canonical_location_keeps_it(tmp_path, monkeypatch):
    url = "postgresql://ann:secret@db.example/listings"
    assert describe_database(url) == "postgresql+psycopg://ann:***@db.example/listings"
    assert canonical_location(url) == "postgresql+psycopg://ann:secret@db.example/listings"
    monkeypatch.chdir(tmp_path)
    assert canonical_location("sub/a.db") == str(tmp_path / "sub" / "a.db")


def test_runs_and_logs_live_beside_a_sqlite_file_and_in_the_data_dir_for_a_server(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LISTING_AUDIT_DATA_DIR", str(tmp_path / "team-data"))
    engine = make_engine(db_path)
    try:
        if is_sqlite(engine.url):
            assert data_dir(engine) == Path(db_path).resolve().parent
            assert database_stem(engine) == "listing-audit"
        else:
            assert data_dir(engine) == tmp_path / "team-data"
            assert database_stem(engine) == engine.url.database
    finally:
        engine.dispose()


def test_json_fields_of_text_columns_read_the_same_on_every_backend(factory):
    result = {"seconds": 12.5, "phases": {"train": 10.0}, "device": "cpu", "metrics": {"macro_avg": {"f1": 0.5}}}
    with factory.begin() as session:
        dataset = Dataset(root="/data/shop", name="shop")
        session.add(dataset)
        session.flush()
        session.add(Job(dataset_id=dataset.id, kind="train", status="succeeded", params_json=json.dumps({}),
                        result_json=json.dumps(result)))
    fields = json_text(Job.result_json)
    with factory() as session:
        row = session.execute(select(fields["seconds"].as_float(), fields["phases"], fields["device"].as_string(),
                                     fields[("metrics", "macro_avg", "f1")].as_float(),
                                     fields["missing"].as_string())).one()
    assert tuple(row) == (12.5, {"train": 10.0}, "cpu", 0.5, None)


def test_the_database_identity_is_made_once_and_kept(factory):
    with factory.begin() as session:
        first = database_identity(session)
    with factory.begin() as session:
        assert database_identity(session) == first
        assert session.scalars(select(Setting.key)).all() == ["database_id"]
    assert len(first) == 32


def test_a_database_that_does_not_exist_on_the_server_is_one_line(postgres_databases):
    missing = postgres_databases.server_url.set(database="no_such_database").render_as_string(False)
    with pytest.raises(DatabaseAccessError) as refused:
        make_session_factory(make_engine(missing))
    message = str(refused.value)
    assert message.startswith("cannot connect to the database postgresql+psycopg://") and "\n" not in message
    assert 'database "no_such_database" does not exist' in message
