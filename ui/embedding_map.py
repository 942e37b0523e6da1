"""Browse's embedding map: every photo with a cached embedding as a point (core.models.embedding_map), coloured by its
label or by what the latest audit flagged; lasso or box a region to see its listings and relabel or delete them
as one action (Undo reverts it)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import pandas as pd
import plotly.express as px
import streamlit as st

from core.models.embedding_map import MAX_POINTS, even_sample, project_2d
from db.corrections import Decision
from db.embeddings import dataset_embeddings
from db.flags import flags_frame
from db.queries import samples_frame
from db.review import latest_audit_job, sample_view
from ui.common import factory_for, session_factory
from ui.review_widgets import ReviewContext, apply_many, notify, render_notice, undo_last
from ui.text import plain
from ui.thumbnails import scanned_hash, thumbnail

SHOW_KEY, CHART_KEY, COLOUR_KEY = "browse_map_show", "browse_map", "browse_map_colour"
SELECTED_KEY, SEEN_EVENT_KEY, RELABEL_KEY = "browse_map_selected", "browse_map_seen_event", "browse_map_relabel"
COLOURINGS = {"label": "Label", "flag": "Flag"}
NOT_FLAGGED = "not flagged"
SHOWN_TILES = 12
TILE_COLUMNS = 6
MAP_COLUMNS = ["sample_id", "x", "y", "label", "flag", "path", "mtime_ns", "file_size", "content_hash"]


@st.cache_data(ttl=600, max_entries=4, show_spinner="Drawing the map…")
def load_map(database: str, dataset_id: int, version: str) -> tuple[pd.DataFrame, int]:
    """(MAP_COLUMNS frame of the points drawn, how many listings have an embedding); `version` keys the cache."""
    with factory_for(database)() as session:
        _, ids, _, vectors = dataset_embeddings(session, dataset_id)
        if not len(ids):
            return pd.DataFrame(columns=MAP_COLUMNS), 0
        chosen = even_sample(len(ids))
        points = project_2d(vectors[chosen])
        samples = sample_view(session, ids[chosen].tolist())
        job = latest_audit_job(session, dataset_id)
        flags = flags_frame(session, job.id) if job is not None else pd.DataFrame(columns=["sample_id", "kind"])
    flag = flags.drop_duplicates("sample_id").set_index("sample_id")["kind"]  # worst first: its worst flag
    frame = pd.DataFrame({"sample_id": ids[chosen], "x": points[:, 0], "y": points[:, 1]})
    frame = frame[frame["sample_id"].isin(samples.index) & ~frame["sample_id"].map(samples["deleted"]).fillna(True)]
    rows = samples.loc[frame["sample_id"]]
    frame = frame.assign(label=rows["current_label"].to_numpy(), path=rows["path"].to_numpy(),
                         mtime_ns=rows["mtime_ns"].to_numpy(),
                         file_size=rows["file_size"].to_numpy(), content_hash=rows["content_hash"].to_numpy(),
                         flag=frame["sample_id"].map(flag).astype(object).fillna(NOT_FLAGGED).to_numpy())
    return frame[MAP_COLUMNS].reset_index(drop=True), len(ids)


def map_figure(frame: pd.DataFrame, colour: str):
    figure = px.scatter(frame, x="x", y="y", color=colour, custom_data=["sample_id"], hover_name="path",
                        hover_data={"x": False, "y": False, "label": True, "flag": True}, render_mode="webgl",
                        category_orders={colour: sorted(frame[colour].unique())})
    figure.update_traces(marker={"size": 5, "opacity": 0.7})
    figure.update_layout(height=520, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode="lasso",
                         xaxis={"visible": False}, yaxis={"visible": False}, legend_title_text=COLOURINGS[colour])
    return figure


def selected_ids(event) -> list[int]:
    """Sample ids of the points a lasso or box selected (from the chart's selection event)."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    return [int(point["customdata"][0]) for point in points if point.get("customdata")]


def _take_new_selection(event) -> None:
    """Keep the chart's selection when it is a new one (a rerun repeats the last event)."""
    ids = selected_ids(event)
    if ids != st.session_state.get(SEEN_EVENT_KEY):
        st.session_state[SEEN_EVENT_KEY] = ids
        st.session_state[SELECTED_KEY] = ids


def _act_on_selection(context: ReviewContext, action: str) -> None:
    """Callback: relabel the selected listings to the chosen class (those not already in it) or delete them."""
    ids = list(st.session_state.get(SELECTED_KEY) or [])
    new_label: Optional[str] = st.session_state.get(RELABEL_KEY) if action == "relabel" else None
    with session_factory()() as session:
        states = samples_frame(session, context.dataset_id, sample_ids=ids)
    live = states[~states["deleted"]]
    if action == "relabel":
        live = live[live["current_label"] != new_label]
    decisions = [Decision(int(row.id), action, new_label=new_label, expected_last_id=int(row.last_correction_id))
                 for row in live.itertuples()]
    if apply_many(context, decisions, note=f"Browse map: {len(ids)} listings selected"):
        done = f"Relabelled {len(decisions)} to {new_label}" if action == "relabel" else f"Deleted {len(decisions)}"
        notify("success", f"{done}. Undo reverts them all.")
        st.session_state[SELECTED_KEY] = []


def render_selection(root: str, frame: pd.DataFrame, context: ReviewContext) -> None:
    ids = [i for i in st.session_state.get(SELECTED_KEY) or [] if i in set(frame["sample_id"])]
    render_notice()
    if not ids:
        st.caption("Lasso or box a region of the map to see its listings and relabel or delete them together.")
        return
    chosen = frame.set_index("sample_id").loc[ids]
    labels = ", ".join(f"{plain(label)} {count}" for label, count in Counter(chosen["label"]).most_common())
    st.markdown(f"**{len(ids)}** listings selected ({labels})")
    shown = chosen.head(SHOWN_TILES)
    for start in range(0, len(shown), TILE_COLUMNS):
        for column, (sample_id, row) in zip(st.columns(TILE_COLUMNS), shown.iloc[start:start + TILE_COLUMNS].iterrows()):
            column.image(thumbnail(str(Path(root) / row["path"]), int(row["mtime_ns"]), int(row["file_size"]),
                                   root=root, content_hash=scanned_hash(row)),
                         caption=plain(f"{row['path']} · {row['label']}"), width="stretch")
    cannot = not context.reviewer
    target, relabel, delete, undo = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    target.selectbox("Relabel the selection to", list(context.classes), key=RELABEL_KEY)
    relabel.button(f"Relabel {len(ids)} selected", key="map_relabel", type="primary", disabled=cannot,
                   on_click=_act_on_selection, args=(context, "relabel"), width="stretch")
    delete.button("Delete them", key="map_delete", disabled=cannot, on_click=_act_on_selection,
                  args=(context, "delete"), width="stretch")
    undo.button("Undo", key="map_undo", disabled=cannot, on_click=undo_last,
                kwargs=dict(context=context, locate=lambda flag_id: None), width="stretch")
    if cannot:
        st.caption("Enter your name under Reviewer in the sidebar to relabel or delete.")


def render_embedding_map(root: str, database: str, dataset_id: int, version: str, context: ReviewContext) -> None:
    """The toggle, then (when on) the map, its colouring and what is selected on it."""
    if not st.toggle("Embedding map", key=SHOW_KEY, help="Each photo as a point, similar photos close together "
                                                        "(the audit's cached photo embeddings, projected by PCA)."):
        return
    frame, embedded = load_map(database, dataset_id, version)
    if frame.empty:
        st.info("No photo embeddings are cached yet: an audit with photo evidence caches them.")
        return
    colour = st.segmented_control("Colour by", list(COLOURINGS), key=COLOUR_KEY, default="label",
                                  required=True, format_func=COLOURINGS.get)
    note = f" (an even sample of {len(frame):,} of {embedded:,})" if embedded > MAX_POINTS else ""
    st.caption(f"{len(frame):,} listings with a cached embedding{note}; deleted ones are left out.")
    event = st.plotly_chart(map_figure(frame, colour or "label"), key=CHART_KEY, on_select="rerun",
                            selection_mode=("lasso", "box"))
    _take_new_selection(event)
    render_selection(root, frame, context)
