"""Browse: page through a dataset's images by current class, readability, price and deleted state;
open one to see it large with its metadata and its correction history, and relabel, delete or restore it
(decisions recorded with the reviewer, as on the Review page: ui.review_widgets). The embedding map
(ui.embedding_map) shows every photo by similarity; a lasso selects a region to act on.

Only the visible page is queried (LIMIT/OFFSET in SQL) and only its thumbnails
are decoded, each cached per file version, so large datasets page quickly.
Filters and page survive a visit to another page (persist_state="session").
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import pandas as pd
import streamlit as st

from db.browse import (
    READABILITY, BrowseFilter, ClassCounts, SampleDetail, browse_page, class_counts, correction_history,
    count_samples, dataset_version, price_bounds, sample_detail,
)
from db.corrections import Decision
from db.queries import dataset_classes
from ui.common import (
    DatasetRef, db_path, factory_for, log_scale_stops, open_page, reviewer_name, session_factory,
)
from ui.embedding_map import render_embedding_map
from ui.review_widgets import ReviewContext, apply_many, notify, render_notice, undo_last
from ui.text import plain
from ui.thumbnails import large_image, scanned_hash, thumbnail, unreadable_placeholder

PER_PAGE = 24
GRID_COLUMNS = 6
ALL_CLASSES = "(all)"
CACHE_TTL_S = 600
CLASS_KEY, READABLE_KEY, PRICE_KEY, DELETED_KEY = "browse_class", "browse_readable", "browse_price", "browse_deleted"
PAGE_KEY, OPEN_KEY, DATASET_SEEN_KEY = "browse_page", "browse_open", "browse_dataset_seen"
RELABEL_KEY = "browse_relabel_class"
READABILITY_LABELS = {"all": "All", "readable": "Readable", "unreadable": "Unreadable"}


# --- cached reads (keyed by database, dataset and its version; never by widgets) ------------------

@st.cache_data(ttl=CACHE_TTL_S, max_entries=32, show_spinner=False)
def load_facets(database: str, dataset_id: int, version: str) -> tuple[ClassCounts, Optional[tuple[float, float]]]:
    """(class counts, price bounds) of the dataset; `version` is only part of the cache key."""
    with factory_for(database)() as session:
        return class_counts(session, dataset_id), price_bounds(session, dataset_id)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=256, show_spinner=False)
def load_count(database: str, dataset_id: int, version: str, browse: BrowseFilter) -> int:
    """How many samples match `browse`."""
    with factory_for(database)() as session:
        return count_samples(session, dataset_id, browse)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=256, show_spinner=False)
def load_page(database: str, dataset_id: int, version: str, browse: BrowseFilter, page: int) -> pd.DataFrame:
    """The matching samples of 1-based `page` (PER_PAGE of them, by path)."""
    with factory_for(database)() as session:
        return browse_page(session, dataset_id, browse, page=page, per_page=PER_PAGE)


def current_version(dataset_id: int) -> str:
    with session_factory()() as session:
        return dataset_version(session, dataset_id)


# --- filters and paging ---------------------------------------------------------------------------

def _first_page() -> None:
    st.session_state[PAGE_KEY] = 1


def _step_page(delta: int, pages: int) -> None:
    st.session_state[PAGE_KEY] = min(max(1, st.session_state.get(PAGE_KEY, 1) + delta), pages)


def _open(sample_id: Optional[int]) -> None:
    st.session_state[OPEN_KEY] = sample_id


def forget_state_of_other_dataset(dataset_id: int) -> None:
    """Filters, page and open image belong to one dataset: reset them when another one is selected."""
    if st.session_state.get(DATASET_SEEN_KEY) != dataset_id:
        for key in (CLASS_KEY, PRICE_KEY, PAGE_KEY, OPEN_KEY):
            st.session_state.pop(key, None)
        st.session_state[DATASET_SEEN_KEY] = dataset_id


def format_price(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


def price_filter(bounds: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
    """A price range slider on a log scale; returns the chosen range, or None when it spans every price (no filter)."""
    if bounds is None or bounds[0] == bounds[1]:
        st.caption("No price range to filter on.")
        return None
    stops = log_scale_stops(*bounds)
    chosen = st.session_state.get(PRICE_KEY)
    if chosen is not None and not set(chosen) <= set(stops):  # stops of another price range
        del st.session_state[PRICE_KEY]
    low, high = st.select_slider(
        "Price", options=stops, value=(stops[0], stops[-1]), key=PRICE_KEY, persist_state="session",
        on_change=_first_page, format_func=format_price,
        help="Round-number steps on a log scale; images without a price are shown only over the full range.",
    )
    return None if (low, high) == (stops[0], stops[-1]) else (float(low), float(high))


def render_filters(counts: ClassCounts, bounds: Optional[tuple[float, float]]) -> BrowseFilter:
    """The filter row; returns the filter it describes."""
    per_class = dict(zip(counts.classes, counts.current))
    options = [ALL_CLASSES, *counts.classes]
    if st.session_state.get(CLASS_KEY) not in options:
        st.session_state[CLASS_KEY] = ALL_CLASSES
    class_column, readable_column, price_column, deleted_column = st.columns([3, 4, 4, 2], vertical_alignment="bottom")
    label = class_column.selectbox(
        "Class (current label)", options, key=CLASS_KEY, persist_state="session", on_change=_first_page,
        format_func=lambda c: f"All classes ({sum(counts.current)})" if c == ALL_CLASSES else f"{c} ({per_class[c]})",
        help="Images relabelled by a correction are listed under their new class.",
    )
    readable = readable_column.radio(
        "Images", READABILITY, key=READABLE_KEY, persist_state="session", horizontal=True,
        on_change=_first_page, format_func=READABILITY_LABELS.__getitem__,
    )
    with price_column:
        price_range = price_filter(bounds)
    include_deleted = deleted_column.checkbox(
        "Show deleted", key=DELETED_KEY, persist_state="session", on_change=_first_page,
    )
    return BrowseFilter(
        label=None if label == ALL_CLASSES else label, readable=readable,
        price_range=price_range, include_deleted=include_deleted,
    )


def render_pager(total: int) -> int:
    """Page number box with previous/next buttons; returns the 1-based page to show."""
    pages = max(1, math.ceil(total / PER_PAGE))
    page = st.session_state.get(PAGE_KEY, 1)
    st.session_state[PAGE_KEY] = min(max(1, int(page)), pages)
    count_column, previous_column, page_column, next_column = st.columns([5, 1, 1, 1], vertical_alignment="bottom")
    previous_column.button("Previous", key="browse_previous", on_click=_step_page, args=(-1, pages),
                           disabled=st.session_state[PAGE_KEY] <= 1, width="stretch")
    page = page_column.number_input(
        f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=PAGE_KEY, persist_state="session",
    )
    next_column.button("Next", key="browse_next", on_click=_step_page, args=(1, pages),
                       disabled=page >= pages, width="stretch")
    first = (page - 1) * PER_PAGE + 1 if total else 0
    count_column.markdown(f"**{total:,} images** match; showing {first}-{min(page * PER_PAGE, total)}.")
    return int(page)


# --- the grid and the large view ------------------------------------------------------------------

def tile_caption(row) -> str:
    label = row.current_label if row.current_label == row.label else f"{row.label} -> {row.current_label}"
    parts = [label]
    if not math.isnan(row.price):
        parts.append(f"{row.price:,.2f}")
    if row.deleted:
        parts.append("deleted")
    return plain(" · ".join(parts))


def render_tile(dataset: DatasetRef, row) -> None:
    if row.readable:
        image = thumbnail(str(Path(dataset.root) / row.path), int(row.mtime_ns), int(row.file_size),
                          root=dataset.root, content_hash=scanned_hash(row))
    else:
        image = unreadable_placeholder(row.error or "unknown reason")
    st.image(image, caption=tile_caption(row), width="stretch")
    st.button("Open", key=f"open_{row.id}", on_click=_open, args=(int(row.id),), width="stretch",
              help=row.path)


def render_grid(dataset: DatasetRef, samples: pd.DataFrame) -> None:
    rows = list(samples.itertuples(index=False))
    for start in range(0, len(rows), GRID_COLUMNS):
        for column, row in zip(st.columns(GRID_COLUMNS), rows[start:start + GRID_COLUMNS]):
            with column:
                render_tile(dataset, row)


def metadata_table(detail: SampleDetail) -> pd.DataFrame:
    """Two text columns, field and value, describing one sample."""
    def text(value) -> str:
        return "" if value is None else str(value)

    size = f"{detail.width} x {detail.height} px" if detail.width else ""
    fields = [
        ("Path", detail.path),
        ("File", detail.absolute_path),
        ("Class (folder)", detail.label),
        ("Current label", detail.current_label),
        ("Deleted", "yes" if detail.deleted else "no"),
        ("Price", "" if detail.price is None else f"{detail.price:,.2f}"),
        ("Title", text(detail.title)),
        ("Listing id", text(detail.listing_id)),
        ("Size", size),
        ("File size", f"{detail.file_size / 1024:,.1f} KiB"),
        ("Mode", text(detail.mode)),
        ("SHA-256", text(detail.content_hash)),
        ("pHash", text(detail.phash)),
        ("Readable", "yes" if detail.readable else f"no: {text(detail.error)}"),
    ]
    fields += [(f"listings.csv: {name}", text(value)) for name, value in detail.listing_extra.items()]
    if detail.missing:
        fields.append(("Missing", "the file is no longer on disk"))
    return pd.DataFrame(fields, columns=["field", "value"])


def _decide(context: ReviewContext, detail: SampleDetail, action: str) -> None:
    """Callback of the opened image's Relabel (to the class chosen in the list), Delete and Restore buttons."""
    new_label = st.session_state.get(RELABEL_KEY) if action == "relabel" else None
    decision = Decision(detail.id, action, new_label=new_label, expected_last_id=detail.last_correction_id)
    if apply_many(context, [decision], note="from Browse"):
        done = {"relabel": f"Relabelled to {new_label}", "delete": "Deleted", "restore": "Restored"}[action]
        notify("success", f"{done}: {detail.path}")


def render_decisions(context: ReviewContext, detail: SampleDetail) -> None:
    """Relabel (class list and button), Delete or Restore, and Undo for the opened image; they need a reviewer."""
    cannot = not context.reviewer
    others = [name for name in context.classes if name != detail.current_label]
    class_column, relabel_column, delete_column, undo_column = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
    class_column.selectbox("Relabel to", others, key=RELABEL_KEY,
                           disabled=cannot or detail.deleted or not others)
    relabel_column.button("Relabel", key="browse_relabel", type="primary", width="stretch", on_click=_decide,
                          args=(context, detail, "relabel"), disabled=cannot or detail.deleted or not others,
                          help="Restore it first: a deleted image keeps its label" if detail.deleted else None)
    if detail.deleted:
        delete_column.button("Restore", key="browse_restore", width="stretch", on_click=_decide,
                             args=(context, detail, "restore"), disabled=cannot)
    else:
        delete_column.button("Delete", key="browse_delete", width="stretch", on_click=_decide,
                             args=(context, detail, "delete"), disabled=cannot,
                             help="Leave it out of training and export")
    undo_column.button("Undo", key="browse_undo", width="stretch", on_click=undo_last,
                       kwargs=dict(context=context, locate=lambda flag_id: None), disabled=cannot,
                       help="Undo your last decision, here or on another page")
    if cannot:
        st.caption("Enter your name under Reviewer in the sidebar to relabel, delete or restore: it is stored "
                   "with every decision.")


def render_detail(dataset: DatasetRef, sample_id: int, reviewer: str) -> None:
    """The opened image, large, with its metadata, what can be decided on it, and its correction history."""
    with session_factory()() as session:
        detail = sample_detail(session, sample_id)
        history = correction_history(session, sample_id)
        classes = tuple(dataset_classes(session, dataset.id))
    with st.container(border=True, key="browse_detail"):
        if detail is None:
            st.info("That image is no longer in the database.")
            st.button("Close", key="browse_close", on_click=_open, args=(None,))
            return
        title_column, close_column = st.columns([8, 1], vertical_alignment="center")
        title_column.subheader(plain(detail.path))
        close_column.button("Close", key="browse_close", on_click=_open, args=(None,), width="stretch")
        render_notice()
        image_column, facts_column = st.columns([2, 3])
        with image_column:
            if detail.readable:
                image, problem = large_image(detail.absolute_path, detail.mtime_ns, detail.file_size,
                                             root=detail.dataset_root, content_hash=detail.content_hash)
                st.image(image, width="stretch")
                if problem:
                    st.warning(plain(problem))
            else:
                st.image(unreadable_placeholder(detail.error or "unknown reason", side=320), width="stretch")
        with facts_column:
            render_decisions(ReviewContext(dataset.id, dataset.root, reviewer, classes, state_filter="all"), detail)
            st.dataframe(metadata_table(detail), hide_index=True, height="content", width="stretch")
            st.markdown("**Correction history**")
            if history.empty:
                st.caption("No corrections: the image has its folder's label.")
            else:
                st.dataframe(history.drop(columns="id"), hide_index=True, height="content", width="stretch")


def main() -> None:
    dataset = open_page("Browse")
    reviewer = reviewer_name()
    if dataset is None:
        return
    forget_state_of_other_dataset(dataset.id)
    database, version = str(db_path()), current_version(dataset.id)
    counts, bounds = load_facets(database, dataset.id, version)
    if not counts.classes:
        st.info(f"{plain(dataset.name)} has no images yet: scan it on the home page.")
        return
    with session_factory()() as session:
        classes = tuple(dataset_classes(session, dataset.id))
    render_embedding_map(dataset.root, database, dataset.id, version,
                         ReviewContext(dataset.id, dataset.root, reviewer, classes, state_filter="all"))
    browse = render_filters(counts, bounds)
    page = render_pager(load_count(database, dataset.id, version, browse))
    if st.session_state.get(OPEN_KEY) is not None:
        render_detail(dataset, st.session_state[OPEN_KEY], reviewer)
    samples = load_page(database, dataset.id, version, browse, page)
    if samples.empty:
        st.info("No image matches these filters.")
        return
    render_grid(dataset, samples)


main()
