"""Grid review: a page of 24 to 48 flags of one kind as thumbnails, each ticked to accept its suggestion.

The reviewer unticks the wrong suggestions and accepts the rest with one key; accepting is one
action (Undo reverts the whole page). For mislabels a tile shows given → suggested and the
listing's title; for broken files the reason, and accepting deletes them. Unticked flags stay
open, or are kept (the flag was wrong) with "accept ticked, keep the rest".
"""
from __future__ import annotations

from typing import Callable

import pandas as pd
import streamlit as st

from core.audit.acceptance import plan_acceptance
from db.corrections import Decision
from ui.review_widgets import SHORTCUTS, ReviewContext, apply_many, copies_note, image_bytes, notify
from ui.text import plain
from ui.thumbnails import THUMBNAIL_SIDE

#: Kinds whose flags carry a decision a grid can accept: relabel to the suggestion, delete a broken file.
GRID_KINDS = ("mislabel", "broken")
GRID_SIZES = (24, 36, 48)
GRID_COLUMNS = 6
GRID_OFFSET_KEY, GRID_SIZE_KEY, GRID_KIND_KEY = "review_grid_offset", "review_grid_size", "review_grid_kind"
TITLE_CHARACTERS = 60


def pick_key(flag_id: int) -> str:
    """The session key of a tile's tick box."""
    return f"grid_pick_{flag_id}"


def ticked_flags(rows: pd.DataFrame) -> set[int]:
    """Flag ids of the tiles left ticked (a tile is ticked until the reviewer unticks it)."""
    return {int(flag_id) for flag_id in rows["flag_id"] if st.session_state.get(pick_key(int(flag_id)), True)}


def grid_decisions(rows: pd.DataFrame, ticked: set[int], *, keep_rest: bool) -> list[Decision]:
    """The decisions of one grid page (rows: db.review.QUEUE_COLUMNS): the ticked flags accepted as
    core.audit.acceptance plans them, and with keep_rest every unticked sample not deleted kept."""
    plan = plan_acceptance(rows[rows["flag_id"].isin(ticked)])
    decisions = [Decision(int(row.sample_id), row.action, new_label=row.new_label, flag_id=int(row.flag_id),
                          expected_last_id=int(row.expected_last_id)) for row in plan.itertuples()]
    if keep_rest:
        rest = rows[~rows["flag_id"].isin(ticked) & ~rows["deleted"].astype(bool)]
        decisions += [Decision(int(row.sample_id), "keep", flag_id=int(row.flag_id),
                               expected_last_id=int(row.last_correction_id)) for row in rest.itertuples()]
    return decisions


def accept_page(context: ReviewContext, rows: pd.DataFrame, *, keep_rest: bool) -> None:
    """Callback of the grid's accept buttons: one action over the page."""
    ticked = ticked_flags(rows)
    decisions = grid_decisions(rows, ticked, keep_rest=keep_rest)
    accepted = sum(decision.action != "keep" for decision in decisions)
    kept = len(decisions) - accepted
    note = f"grid: accepted {accepted} suggestions" + (f", kept {kept}" if kept else "")
    made = apply_many(context, decisions, note=note, carry_job_id=context.job_id)
    if made:
        notify("success", f"Accepted {accepted} of {len(rows)}" + (f" and kept {kept}" if kept else "")
               + copies_note(made - len(decisions)) + ". Undo reverts the whole page.")


def turn_page(delta: int, total: int) -> None:
    """Callback of the grid's Next / Previous page."""
    size = int(st.session_state.get(GRID_SIZE_KEY, GRID_SIZES[0]))
    offset = int(st.session_state.get(GRID_OFFSET_KEY, 0)) + delta * size
    st.session_state[GRID_OFFSET_KEY] = max(0, min(offset, max(0, total - 1) // size * size))


def tile_label(row) -> str:
    """The tick box's label: given → suggested (with the evidence's probability) or the broken file's reason."""
    if row.kind == "mislabel":
        probability = row.evidence.get("suggested_probability")
        shown = f" {float(probability):.0%}" if probability is not None else ""
        return f"{plain(row.current_label)} → **{plain(row.suggested_label)}**{shown}"
    return f"delete: {plain(row.reason or row.error or 'unreadable')}"


def render_tile(root: str, row) -> None:
    st.image(image_bytes(root, row._asdict(), max_side=THUMBNAIL_SIDE), width="stretch")
    st.checkbox(tile_label(row), value=True, key=pick_key(int(row.flag_id)))
    if isinstance(row.title, str) and row.title.strip():
        title = row.title.strip()
        st.caption(plain(title if len(title) <= TITLE_CHARACTERS else title[:TITLE_CHARACTERS - 1] + "…"))


def render_grid(rows: pd.DataFrame, *, root: str, context: ReviewContext, total: int,
                render_undo: Callable[[], None]) -> None:
    """A page of tiles (rows: db.review.QUEUE_COLUMNS, one kind of GRID_KINDS) with the accept buttons."""
    offset = int(st.session_state.get(GRID_OFFSET_KEY, 0))
    st.caption(f"{offset + 1}-{offset + len(rows)} of {total} · untick the wrong ones, then accept the rest")
    with st.container(horizontal=True):
        ticked = len(ticked_flags(rows))
        st.button(f"Accept {ticked} ticked", key="grid_accept", type="primary", shortcut=SHORTCUTS["accept_suggestion"][0],
                  on_click=accept_page, args=(context, rows), kwargs=dict(keep_rest=False),
                  disabled=not context.reviewer or not ticked)
        st.button("Accept ticked, keep the rest", key="grid_accept_keep", shortcut=SHORTCUTS["keep"][0],
                  on_click=accept_page, args=(context, rows), kwargs=dict(keep_rest=True),
                  disabled=not context.reviewer, help="Unticked flags were wrong: keep those images as they are")
        render_undo()
        st.button("Previous page", key="grid_previous", shortcut=SHORTCUTS["previous"][0], on_click=turn_page,
                  args=(-1, total), disabled=offset == 0)
        st.button("Next page", key="grid_next", shortcut=SHORTCUTS["next"][0], on_click=turn_page, args=(1, total),
                  disabled=offset + len(rows) >= total)
    for start in range(0, len(rows), GRID_COLUMNS):
        for column, row in zip(st.columns(GRID_COLUMNS), rows.iloc[start:start + GRID_COLUMNS].itertuples()):
            with column:
                render_tile(root, row)
