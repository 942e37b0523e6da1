"""History: the log of review decisions (who, when, what), filtered and paged; undo one; move the log as CSV.

Nothing in the log is ever changed: undo appends a reverting decision. The
whole log downloads as CSV and a CSV from another machine imports here
(matched by path; rows already in the log are skipped, so importing twice adds nothing).
"""
from __future__ import annotations

import io
import math

import pandas as pd
import streamlit as st

from db.corrections import DecisionError, describe_change, import_corrections_csv, undo_decision, write_corrections_csv
from db.queries import dataset_classes
from db.review import HistoryFilter, data_version, history_count, history_frame, history_reviewers
from ui.common import db_path, factory_for, open_page, reviewer_name, session_factory
from ui.review_widgets import notify, render_notice

PER_PAGE = 50
CACHE_TTL_S = 600
ACTIONS = ("relabel", "delete", "keep", "restore", "undo")
REVIEWER_FILTER_KEY, CLASS_FILTER_KEY, ACTION_FILTER_KEY = "history_reviewer", "history_class", "history_action"
PAGE_KEY, UNDO_ID_KEY, UPLOAD_KEY = "history_page", "history_undo_id", "import_log"
IMPORT_REPORT_KEY = "history_import_report"


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def load_facets(database: str, dataset_id: int, version: tuple) -> tuple[list[str], list[str]]:
    """(reviewers in the log, classes of the dataset)."""
    with factory_for(database)() as session:
        return history_reviewers(session, dataset_id), dataset_classes(session, dataset_id)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_count(database: str, dataset_id: int, version: tuple, history: HistoryFilter) -> int:
    with factory_for(database)() as session:
        return history_count(session, dataset_id, history)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_page(database: str, dataset_id: int, version: tuple, history: HistoryFilter, page: int) -> pd.DataFrame:
    """The matching decisions of 1-based `page`, newest first."""
    with factory_for(database)() as session:
        return history_frame(session, dataset_id, history, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=4, show_spinner=False)
def load_log_csv(database: str, dataset_id: int, version: tuple) -> str:
    stream = io.StringIO()
    with factory_for(database)() as session:
        write_corrections_csv(session, dataset_id, stream)
    return stream.getvalue()


def _first_page() -> None:
    st.session_state[PAGE_KEY] = 1


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "id": frame["id"],
        "when (UTC)": frame["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "reviewer": frame["reviewer"],
        "action": frame["action"],
        "path": frame["path"],
        "change": [describe_change(row) for row in frame.to_dict("records")],
        "note": frame["note"],
    })


def undo_chosen(dataset_id: int, reviewer: str) -> None:
    """Callback: undo the decision whose id is in the undo box."""
    correction_id = int(st.session_state.get(UNDO_ID_KEY) or 0)
    try:
        with session_factory().begin() as session:
            undo = undo_decision(session, correction_id, classes=dataset_classes(session, dataset_id),
                                 reviewer=reviewer, note=f"undo of decision {correction_id} from History")
            undo_id = undo.id
    except DecisionError as error:
        notify("error", f"Not undone: {error}")
        return
    notify("success", f"Decision {correction_id} undone (decision {undo_id}).")


def import_uploaded(dataset_id: int) -> None:
    """Callback: replay the uploaded corrections CSV into this dataset."""
    upload = st.session_state.get(UPLOAD_KEY)
    if upload is None:
        notify("error", "Choose a CSV file first.")
        return
    try:
        with session_factory().begin() as session:
            report = import_corrections_csv(session, dataset_id, io.StringIO(upload.getvalue().decode("utf-8")),
                                            classes=dataset_classes(session, dataset_id))
    except (DecisionError, UnicodeDecodeError) as error:
        notify("error", f"Cannot import {upload.name}: {error}")
        return
    notify("success", f"Imported {upload.name}: added {report.added} decisions, skipped {len(report.skipped)}.")
    st.session_state[IMPORT_REPORT_KEY] = pd.DataFrame(report.skipped, columns=["line", "path", "reason"])


def render_filters(reviewers: list[str], classes: list[str]) -> HistoryFilter:
    columns = st.columns(3)
    chosen_reviewers = columns[0].multiselect("Reviewer", reviewers, key=REVIEWER_FILTER_KEY, on_change=_first_page,
                                              placeholder="everyone")
    chosen_classes = columns[1].multiselect("Class (before or after)", classes, key=CLASS_FILTER_KEY,
                                            on_change=_first_page, placeholder="all classes")
    actions = columns[2].multiselect("Action", ACTIONS, key=ACTION_FILTER_KEY, on_change=_first_page,
                                     placeholder="all actions")
    return HistoryFilter(reviewers=tuple(chosen_reviewers), classes=tuple(chosen_classes), actions=tuple(actions))


def render_transfer(database: str, dataset_id: int, dataset_name: str, version: tuple) -> None:
    with st.expander("Move the log between machines (CSV)"):
        st.download_button("Download the whole log", load_log_csv(database, dataset_id, version),
                           file_name=f"{dataset_name}-corrections.csv", mime="text/csv", key="download_log",
                           on_click="ignore")
        st.file_uploader("Import a log exported elsewhere", type=["csv"], key=UPLOAD_KEY)
        st.button("Import", key="import_run", on_click=import_uploaded, args=(dataset_id,))
        skipped = st.session_state.get(IMPORT_REPORT_KEY)
        if skipped is not None and not skipped.empty:
            st.caption("Rows not imported, and why")
            st.dataframe(skipped, hide_index=True, key="import_skipped")


def main() -> None:
    dataset = open_page("History")
    reviewer = reviewer_name()
    if dataset is None:
        return
    database = str(db_path())
    with session_factory()() as session:
        version = data_version(session, dataset.id)
    render_notice()
    reviewers, classes = load_facets(database, dataset.id, version)
    history = render_filters(reviewers, classes)
    total = load_count(database, dataset.id, version, history)
    pages = max(1, math.ceil(total / PER_PAGE))
    if st.session_state.get(PAGE_KEY, 1) > pages:
        st.session_state[PAGE_KEY] = pages
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=PAGE_KEY, width=160)
    frame = load_page(database, dataset.id, version, history, int(page))
    st.caption(f"{total} decisions" + (" match the filters" if history != HistoryFilter() else ""))
    if frame.empty:
        st.info("No decisions yet." if history == HistoryFilter() else "No decision matches the filters.")
    else:
        st.dataframe(display_table(frame), hide_index=True, key="history_table")
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.number_input("Decision id", min_value=0, step=1, key=UNDO_ID_KEY, width=160,
                        help="Only the latest decision on an image can be undone; undo appends a reverting decision.")
        st.button("Undo this decision", key="history_undo", on_click=undo_chosen, args=(dataset.id, reviewer),
                  disabled=not reviewer, help=None if reviewer else "Enter your name in the sidebar first")
    render_transfer(database, dataset.id, dataset.name, version)


main()
