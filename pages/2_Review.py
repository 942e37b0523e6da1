"""Review: work through the latest audit's flags, worst first, and relabel / delete / keep / undo.

Only one page of the queue is read per rerun (LIMIT/OFFSET on indexed columns),
and every read is cached under the data version (latest audit, latest decision,
latest scan), so a rerun after a click costs a few small queries. What decisions do
not change (the most similar photos, images) is cached without the latest decision, and
the next item's is read in the background while the reviewer looks at this one.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
import pandas as pd
import streamlit as st

from core.audit.checks.base import MISLABEL_KINDS, PAST_BUDGET_MISLABEL, sure_text
from core.audit.evidence.count import wilson_interval
from core.audit.checks.price import price_suggestion
from core.audit.evidence.precision import QueuePrecision, queue_precision
from core.models.neighbours import lookalike_similarity, nearest, unit_rows
from db.embeddings import dataset_embeddings
from db.queries import dataset_classes, folder_labels
from db.review import (
    REVIEW_STATES, QueueFilter, bulk_accept_candidates, class_examples, class_prices, data_version,
    duplicate_members, mislabel_decisions, queue_count, queue_page, queue_rank, queue_summary, sample_view,
)
from db.models import Job
from jobs.runner import job_result
from db.corrections import Decision
from ui.common import DatasetRef, db_path, factory_for, job_name, open_page, reviewer_name, session_factory
from ui.review_widgets import (
    BULK_PLAN_KEY, EXAMPLES_PER_CLASS, ITEM_IMAGE_SIDE, POSITION_KEY, PRICE_KEY, RELABEL_CLASS_KEY, SHORTCUTS,
    ReviewContext, apply_many, copies_note, decide_on_sample, image_bytes, keep_group, listing_lines, member_states,
    move, notify, render_broken, render_duplicates, render_mislabel, render_notice, render_other, render_price, sample_caption,
    shortcut_legend, show_full_resolution, undo_last,
)
from ui.review_grid import GRID_KIND_KEY, GRID_KINDS, GRID_OFFSET_KEY, GRID_SIZE_KEY, GRID_SIZES, render_grid
from ui.text import plain, shortened_path
from ui.thumbnails import THUMBNAIL_SIDE
from ui.url_state import first_run, set_url, url_choices, url_number
from ui.warm_up import in_background

PER_PAGE = 20
#: The most characters of a path in the queue: about what its column shows at 1440 px without the state and
#: kind columns, each of which takes the room of COLUMN_CHARS.
QUEUE_PATH_CHARS, COLUMN_CHARS = 26, 9
#: Most similar photos shown beside a mislabel flag.
NEIGHBOURS = 6
CACHE_TTL_S = 600
KIND_KEY, CLASS_KEY, SCORE_KEY, STATE_KEY = "filter_kind", "filter_class", "filter_score", "filter_state"
DATASET_SEEN_KEY = "review_dataset_seen"
RELABEL_FOR_KEY = "relabel_class_for_flag"
PRICE_FOR_KEY = "fix_price_for_flag"
QUEUE_TABLE_KEY = "queue_table"
VIEW_KEY = "review_view"
BULK_OPEN_KEY = "review_bulk_open"
BULK_EXAMPLES, BULK_COLUMNS = 12, 6
VIEWS = ("single", "grid")
#: The view in the URL: ?view=grid&state=decided&kind=mislabel&class=toys&sure=0.8&item=<flag id>.
URL_VIEW, URL_STATE, URL_KIND, URL_CLASS, URL_SURE, URL_ITEM = "view", "state", "kind", "class", "sure", "item"
PENDING_ITEM_KEY = "review_pending_item"
VIEW_LABELS = {"single": "One at a time", "grid": "Grid"}


# --- cached reads (keyed by database and data version; never by widgets) --------------------------


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def load_classes(database: str, dataset_id: int, scan_version: str) -> list[str]:
    """The dataset's classes; they only change with a scan."""
    with factory_for(database)() as session:
        return dataset_classes(session, dataset_id)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def load_summary(database: str, job_id: int, version: tuple) -> pd.DataFrame:
    """Per kind of flag: items, open, decided."""
    with factory_for(database)() as session:
        return queue_summary(session, job_id)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def load_mislabel_summary(database: str, job_id: int) -> dict:
    """The audit's mislabel check summary (count, interval, weak evidence); {} without the check."""
    with factory_for(database)() as session:
        return ((job_result(session.get(Job, job_id)) or {}).get("checks") or {}).get("mislabel") or {}


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def load_queue_precision(database: str, job_id: int, version: tuple) -> Optional[QueuePrecision]:
    """The mislabel queue's precision from the decisions so far; None before there are enough."""
    with factory_for(database)() as session:
        flags = mislabel_decisions(session, job_id)
    return queue_precision(load_mislabel_summary(database, job_id), flags)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_count(database: str, job_id: int, version: tuple, queue: QueueFilter) -> int:
    with factory_for(database)() as session:
        return queue_count(session, job_id, queue)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_page(database: str, job_id: int, version: tuple, queue: QueueFilter, offset: int,
              size: int = PER_PAGE) -> pd.DataFrame:
    """`size` queue rows from `offset`: a page of the queue table, or a page of the grid."""
    with factory_for(database)() as session:
        return queue_page(session, job_id, queue, offset=offset, limit=size)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_examples(database: str, dataset_id: int, scan_version: str, label: str, exclude: int) -> pd.DataFrame:
    with factory_for(database)() as session:
        return class_examples(session, dataset_id, label, limit=EXAMPLES_PER_CLASS, exclude=(exclude,))


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_prices(database: str, dataset_id: int, scan_version: str, label: str) -> np.ndarray:
    with factory_for(database)() as session:
        return class_prices(session, dataset_id, label)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_members(database: str, job_id: int, version: tuple, flag_id: int) -> pd.DataFrame:
    with factory_for(database)() as session:
        return duplicate_members(session, job_id, flag_id)


@st.cache_resource(ttl=CACHE_TTL_S, max_entries=2, show_spinner=False)
def load_neighbour_index(database: str, dataset_id: int, job_id: int, scan_version: str) -> tuple:
    """(sample ids (N,), content hashes (N,), unit vectors (N, D)) of the dataset's cached photo embeddings;
    read once per audit and scan (shared, never mutated)."""
    with factory_for(database)() as session:
        _, ids, hashes, vectors = dataset_embeddings(session, dataset_id)
    return ids, hashes, unit_rows(vectors) if len(ids) else vectors


@st.cache_data(ttl=CACHE_TTL_S, max_entries=8, show_spinner=False)
def load_lookalike_similarity(database: str, dataset_id: int, job_id: int, scan_version: str) -> float:
    """The cosine similarity above which two photos under one folder class are look-alikes on this dataset
    (core.models.neighbours.lookalike_similarity); inf without cached embeddings."""
    ids, hashes, unit = load_neighbour_index(database, dataset_id, job_id, scan_version)
    if not len(ids):
        return float("inf")
    with factory_for(database)() as session:
        labels = folder_labels(session, ids)
    return lookalike_similarity(unit, labels, hashes)


def lookalikes_of(item: pd.Series, neighbours: pd.DataFrame, similarity: float) -> pd.DataFrame:
    """The item's most similar photos that look like it (at least `similarity`) and still carry its label, not
    deleted: a kind of item misfiled together, which a relabel can take along."""
    if item["kind"] not in MISLABEL_KINDS or neighbours.empty or item["deleted"]:
        return neighbours.iloc[0:0]
    return neighbours[(neighbours["similarity"] >= similarity) & (neighbours["current_label"] == item["current_label"])
                      & ~neighbours["deleted"].astype(bool)]


@st.cache_data(ttl=CACHE_TTL_S, max_entries=256, show_spinner=False)
def load_similar(database: str, dataset_id: int, job_id: int, scan_version: str, sample_id: int) -> pd.DataFrame:
    """sample_id and similarity (cosine) of the NEIGHBOURS photos most similar to the sample's, most similar
    first; empty when the dataset has no cached embeddings or the sample has none. Decisions do not change it."""
    ids, hashes, unit = load_neighbour_index(database, dataset_id, job_id, scan_version)
    found = np.flatnonzero(ids == sample_id)
    if not found.size:
        return pd.DataFrame({"sample_id": np.empty(0, np.int64), "similarity": np.empty(0, np.float32)})
    rows, similarity = nearest(unit, int(found[0]), NEIGHBOURS, exclude=hashes == hashes[found[0]])
    return pd.DataFrame({"sample_id": ids[rows], "similarity": similarity})


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_neighbours(database: str, dataset_id: int, version: tuple, sample_id: int) -> pd.DataFrame:
    """The NEIGHBOURS most similar photos to the sample's (SAMPLE_VIEW_COLUMNS, their labels as of `version`,
    + similarity); empty when there are none (see load_similar)."""
    similar = load_similar(database, dataset_id, version[0], version[2], sample_id)
    if similar.empty:
        return pd.DataFrame()
    with factory_for(database)() as session:
        view = sample_view(session, similar["sample_id"].tolist())
    return view.loc[similar["sample_id"]].assign(similarity=similar["similarity"].to_numpy()).reset_index(drop=True)


def current_version(dataset_id: int) -> tuple:
    with session_factory()() as session:
        return data_version(session, dataset_id)


def locate_in_queue(job_id: int, queue: QueueFilter, flag_id: int) -> Optional[int]:
    with session_factory()() as session:
        return queue_rank(session, job_id, queue, flag_id)


# --- filters --------------------------------------------------------------------------------------


def _to_first_item() -> None:
    st.session_state[POSITION_KEY] = 0
    st.session_state[GRID_OFFSET_KEY] = 0
    st.session_state.pop(BULK_PLAN_KEY, None)


def forget_state_of_other_dataset(dataset_id: int) -> None:
    if st.session_state.get(DATASET_SEEN_KEY) != dataset_id:
        for key in (KIND_KEY, CLASS_KEY, POSITION_KEY, BULK_PLAN_KEY, GRID_OFFSET_KEY, GRID_KIND_KEY):
            st.session_state.pop(key, None)
        st.session_state[DATASET_SEEN_KEY] = dataset_id


def restore_view_from_url(classes: list[str], kinds: list[str]) -> None:
    """On the session's first run of Review (a reload, a bookmark, a link in a new tab): the view, the
    filters and the item the URL names; values that are not options here are ignored."""
    if not first_run("review"):
        return
    for key, name, options in ((VIEW_KEY, URL_VIEW, VIEWS), (STATE_KEY, URL_STATE, REVIEW_STATES)):
        chosen = url_choices(name, options)
        if chosen:
            st.session_state[key] = chosen[0]
    for key, name, options in ((KIND_KEY, URL_KIND, kinds), (CLASS_KEY, URL_CLASS, classes)):
        if url_choices(name, options):
            st.session_state[key] = url_choices(name, options)
    sure = url_number(URL_SURE, low=0.0, high=1.0)
    if sure is not None:
        st.session_state[SCORE_KEY] = round(sure, 2)
    item = url_number(URL_ITEM, low=1, high=2 ** 62)
    if item is not None:
        st.session_state[PENDING_ITEM_KEY] = int(item)


def go_to_pending_item(job_id: int, queue: QueueFilter) -> None:
    """Show the item the URL named, when it is in the queue under these filters."""
    flag_id = st.session_state.pop(PENDING_ITEM_KEY, None)
    if flag_id is not None:
        rank = locate_in_queue(job_id, queue, flag_id)
        if rank is not None:
            st.session_state[POSITION_KEY] = rank


def write_view_to_url(view: str, queue: QueueFilter, flag_id: Optional[int]) -> None:
    """The view, the filters and the item shown, into the URL (defaults left out)."""
    set_url(URL_VIEW, None if view == VIEWS[0] else view)
    set_url(URL_STATE, None if queue.state == "open" else queue.state)
    set_url(URL_KIND, queue.kinds)
    set_url(URL_CLASS, queue.classes)
    sure = round(1.0 - queue.score_max, 2)
    set_url(URL_SURE, f"{sure:g}" if sure > 0 else None)
    set_url(URL_ITEM, None if flag_id is None else str(flag_id))


def render_filters(classes: list[str], summary: pd.DataFrame) -> QueueFilter:
    open_by_kind = dict(zip(summary["kind"], summary["open"]))
    st.sidebar.subheader("Queue")
    state = st.sidebar.segmented_control(
        "Review state", REVIEW_STATES, default="open", key=STATE_KEY, on_change=_to_first_item, required=True,
        help="Open: no decision on the image since this audit. Decided: there is one (undo re-opens it).",
    )
    # the options' labels must not change with the counts: the browser keeps a selection by its label, and a
    # label that changed after a decision ("mislabel (419 open)" -> "(418 open)") silently emptied the filter
    kinds = st.sidebar.multiselect(
        "Kind of flag", list(open_by_kind), key=KIND_KEY, on_change=_to_first_item, placeholder="all kinds",
        help="Open flags per kind: " + ", ".join(f"{kind} {count}" for kind, count in open_by_kind.items()),
    )
    chosen_classes = st.sidebar.multiselect("Given class", classes, key=CLASS_KEY, on_change=_to_first_item,
                                            placeholder="all classes")
    at_least = st.sidebar.slider("Sure at least", 0.0, 1.0, 0.0, step=0.01, key=SCORE_KEY, on_change=_to_first_item,
                                 help="How sure the audit is that a flag is a real problem (1 − its score), the "
                                      "same scale for every kind: 0.9 keeps the flags it is at least 90% sure of.")
    return QueueFilter(kinds=tuple(kinds), classes=tuple(chosen_classes), score_max=round(1.0 - at_least, 6),
                       state=state or "open")


# --- the item -------------------------------------------------------------------------------------


def render_undo(context: ReviewContext, locate) -> None:
    st.button("Undo", key="undo", help="Undo your last decision (a bulk or group action as a whole)",
              shortcut=SHORTCUTS["undo"][0], on_click=undo_last, kwargs=dict(context=context, locate=locate),
              disabled=not context.reviewer)


def preselect_price(item: pd.Series) -> None:
    """On arriving at an item, the price box holds the price with its decimal point moved back when a slip of
    a power of ten explains a price flag (129900 -> 1299.00), else the current price."""
    if st.session_state.get(PRICE_FOR_KEY) == int(item["flag_id"]):
        return
    price = None if pd.isna(item["price"]) else float(item["price"])
    fix = price_suggestion(item["evidence"], price) if item["kind"] == "price" else None
    st.session_state[PRICE_KEY] = fix if fix is not None else (price or 0.0)
    st.session_state[PRICE_FOR_KEY] = int(item["flag_id"])


def preselect_relabel_class(flag_id: int, suggestion: Optional[str], others: list[str]) -> None:
    """On arriving at an item, the "Relabel to" list shows its suggestion, or nothing when it has none, so
    `l` never relabels to the previous item's choice or to a class nobody chose; a choice made on this item
    is kept."""
    if st.session_state.get(RELABEL_FOR_KEY) == flag_id and st.session_state.get(RELABEL_CLASS_KEY) in others:
        return
    st.session_state[RELABEL_CLASS_KEY] = suggestion if suggestion in others else None
    st.session_state[RELABEL_FOR_KEY] = flag_id


def render_actions(item: pd.Series, context: ReviewContext, *, total: int, locate,
                   members: Optional[pd.DataFrame], lookalikes: pd.DataFrame) -> None:
    """The decision buttons of the current item, each with its keyboard shortcut.

    members: the duplicate group's members when the item is a group, else None. lookalikes: photos that look
    like the item under its label (lookalikes_of), which "Relabel with look-alikes" relabels with it.
    """
    can_decide = bool(context.reviewer)
    deleted = bool(item["deleted"])
    is_group = item["kind"] == "duplicate"
    on_sample = dict(context=context, sample_id=int(item["sample_id"]), flag_id=int(item["flag_id"]),
                     expected_last_id=int(item["last_correction_id"]),
                     carry_job_id=None if is_group else context.job_id)
    suggestion = item["suggested_label"] or None
    with st.container(horizontal=True):
        st.button(
            f"Accept {plain(suggestion)}" if suggestion else "No suggestion", key="accept_suggestion", type="primary",
            shortcut=SHORTCUTS["accept_suggestion"][0], on_click=decide_on_sample,
            kwargs=dict(on_sample, action="relabel", new_label=suggestion),
            disabled=not can_decide or is_group or deleted or not suggestion or suggestion == item["current_label"],
        )
        st.button("Delete", key="delete", shortcut=SHORTCUTS["delete"][0], on_click=decide_on_sample,
                  kwargs=dict(on_sample, action="delete"), disabled=not can_decide or is_group or deleted)
        if is_group:
            st.button("Keep all", key="keep", shortcut=SHORTCUTS["keep"][0], on_click=keep_group,
                      kwargs=dict(context=context, members=member_states(members)), disabled=not can_decide,
                      help="These are not duplicates (or all should stay): keep every image of the group")
        else:
            st.button("Keep", key="keep", shortcut=SHORTCUTS["keep"][0], on_click=decide_on_sample,
                      kwargs=dict(on_sample, action="keep"), disabled=not can_decide or deleted,
                      help="The flag was wrong: keep the image as it is")
        st.button("Restore", key="restore", shortcut=SHORTCUTS["restore"][0], on_click=decide_on_sample,
                  kwargs=dict(on_sample, action="restore"), disabled=not can_decide or is_group or not deleted)
        render_undo(context, locate)
    others = [c for c in context.classes if c != item["current_label"]]
    preselect_relabel_class(int(item["flag_id"]), suggestion, others)
    with st.container(horizontal=True, vertical_alignment="bottom"):
        chosen = st.selectbox("Relabel to", others, key=RELABEL_CLASS_KEY, disabled=is_group or deleted, width=220,
                              placeholder="Choose a class")
        st.button("Relabel", key="relabel", shortcut=SHORTCUTS["relabel"][0], on_click=decide_on_sample,
                  kwargs=dict(on_sample, action="relabel"),
                  disabled=not can_decide or is_group or deleted or chosen is None,
                  help="Choose a class under Relabel to first: this item has no suggestion" if chosen is None
                  else f"Relabel to {plain(chosen)}")
        if len(lookalikes):
            st.button(f"Relabel with {len(lookalikes)} look-alike{'s' if len(lookalikes) > 1 else ''}",
                      key="relabel_lookalikes", on_click=decide_on_sample,
                      kwargs=dict(on_sample, action="relabel", along=list(zip(
                          lookalikes["sample_id"].astype(int), lookalikes["last_correction_id"].astype(int)))),
                      disabled=not can_decide or chosen is None,
                      help="Relabel this listing and the similar photos beside it that still carry its label "
                           "(marked look-alike) to the class chosen under Relabel to, as one decision that one "
                           "Undo reverts")
        st.button("Previous", key="previous", shortcut=SHORTCUTS["previous"][0], on_click=move, args=(-1, total))
        st.button("Next", key="next", shortcut=SHORTCUTS["next"][0], on_click=move, args=(1, total))
    if not is_group:
        preselect_price(item)
        with st.container(horizontal=True, vertical_alignment="bottom"):
            # No min_value: the browser would silently put back the last valid value, and Fix price would save
            # it; the decision refuses a negative price in one line instead.
            st.number_input("Price", step=1.0, format="%.2f", key=PRICE_KEY, width=160,
                            disabled=deleted, help="The listing's right price; Fix price records it as a decision "
                                                   "(export and later audits use it; Undo reverts it)")
            st.button("Fix price", key="fix_price", shortcut=SHORTCUTS["price"][0], on_click=decide_on_sample,
                      kwargs=dict(on_sample, action="price"), disabled=not can_decide or deleted)


def render_evidence(item: pd.Series, dataset: DatasetRef, context: ReviewContext, database: str, version: tuple,
                    members: Optional[pd.DataFrame], lookalikes: Optional[pd.DataFrame] = None) -> None:
    scan_version, sample_id = version[2], int(item["sample_id"])
    if item["kind"] in MISLABEL_KINDS:
        render_mislabel(item, root=dataset.root, neighbours=load_neighbours(database, dataset.id, version, sample_id),
                        examples=lambda label: load_examples(database, dataset.id, scan_version, label, sample_id),
                        lookalikes=lookalikes)
    elif item["kind"] == "price":
        render_price(item, prices=load_prices(database, dataset.id, scan_version, item["given_label"]))
    elif item["kind"] == "duplicate":
        render_duplicates(item, root=dataset.root, members=members, context=context,
                          can_decide=bool(context.reviewer))
    elif item["kind"] == "broken":
        render_broken(item)
    else:
        render_other(item)


def render_item(item: pd.Series, position: int, total: int, dataset: DatasetRef, context: ReviewContext,
                database: str, version: tuple, locate) -> None:
    state = "decided" if item["decided"] else "open"
    members = (load_members(database, version[0], version, int(item["flag_id"]))
               if item["kind"] == "duplicate" else None)
    st.subheader(f"{position + 1} of {total} · {item['kind']} · {plain(item['path'])}")
    past = " · ranked past the review budget" if item["kind"] == PAST_BUDGET_MISLABEL else ""
    st.caption(f"sure {sure_text(item['score'])} · {state}{past}",
               help="How sure the audit is that this flag is a real problem (1 − its score), on one scale for "
                    "every kind.")
    # The decision buttons first, right under the heading: above the fold at 1440x900 whatever the evidence holds.
    if not context.reviewer:
        st.warning("Enter your name under Reviewer in the sidebar to make decisions; it is stored with each one.")
    neighbours = (load_neighbours(database, dataset.id, version, int(item["sample_id"]))
                  if item["kind"] in MISLABEL_KINDS else pd.DataFrame())
    lookalikes = lookalikes_of(item, neighbours, load_lookalike_similarity(database, dataset.id, version[0],
                                                                           version[2]) if len(neighbours) else 0.0)
    render_actions(item, context, total=total, locate=locate, members=members, lookalikes=lookalikes)
    if item["kind"] == "duplicate":  # the members side by side take the whole width
        render_evidence(item, dataset, context, database, version, members)
    else:
        image_column, evidence_column = st.columns([2, 3])
        with image_column:
            st.image(image_bytes(dataset.root, item, max_side=ITEM_IMAGE_SIDE), width="stretch")
            if st.button("Zoom", key="zoom", shortcut=SHORTCUTS["zoom"][0], icon=":material/zoom_in:",
                         disabled=not item["readable"]):
                show_full_resolution(dataset.root, item)
            st.caption(sample_caption(item))
            if item["current_label"] != item["label"] or item["deleted"]:
                st.caption(f"folder class: {plain(item['label'])}")
            st.markdown("  \n".join(listing_lines(item)))
        with evidence_column:
            render_evidence(item, dataset, context, database, version, members, lookalikes)


def jump_to_row(offset: int) -> None:
    """Callback of a click on a queue row: show that item."""
    rows = st.session_state.get(QUEUE_TABLE_KEY, {}).get("selection", {}).get("rows", [])
    if rows:
        st.session_state[POSITION_KEY] = offset + int(rows[0])


def render_queue_table(page: pd.DataFrame, offset: int, position: int, *, queue: QueueFilter) -> None:
    """This page of the queue; clicking a row shows that item. The state and kind columns only when the
    queue mixes states or kinds, so the path has the room; a path longer than it is cut in the middle,
    keeping its class folder and file name (the item's heading shows it whole)."""
    table = pd.DataFrame({
        "#": [f"▶ {offset + i + 1}" if offset + i == position else str(offset + i + 1) for i in range(len(page))],
        "state": np.where(page["decided"], "decided", "open"), "kind": page["kind"],
        "sure": [sure_text(score) for score in page["score"]], "path": page["path"],
    })
    if queue.state != "all":
        table = table.drop(columns="state")
    if len(queue.kinds) == 1:
        table = table.drop(columns="kind")
    room = QUEUE_PATH_CHARS - COLUMN_CHARS * (("state" in table) + ("kind" in table))
    table["path"] = [shortened_path(path, room) for path in table["path"]]
    st.dataframe(table, hide_index=True, key=QUEUE_TABLE_KEY, height=min(38 + 35 * len(table), 460),
                 on_select=lambda: jump_to_row(offset), selection_mode="single-row",
                 column_config={"#": st.column_config.TextColumn(width=56),
                                "state": st.column_config.TextColumn(width=68),
                                "kind": st.column_config.TextColumn(width=72),
                                "sure": st.column_config.TextColumn(width=64)})


# --- bulk accept ----------------------------------------------------------------------------------


def prepare_bulk(job_id: int, queue: QueueFilter) -> None:
    """Callback: the worst N open mislabels under the current class and score filters, for confirmation."""
    count = int(st.session_state.get("bulk_count", 0))
    with session_factory()() as session:
        candidates = bulk_accept_candidates(session, job_id, queue, count=count)
    applicable = candidates[candidates["applicable"]]
    st.session_state[BULK_PLAN_KEY] = {
        "requested": count, "found": len(candidates),
        "decisions": [(int(r.sample_id), str(r.suggested_label), int(r.last_correction_id), int(r.flag_id))
                      for r in applicable.itertuples()],
        "moves": applicable.groupby(["current_label", "suggested_label"]).size().reset_index(name="images"),
        "examples": applicable.head(BULK_EXAMPLES),
    }
    st.session_state[BULK_OPEN_KEY] = True


def confirm_bulk(context: ReviewContext) -> None:
    plan = st.session_state.pop(BULK_PLAN_KEY, None)
    if not plan:
        return
    decisions = [Decision(sample_id, "relabel", new_label, expected_last_id=last_id, flag_id=flag_id)
                 for sample_id, new_label, last_id, flag_id in plan["decisions"]]
    made = apply_many(context, decisions, note="bulk: accepted the suggested label", carry_job_id=context.job_id)
    if made:
        notify("success", f"Relabelled {len(decisions)} images to their suggested label"
               f"{copies_note(made - len(decisions))}. Undo reverts all of them.")


def cancel_bulk() -> None:
    """Drop the plan; the panel stays open to choose another count."""
    st.session_state.pop(BULK_PLAN_KEY, None)
    st.session_state[BULK_OPEN_KEY] = True


def render_bulk_examples(root: str, examples: pd.DataFrame) -> None:
    """The first planned relabels as thumbnails captioned from → to."""
    for start in range(0, len(examples), BULK_COLUMNS):
        for column, row in zip(st.columns(BULK_COLUMNS), examples.iloc[start:start + BULK_COLUMNS].itertuples()):
            with column:
                st.image(image_bytes(root, row._asdict(), max_side=THUMBNAIL_SIDE), width="stretch",
                         caption=f"{plain(row.current_label)} → {plain(row.suggested_label)}")


def render_bulk(job_id: int, queue: QueueFilter, context: ReviewContext, open_mislabels: int) -> None:
    """open_mislabels: open mislabel flags under the current class and score filters (the most one can take)."""
    plan = st.session_state.get(BULK_PLAN_KEY)
    expanded = plan is not None or bool(st.session_state.pop(BULK_OPEN_KEY, False))
    with st.expander("Bulk: accept the suggested label for the most confident mislabels", expanded=expanded):
        st.caption("Takes the worst-scored open mislabel flags within the class and score filters.")
        input_column, button_column = st.columns([2, 2], vertical_alignment="bottom")
        input_column.number_input("How many", min_value=1, max_value=max(1, open_mislabels),
                                  value=min(50, max(1, open_mislabels)), step=1, key="bulk_count")
        button_column.button("Review the change", key="bulk_prepare", on_click=prepare_bulk, args=(job_id, queue),
                             disabled=not context.reviewer or open_mislabels == 0)
        if plan is None:
            return
        changes = len(plan["decisions"])
        skipped = plan["found"] - changes
        if changes == 0:
            st.info("None of these flags would change anything (their images are deleted or already relabelled).")
        else:
            st.warning(f"This relabels exactly {changes} images"
                       + (f" ({skipped} of the {plan['found']} flags are skipped: deleted or already relabelled)"
                          if skipped else "") + ". Undo reverts them all at once.")
            st.dataframe(plan["moves"].rename(columns={"current_label": "from", "suggested_label": "to"}),
                         hide_index=True, key="bulk_moves")
            shown = len(plan["examples"])
            st.caption(f"The first {shown} of them:" if shown < changes else "All of them:")
            render_bulk_examples(context.root, plan["examples"])
        confirm_column, cancel_column, _ = st.columns([3, 2, 6])
        confirm_column.button(f"Relabel {changes} images", key="bulk_confirm", type="primary",
                              on_click=confirm_bulk, args=(context,), disabled=changes == 0)
        cancel_column.button("Cancel", key="bulk_cancel", on_click=cancel_bulk)


# --- grid -----------------------------------------------------------------------------------------


def render_grid_view(dataset: DatasetRef, context: ReviewContext, database: str, version: tuple, queue: QueueFilter,
                     summary: pd.DataFrame, locate) -> None:
    """The queue's flags of one kind (mislabels or broken files) as a page of tiles."""
    kinds = [kind for kind in GRID_KINDS if kind in set(summary["kind"])]
    if not kinds:
        st.info("The grid shows mislabels and broken files; this audit has neither.")
        return
    kind_column, size_column = st.columns([2, 1])
    kind = kind_column.segmented_control("Kind", kinds, key=GRID_KIND_KEY, default=kinds[0], required=True,
                                         on_change=_to_first_item)
    size = size_column.segmented_control("Tiles per page", GRID_SIZES, key=GRID_SIZE_KEY, default=GRID_SIZES[0],
                                         required=True, on_change=_to_first_item)
    grid_queue = replace(queue, kinds=(kind,))
    job_id = version[0]
    total = load_count(database, job_id, version, grid_queue)
    offset = min(int(st.session_state.get(GRID_OFFSET_KEY, 0)), max(0, total - 1) // size * size)
    st.session_state[GRID_OFFSET_KEY] = offset
    if total == 0:
        st.success(f"No {kind} flags to review under these filters.")
        render_undo(context, locate)
        return
    rows = load_page(database, job_id, version, grid_queue, offset, size)
    render_grid(rows, root=dataset.root, context=context, total=total, render_undo=lambda: render_undo(context, locate))


# --- page -----------------------------------------------------------------------------------------


def render_mislabel_trust(database: str, job_id: int, version: tuple) -> None:
    """One line when the mislabel evidence is weak (the flags are a ranking with a budget), one on the
    queue's precision as the reviewer's decisions show it, and one on how often decisions past the budget
    confirm the ranking."""
    summary = load_mislabel_summary(database, job_id)
    if summary.get("weak_evidence"):
        st.warning(weak_evidence_line(summary), icon=":material/warning:")
    precision = load_queue_precision(database, job_id, version)
    if precision is not None:
        st.caption(plain("Mislabels: " + precision.sentence()), help=(
            "From your decisions on mislabel flags (relabel or delete confirms a flag, keep refutes it), "
            "weighed by each flag's score and anchored by the audit's count of label errors."))
    past = load_past_budget_confirmations(database, job_id, version) if summary.get("past_budget") else None
    if past is not None:
        st.caption(past_budget_line(*past), help=(
            f"Your decisions on {PAST_BUDGET_MISLABEL} items (relabel or delete confirms, keep refutes), with a 95% "
            "Wilson interval: while they keep confirming, the ranking is still worth reading."))


def weak_evidence_line(summary: dict) -> str:
    """The Review page's line when the mislabel evidence is weak: the budget, the count's interval and, when the
    ranking goes on past the budget (cleanlab's own count), how far."""
    low, high = summary.get("estimated_interval") or (0, 0)
    past = int(summary.get("past_budget") or 0)
    listings = "listing is" if past == 1 else "listings are"
    beyond = (f"; {past:,} more {listings} ranked past it ({PAST_BUDGET_MISLABEL}) for as long as your "
              "decisions keep confirming them" if past else "")
    return (f"Mislabels: the evidence here is weak, so the flags are a ranking: review the first "
            f"{summary.get('review_budget', 0):,} (label errors estimated at {low:,}-{high:,}) and watch how often "
            f"your decisions confirm them{beyond}.")


def past_budget_line(confirmed: int, answered: int, open_items: int) -> str:
    """e.g. "Past the budget: 12 of your 20 decisions confirmed the flag (95%: 39%-78%); 140 open"."""
    low, high = wilson_interval(confirmed, answered)
    return (f"Past the budget: {confirmed} of your {answered} decisions confirmed the flag (95%: {low:.0%}-"
            f"{high:.0%}); {open_items:,} open")


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def load_past_budget_confirmations(database: str, job_id: int, version: tuple) -> Optional[tuple[int, int, int]]:
    """(confirmed, confirmed or refuted, still open) of the ranking past the budget; None before a decision on it."""
    with factory_for(database)() as session:
        flags = mislabel_decisions(session, job_id, kind=PAST_BUDGET_MISLABEL)
    answered = int((flags["confirmed"] | flags["refuted"]).sum())
    if not answered:
        return None
    return int(flags["confirmed"].sum()), answered, int((~flags["decided"]).sum())


def main() -> None:
    dataset = open_page("Review")
    reviewer = reviewer_name()
    if dataset is None:
        return
    forget_state_of_other_dataset(dataset.id)
    version = current_version(dataset.id)
    job_id = version[0]
    if not job_id:
        st.info("This dataset has no finished audit yet: run one from the home page or with `listing-audit audit`.")
        return
    database = str(db_path())
    classes = load_classes(database, dataset.id, version[2])
    summary = load_summary(database, job_id, version)
    restore_view_from_url(classes, summary["kind"].tolist())
    view = st.sidebar.segmented_control("View", VIEWS, key=VIEW_KEY, default=VIEWS[0], required=True,
                                        format_func=VIEW_LABELS.__getitem__)
    queue = render_filters(classes, summary)
    context = ReviewContext(dataset_id=dataset.id, root=dataset.root, reviewer=reviewer, classes=tuple(classes),
                            state_filter=queue.state, job_id=job_id)
    render_notice()
    st.caption(" · ".join(f"{row.kind}: {row.open} open of {row.items}" for row in summary.itertuples())
               + f" — {job_name('audit', job_id)}")
    render_mislabel_trust(database, job_id, version)
    total = load_count(database, job_id, version, queue)
    open_mislabels = load_count(database, job_id, version, replace(queue, kinds=("mislabel",), state="open"))
    locate = lambda flag_id: locate_in_queue(job_id, queue, flag_id)  # noqa: E731
    if view == "grid":
        write_view_to_url(view, queue, None)
        render_grid_view(dataset, context, database, version, queue, summary, locate)
        st.caption("Keyboard: `a` accept the ticked · `k` accept the ticked, keep the rest · `u` undo · "
                   "`n`/`p` next/previous page")
        return
    upcoming = None  # the item after the one shown: next, and a decision in the open queue, show it
    go_to_pending_item(job_id, queue)
    if total == 0:
        write_view_to_url(view, queue, None)
        st.success("Nothing to review under these filters.")
        render_undo(context, locate)
    else:
        position = min(max(0, st.session_state.get(POSITION_KEY, 0)), total - 1)
        st.session_state[POSITION_KEY] = position
        offset = position - position % PER_PAGE
        page = load_page(database, job_id, version, queue, offset)
        item = page.iloc[position - offset]
        write_view_to_url(view, queue, int(item["flag_id"]))
        queue_column, item_column = st.columns([3, 5])
        with queue_column:
            render_queue_table(page, offset, position, queue=queue)
        with item_column:
            render_item(item, position, total, dataset, context, database, version, locate)
        upcoming = page.iloc[position - offset + 1] if position - offset + 1 < len(page) else None
    render_bulk(job_id, queue, context, open_mislabels)
    st.caption("Keyboard: " + shortcut_legend())
    if upcoming is not None:
        in_background(lambda: warm_item(dataset, database, version, upcoming))


def warm_item(dataset: DatasetRef, database: str, version: tuple, item: pd.Series) -> None:
    """Read and decode what showing `item` takes into the caches: its image and, for a mislabel, its most
    similar photos and their thumbnails."""
    image_bytes(dataset.root, item, max_side=ITEM_IMAGE_SIDE)
    if item["kind"] in MISLABEL_KINDS:
        for _, row in load_neighbours(database, dataset.id, version, int(item["sample_id"])).iterrows():
            image_bytes(dataset.root, row, max_side=THUMBNAIL_SIDE)


main()
