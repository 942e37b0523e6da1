"""The Review page's work on a dataset's audit queue, timed: its loaders, one item's evidence, one decision,
and the page itself rendered by streamlit's AppTest. Part of bench/scale.py.

After a decision every loader of the page that is keyed by the data version misses its cache, so one
round here is: the loaders the page calls on such a miss (db.review, db.flags), the evidence of the item
it shows, and a decision written as the page writes it (db.engine.write_transaction around
db.corrections.decide). The loaders keyed by the scan version only (classes, examples, prices) miss once
per scan; they are timed all the same.
"""
from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from sqlalchemy import select

from core.models.neighbours import nearest, unit_rows
from db.corrections import decide
from db.embeddings import dataset_embeddings
from db.engine import write_transaction
from db.models import Correction, Flag, Sample
from db.queries import dataset_classes
from db.review import (
    QueueFilter, class_examples, class_prices, data_version, duplicate_members, queue_count, queue_page,
    queue_summary, sample_view,
)

PER_PAGE = 20  # pages/2_Review.py
EXAMPLES_PER_CLASS = 4
NEIGHBOURS = 6
REVIEWER = "scale-bench"
PAGE = Path(__file__).resolve().parent.parent / "pages" / "2_Review.py"
APPTEST_TIMEOUT_S = 300


def _timed(work: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


class QueueTimer:
    """Times the page's loaders on one dataset's latest audit, in fresh sessions as the page's cached
    loaders open them; `times[name]` collects seconds per call."""

    def __init__(self, factory, dataset_id: int):
        self.factory, self.dataset_id = factory, dataset_id
        self.times: dict[str, list[float]] = {}
        with factory() as session:
            self.version = data_version(session, dataset_id)
            self.classes = dataset_classes(session, dataset_id)
        self.job_id = self.version[0]
        self.neighbour_index = None
        self.open_items = 0

    def run(self, name: str, query: Callable):
        seconds, value = _timed(lambda: self._in_session(query))
        self.times.setdefault(name, []).append(seconds)
        return value

    def _in_session(self, query: Callable):
        with self.factory() as session:
            return query(session)

    def render_queries(self) -> pd.DataFrame:
        """What the page loads after a decision, before its item: version, summary, counts, the page."""
        queue = QueueFilter(state="open")
        self.version = self.run("data_version", lambda s: data_version(s, self.dataset_id))
        self.run("queue_summary", lambda s: queue_summary(s, self.job_id))
        self.open_items = self.run("queue_count", lambda s: queue_count(s, self.job_id, queue))
        self.run("queue_count_mislabel", lambda s: queue_count(s, self.job_id, replace(queue, kinds=("mislabel",))))
        return self.run("queue_page", lambda s: queue_page(s, self.job_id, queue, offset=0, limit=PER_PAGE))

    def item_queries(self, item: pd.Series) -> None:
        """The evidence the page loads for `item`, by kind (pages/2_Review.py render_evidence)."""
        sample_id = int(item["sample_id"])
        if item["kind"] == "mislabel":
            self._neighbours(sample_id)
            for label in filter(None, (item["given_label"], item["suggested_label"])):
                self.run("class_examples", lambda s: class_examples(
                    s, self.dataset_id, label, limit=EXAMPLES_PER_CLASS, exclude=(sample_id,)))
        elif item["kind"] == "price":
            self.run("class_prices", lambda s: class_prices(s, self.dataset_id, item["given_label"]))
        elif item["kind"] == "duplicate":
            self.run("duplicate_members", lambda s: duplicate_members(s, self.job_id, int(item["flag_id"])))

    def _neighbours(self, sample_id: int) -> None:
        if self.neighbour_index is None:  # the page keeps it per audit and scan (st.cache_resource)
            _, ids, hashes, vectors = self.run("neighbour_index", lambda s: dataset_embeddings(s, self.dataset_id))
            self.neighbour_index = ids, hashes, unit_rows(vectors) if len(ids) else vectors
        ids, hashes, unit = self.neighbour_index
        found = np.flatnonzero(ids == sample_id)
        if found.size:
            rows, _ = nearest(unit, int(found[0]), NEIGHBOURS, exclude=hashes == hashes[found[0]])
            self.run("neighbours", lambda s: sample_view(s, ids[rows].tolist()))

    def decide_keep(self, item: Mapping) -> None:
        """Keep `item`'s sample, as the page's Keep button does; closes its flag (if it has one)."""
        def record(session):
            sample = session.get(Sample, int(item["sample_id"]))
            flag_id = None if item["flag_id"] is None else int(item["flag_id"])
            return decide(session, sample, "keep", classes=self.classes, reviewer=REVIEWER,
                          expected_last_id=int(item["last_correction_id"]), flag_id=flag_id).id

        seconds, _ = _timed(lambda: write_transaction(self.factory, record))
        self.times.setdefault("decision", []).append(seconds)


def _first_of_each_kind(factory, job_id: int) -> list[pd.Series]:
    """The worst open item of each kind, so every kind's evidence is timed."""
    items = []
    with factory() as session:
        for kind in ("mislabel", "price", "duplicate", "broken"):
            page = queue_page(session, job_id, QueueFilter(kinds=(kind,)), offset=0, limit=1)
            items.extend(row for _, row in page.iterrows())
    return items


def _summary(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median and worst milliseconds per query, the first (cold) call left out when there are others."""
    result = {}
    for name, values in times.items():
        kept = values[1:] if len(values) > 1 else values
        result[name] = {"median_ms": statistics.median(kept) * 1000, "max_ms": max(kept) * 1000, "calls": len(kept)}
    return result


def review_timings(factory, dataset_id: int, *, repeat: int, database: str, apptest: bool) -> dict:
    """Time `repeat` rounds (after one warm-up) of: the page's loaders, its first item's evidence and a
    decision on that item; then each kind's first item's evidence; then the page in AppTest.

    Returns per query {median_ms, max_ms, calls}, the sum of the render queries' medians
    (`render_queries_ms`), the open items before the first decision, and the AppTest timings when asked for.
    """
    timer = QueueTimer(factory, dataset_id)
    if not timer.job_id:
        raise SystemExit("error: the dataset has no succeeded audit to review")
    open_items = None
    for _ in range(repeat + 1):
        page = timer.render_queries()
        open_items = timer.open_items if open_items is None else open_items
        if page.empty:
            break
        timer.item_queries(page.iloc[0])
        timer.decide_keep(page.iloc[0])
    for item in _first_of_each_kind(factory, timer.job_id):
        for _ in range(2):
            timer.item_queries(item)
    summary = _summary(timer.times)
    render_names = ("data_version", "queue_summary", "queue_count", "queue_count_mislabel", "queue_page")
    result = {"queries": summary, "open_items": open_items,
              "render_queries_ms": sum(summary[name]["median_ms"] for name in render_names if name in summary)}
    if apptest:
        result["apptest"] = apptest_render(factory, dataset_id, database=database, repeat=repeat, timer=timer)
    return result


def apptest_render(factory, dataset_id: int, *, database: str, repeat: int, timer: QueueTimer) -> dict:
    """pages/2_Review.py in AppTest: the first run (empty caches, imports), then `repeat` runs each after a
    decision made elsewhere (a `keep` on a sample without flags: every loader keyed by the data version
    misses, the item shown stays), and a rerun with nothing changed (every loader hits). Milliseconds."""
    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    os.environ["LISTING_AUDIT_DB"] = database
    app = AppTest.from_file(str(PAGE), default_timeout=APPTEST_TIMEOUT_S)
    app.session_state["reviewer"] = REVIEWER
    app.session_state["dataset_id"] = dataset_id
    first, _ = _timed(app.run)
    _raise_page_error(app)
    after_decision, unchanged = [], []
    for sample_id in _unflagged_samples(factory, dataset_id, repeat):
        timer.decide_keep({"sample_id": sample_id, "last_correction_id": 0, "flag_id": None})
        after_decision.append(_timed(app.run)[0])
        unchanged.append(_timed(app.run)[0])
        _raise_page_error(app)
    return {"first_ms": first * 1000, "after_decision_ms": statistics.median(after_decision) * 1000,
            "after_decision_max_ms": max(after_decision) * 1000, "unchanged_ms": statistics.median(unchanged) * 1000,
            "heading": app.subheader[0].value if app.subheader else ""}


def _raise_page_error(app) -> None:
    if app.exception:
        raise SystemExit(f"error: the Review page failed: {app.exception[0].message}")


def _unflagged_samples(factory, dataset_id: int, count: int) -> list[int]:
    """`count` samples of the dataset that no audit flagged and no one decided on."""
    with factory() as session:
        return list(session.scalars(
            select(Sample.id).where(Sample.dataset_id == dataset_id,
                                    ~select(Flag.id).where(Flag.sample_id == Sample.id).exists(),
                                    ~select(Correction.id).where(Correction.sample_id == Sample.id).exists())
            .order_by(Sample.id).limit(count)))
