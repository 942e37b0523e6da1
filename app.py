"""listing-audit home page: scan a dataset folder, pick a dataset, see what it contains.

Scans run in a worker process (`jobs.runner.spawn_job`); this page only starts
them and shows their progress, which lives in the database and so survives a reload.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.scan.roots import allowed_roots, check_folder_to_scan
from db.browse import DatasetOverview, dataset_overview, dataset_version
from db.queries import get_or_create_dataset, list_datasets
from jobs.runner import ACTIVE, create_job, latest_job, reap_dead_jobs, spawn_job
from ui.audit_panel import render_audit_section
from ui.common import (
    DatasetRef, db_path, factory_for, job_name, job_status_panel, render_navigation, render_reviewer,
    select_dataset, selected_dataset, session_factory,
)
from ui.text import plain

SCAN_PATH_KEY = "scan_path"
SCAN_FEEDBACK_KEY = "scan_feedback"
#: The folder waiting for the user's "Scan anyway" (it holds very many files).
SCAN_CONFIRM_KEY = "scan_confirm_folder"
#: How long a cached overview may be shown before it is read again even if nothing changed.
OVERVIEW_TTL_S = 600


# --- scanning -------------------------------------------------------------------------------------

def start_scan(root: str) -> tuple[int, int, bool]:
    """Queue a scan of `root` and start its worker, unless one is already queued or running.

    Returns (dataset id, job id, started): started is False when an active scan was reused.
    """
    with session_factory().begin() as session:
        reap_dead_jobs(session)
        dataset = get_or_create_dataset(session, root)
        running = latest_job(session, dataset.id, "scan")
        if running is not None and running.status in ACTIVE:
            return dataset.id, running.id, False
        job = create_job(session, dataset.id, "scan", {"root": dataset.root, "workers": None})
        dataset_id, job_id = dataset.id, job.id
    spawn_job(db_path(), job_id)
    return dataset_id, job_id, True


def _scan_clicked(root: Optional[str] = None, confirmed: bool = False) -> None:
    """Button callback: check the folder, start the scan, select its dataset (runs before the page).

    root: a dataset's folder (Rescan), or a folder the user confirmed; else the typed folder,
    which must be below the allowed roots and, when it holds very many files, confirmed first.
    """
    st.session_state.pop(SCAN_CONFIRM_KEY, None)
    rescan = root is not None and not confirmed
    path = root if root is not None else st.session_state.get(SCAN_PATH_KEY, "")
    with session_factory()() as session:
        dataset_roots = [Path(dataset.root) for dataset in list_datasets(session)]
    check = check_folder_to_scan(path, None if rescan else allowed_roots(), confirmed=confirmed,
                                 dataset_roots=dataset_roots)
    if check.problem:
        st.session_state[SCAN_FEEDBACK_KEY] = ("error", check.problem)
        return
    if check.confirm:
        st.session_state[SCAN_CONFIRM_KEY] = str(check.folder)
        st.session_state[SCAN_FEEDBACK_KEY] = ("warning", check.confirm)
        return
    dataset_id, job_id, started = start_scan(str(check.folder))
    select_dataset(dataset_id)
    if not started:
        st.session_state[SCAN_FEEDBACK_KEY] = ("info", f"A scan of this folder is already running "
                                                       f"({job_name('scan', job_id)}).")


def render_scan_form(dataset: Optional[DatasetRef]) -> None:
    """The folder box with Scan, a Rescan button for the selected dataset, and any message from the last click."""
    with st.container(border=True):
        path_column, scan_column, rescan_column = st.columns([6, 1, 2], vertical_alignment="bottom")
        path_column.text_input(
            "Scan a dataset folder", key=SCAN_PATH_KEY, placeholder="/path/to/dataset (one subfolder per class)",
            help="A folder whose subfolders are classes, each holding that class's images; "
                 "an optional listings.csv (path, listing_id, price, title) next to them.",
        )
        scan_column.button("Scan", key="scan_start", type="primary", on_click=_scan_clicked, width="stretch")
        if dataset is not None:
            rescan_column.button(
                f"Rescan {dataset.name}", key="scan_rescan", on_click=_scan_clicked, args=(dataset.root,),
                help="Read the folder again: new and changed files are inspected, vanished ones marked missing.",
                width="stretch",
            )
        feedback = st.session_state.pop(SCAN_FEEDBACK_KEY, None)
        if feedback is not None:
            level, text = feedback
            {"error": st.error, "warning": st.warning}.get(level, st.info)(plain(text))
        pending = st.session_state.get(SCAN_CONFIRM_KEY)
        if pending is not None:
            st.button("Scan anyway", key="scan_confirm", on_click=_scan_clicked, args=(pending, True))


def render_scan_status(dataset: DatasetRef) -> None:
    """Progress of the dataset's queued or running scan (after a reload too), or why its last scan failed."""
    with session_factory()() as session:
        job = latest_job(session, dataset.id, "scan")
        job_id = None if job is None else job.id
    if job_id is not None:
        job_status_panel(job_id, title=f"Scan of {dataset.name}", show_success=False)


# --- summary --------------------------------------------------------------------------------------

@st.cache_data(ttl=OVERVIEW_TTL_S, max_entries=32, show_spinner=False)
def load_overview(database: str, dataset_id: int, version: str) -> DatasetOverview:
    """The dataset overview; `version` (see db.browse.dataset_version) is only part of the cache key."""
    with factory_for(database)() as session:
        return dataset_overview(session, dataset_id)


def current_version(dataset_id: int) -> str:
    with session_factory()() as session:
        return dataset_version(session, dataset_id)


def class_counts_figure(overview: DatasetOverview) -> go.Figure:
    """Bars of images per class in class order; a second series after corrections when they changed anything."""
    counts = overview.counts
    figure = go.Figure(go.Bar(name="in folders", x=counts.classes, y=counts.given))
    if counts.current != counts.given:
        figure.add_bar(name="after corrections", x=counts.classes, y=counts.current)
    figure.update_layout(
        barmode="group", height=340, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12),
        xaxis=dict(categoryorder="array", categoryarray=counts.classes, title=None), yaxis_title="images",
    )
    return figure


def price_figure(prices: pd.DataFrame, classes: list[str]) -> go.Figure:
    """Box plot of listing prices per (current) class on a log axis; prices <= 0 are left out."""
    figure = px.box(
        prices[prices["price"] > 0], x="label", y="price", log_y=True, points="outliers",
        category_orders={"label": classes},
    )
    figure.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=None, yaxis_title="price (log)")
    return figure


def render_metrics(overview: DatasetOverview) -> None:
    columns = st.columns(5)
    columns[0].metric("Images", f"{overview.images:,}")
    columns[1].metric("Classes", len(overview.counts.classes))
    columns[2].metric("Unreadable", f"{overview.unreadable:,}")
    columns[3].metric("With a price", f"{overview.priced:,}")
    columns[4].metric("Listings changed", f"{overview.changed:,}",
                      help=f"Listings whose state now differs from the folder: {overview.relabelled:,} relabelled, "
                           f"{overview.deleted:,} deleted, {overview.price_fixed:,} with a fixed price; "
                           f"{overview.corrections:,} decisions in the log, undos included")


def render_scan_facts(overview: DatasetOverview) -> None:
    summary = overview.scan_summary
    if overview.scanned_at is not None and summary:
        st.caption(
            f"Last scanned {overview.scanned_at:%Y-%m-%d %H:%M} UTC: {summary.get('new', 0)} new, "
            f"{summary.get('updated', 0)} changed, {summary.get('unchanged', 0)} unchanged files "
            f"in {summary.get('seconds', 0):.1f} s."
        )
    if summary.get("empty_classes"):
        st.warning("Class folders with no images: " + plain(", ".join(summary["empty_classes"])))
    for warning in summary.get("warnings", []):
        st.warning(plain(warning))
    for note in summary.get("decision_notes", []):
        st.info(plain(note))
    if overview.missing:
        st.info(f"{overview.missing} images recorded by an earlier scan are no longer on disk; they are not shown.")


def render_unreadable(overview: DatasetOverview) -> None:
    label = f"Unreadable images ({overview.unreadable})"
    with st.expander(label, expanded=False):
        if overview.unreadable_files.empty:
            st.write("Every image decoded.")
        else:
            st.dataframe(overview.unreadable_files, hide_index=True, key="unreadable_table")


def render_listings(overview: DatasetOverview) -> None:
    summary = overview.scan_summary
    st.subheader("listings.csv")
    if not summary.get("listings_file", True):
        st.info("No listings.csv in the dataset folder: prices and titles are empty.")
        return
    without_row, unmatched = summary.get("images_without_listing", 0), summary.get("unmatched_listings", 0)
    if without_row or unmatched:
        st.write(f"{without_row} images have no listing row; {unmatched} rows match no image.")
    else:
        st.write("Every image has a listing row and every row names an image.")
    problems = summary.get("listings_problems", [])
    if problems:
        st.warning("Problems found in listings.csv:\n" + "\n".join(f"- {plain(p)}" for p in problems))
    else:
        st.success("No problems found in listings.csv.")


def render_summary(dataset: DatasetRef) -> None:
    overview = load_overview(str(db_path()), dataset.id, current_version(dataset.id))
    st.header(plain(dataset.name))
    st.caption(plain(dataset.root))
    if overview.scanned_at is None:
        st.info("This folder has not been scanned yet.")
        return
    render_metrics(overview)
    render_scan_facts(overview)
    render_unreadable(overview)
    charts = st.columns(2)
    with charts[0]:
        st.subheader("Images per class")
        st.plotly_chart(class_counts_figure(overview), key="class_counts_chart")
    with charts[1]:
        st.subheader("Prices per class")
        if overview.prices.empty:
            st.info("No image has a listing price.")
        else:
            st.plotly_chart(price_figure(overview.prices, overview.counts.classes), key="price_chart")
    render_listings(overview)


WELCOME = """
**listing-audit** checks a folder of labelled listing photos for wrong labels, price outliers,
duplicates and broken images, and lets you fix them here.

A *dataset folder* holds one subfolder per class, each with that class's images
(images may sit in deeper subfolders), and optionally a `listings.csv` with the columns
`path` (relative to the folder), `listing_id`, `price`, `title`:

```
my-dataset/
  laptop/  123.jpg  batch-2/456.jpg
  phone/   789.png
  listings.csv
```

Enter its path above and press **Scan**: every image is checked and hashed in a background
process (you can leave this page; progress is kept). From the command line:
`.venv/bin/listing-audit scan my-dataset`. `make run` builds a demo dataset (colour listing
photos of items on tables and floors, with titles, prices and planted problems) in `data/demo`, scans it and opens it here.
"""


def main() -> None:
    st.set_page_config(page_title="listing-audit", layout="wide")
    render_navigation()
    dataset = selected_dataset()
    render_reviewer()
    st.title("listing-audit")
    render_scan_form(dataset)
    if dataset is None:
        st.markdown(WELCOME)
        return
    render_scan_status(dataset)
    render_summary(dataset)
    render_audit_section(dataset)


main()
