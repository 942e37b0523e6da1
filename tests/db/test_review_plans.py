"""The Review page's queries read indexes in the order they need (SQLite's query plans): no sort of a whole
audit's flags or a whole class's samples, and no reading of rows an index already holds."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy import event

from db.engine import make_engine, make_session_factory
from db.review import QueueFilter, class_examples, class_prices, queue_count, queue_flag_ids
from tests.review_data import build_review_data


@pytest.fixture
def sqlite_factory(tmp_path):
    engine = make_engine(tmp_path / "plans.db")
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def data(tmp_path, sqlite_factory):
    return build_review_data(tmp_path / "tiny", sqlite_factory)


@contextmanager
def query_plans(session) -> Iterator[list[tuple[str, list[tuple[int, str]]]]]:
    """Each SELECT the session runs meanwhile with SQLite's plan of it, as (parent id, detail) rows."""
    statements = []

    def record(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", record)
    plans: list[tuple[str, list[tuple[int, str]]]] = []
    try:
        yield plans
    finally:
        event.remove(connection, "before_cursor_execute", record)
    cursor = connection.connection.driver_connection.cursor()
    for statement, parameters in statements:
        plans.append((statement, [(parent, detail) for _, parent, _, detail in
                                  cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()]))


def top_level(plan: list[tuple[int, str]]) -> list[str]:
    return [detail for parent, detail in plan if parent == 0]


def test_a_queue_page_walks_the_audit_worst_first_on_its_covering_index(sqlite_factory, data):
    with sqlite_factory() as session, query_plans(session) as plans:
        queue_flag_ids(session, data.job_id, QueueFilter(), offset=0, limit=20)
        queue_flag_ids(session, data.job_id, QueueFilter(kinds=("mislabel",)), offset=0, limit=20)
    everything, mislabels = (top_level(plan) for _, plan in plans)
    assert any("COVERING INDEX ix_flags_queue " in detail for detail in everything), everything
    assert any("COVERING INDEX ix_flags_queue_kind " in detail for detail in mislabels), mislabels
    assert not [detail for detail in everything + mislabels if "TEMP B-TREE" in detail]


def test_counting_the_queue_reads_no_flag_row(sqlite_factory, data):
    with sqlite_factory() as session, query_plans(session) as plans:
        queue_count(session, data.job_id, QueueFilter())
    searches = [detail for detail in top_level(plans[0][1]) if detail.startswith(("SEARCH flags", "SCAN flags"))]
    assert searches and all("COVERING INDEX" in detail for detail in searches), searches


def test_class_examples_and_prices_read_only_an_index_of_the_class(sqlite_factory, data):
    with sqlite_factory() as session, query_plans(session) as plans:
        class_examples(session, data.dataset_id, "bag", limit=2)
        class_prices(session, data.dataset_id, "phone")
    examples = [top_level(plan) for statement, plan in plans if "ORDER BY samples.content_hash" in statement]
    prices = [top_level(plan) for statement, plan in plans if statement.startswith("SELECT samples.price")][0]
    assert len(examples) == 2  # one unflagged bag image: the flagged ones fill up
    for plan in examples:
        assert any("INDEX ix_samples_class_hash" in detail for detail in plan), plan
        assert not [detail for detail in plan if "TEMP B-TREE" in detail], plan
    assert any("COVERING INDEX ix_samples_class_price" in detail for detail in prices), prices
