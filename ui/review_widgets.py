"""Parts of the Review screen: the evidence of each kind of flag, the decision buttons and what they do.

Decisions run in button callbacks, which receive the state the reviewer was
shown when the button was drawn (`expected_last_id`): if someone else decided
on the sample since, db.corrections raises DecisionConflict and the reviewer
gets a warning instead of overwriting. Messages for the next run go through
`st.session_state[NOTICE_KEY]`.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.imaging import read_file_facts
from db.corrections import Decision, DecisionConflict, DecisionError, decide_many, undo_last_action
from db.engine import DatabaseAccessError, write_transaction
from db.models import Correction, Sample
from db.review import CARRIED_IN_BULK, carry_to_copies
from ui.common import session_factory
from ui.text import plain
from ui.thumbnails import THUMBNAIL_SIDE, large_image, scanned_hash, thumbnail, unreadable_placeholder

NOTICE_KEY = "review_notice"
POSITION_KEY = "review_position"
BULK_PLAN_KEY = "review_bulk_plan"
RELABEL_CLASS_KEY = "relabel_class"
PRICE_KEY = "fix_price_value"
#: Button key -> (keyboard shortcut, what it does). Streamlit reserves C and R.
SHORTCUTS = {
    "accept_suggestion": ("A", "accept the suggested label"),
    "relabel": ("L", "relabel to the class chosen in the list"),
    "delete": ("D", "delete (leave out of training and export)"),
    "keep": ("K", "keep: the flag was wrong"),
    "restore": ("S", "restore a deleted image"),
    "undo": ("U", "undo your last decision"),
    "next": ("N", "next item"),
    "previous": ("P", "previous item"),
    "zoom": ("Z", "the file at full resolution"),
    "price": ("F", "fix the price to the value in the price box"),
}
#: Longest side of the full-resolution view (a 48-megapixel photo is shown at this size, not decoded whole).
ZOOM_SIDE = 2400
ITEM_IMAGE_SIDE = 480
NEIGHBOUR_SIDE = 120
EXAMPLES_PER_CLASS = 3


@dataclass(frozen=True)
class ReviewContext:
    """What every decision callback needs besides the item: who decides, on which dataset, and the queue's state."""

    dataset_id: int
    root: str
    reviewer: str
    classes: tuple[str, ...]
    state_filter: str  # open | decided | all: after a decision the queue moves on only when the item stays in it
    job_id: Optional[int] = None  # the audit whose queue this is (Review); its duplicate groups carry decisions


# --- notices ------------------------------------------------------------------------------------


def notify(level: str, text: str) -> None:
    """Show `text` at the top of the next run (level: success | info | warning | error), as plain text."""
    st.session_state[NOTICE_KEY] = (level, text)


def render_notice() -> None:
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice is not None:
        level, text = notice
        {"success": st.success, "info": st.info, "warning": st.warning, "error": st.error}[level](plain(text))


def shortcut_legend() -> str:
    """The keyboard shortcuts as one line of markdown."""
    return " · ".join(f"`{key.lower()}` {what}" for key, what in SHORTCUTS.values())


# --- decisions (button callbacks) ---------------------------------------------------------------


def _advance_after_decision(context: ReviewContext) -> None:
    """In the open queue a decided item drops out and the next one takes its place; elsewhere step on."""
    if context.state_filter != "open":
        st.session_state[POSITION_KEY] = st.session_state.get(POSITION_KEY, 0) + 1


def _describe(label: str, deleted: bool) -> str:
    return f"{label} (deleted)" if deleted else label


def decide_on_sample(
    context: ReviewContext, *, sample_id: int, action: str, expected_last_id: int,
    flag_id: Optional[int] = None, new_label: Optional[str] = None, carry_job_id: Optional[int] = None,
    along: Sequence[tuple[int, int]] = (),
) -> None:
    """Callback of the single-sample buttons. new_label None for relabel reads the class list widget;
    a price decision reads the price box. carry_job_id: the audit job whose duplicate groups a relabel,
    delete or keep carries to (the sample's open copies under the same label get the same decision, in
    the same action, so one undo takes them all back). along: (sample id, its last correction id seen) of
    look-alikes that get the same decision in the same action."""
    if action == "relabel" and new_label is None:
        new_label = st.session_state.get(RELABEL_CLASS_KEY)
        if new_label is None:
            notify("warning", "Choose a class under Relabel to first: nothing was relabelled.")
            return
    new_price = st.session_state.get(PRICE_KEY) if action == "price" else None

    def record(session) -> tuple[str, str, str, int]:
        decisions = [Decision(sample_id, action, new_label=new_label, new_price=new_price,
                              expected_last_id=expected_last_id, flag_id=flag_id)]
        decisions += [Decision(other, action, new_label=new_label, expected_last_id=last_id)
                      for other, last_id in along]
        if carry_job_id:
            decisions = carry_to_copies(session, carry_job_id, decisions)
        first, *_ = decide_many(session, decisions, classes=list(context.classes), reviewer=context.reviewer)
        sample = session.get(Sample, sample_id)
        if action == "price":
            return (sample.path, _price_text(first.old_price, sample.price),
                    _price_text(first.new_price, sample.price), 0)
        return (sample.path, _describe(first.old_label, first.was_deleted), _describe(first.new_label, first.deleted),
                len(decisions) - 1)

    try:
        path, before, after, carried = write_transaction(session_factory(), record)
    except DecisionConflict as error:
        notify("warning", f"Not saved: {error}")
        return
    except (DecisionError, DatabaseAccessError) as error:
        notify("error", f"Not saved: {error}")
        return
    with_lookalikes = f", with {len(along)} look-alike{'s' if len(along) > 1 else ''}" if along else ""
    notify("success", f"{action.capitalize()}: {path} — {before} → {after}{with_lookalikes}"
                      f"{copies_note(carried - len(along), own=True)}")
    _advance_after_decision(context)


def copies_note(carried: int, *, own: bool = False) -> str:
    """" (and its 2 copies in the duplicate group)" for decisions carried to copies; "" for none."""
    if not carried:
        return ""
    copies = f"{carried} cop{'y' if carried == 1 else 'ies'}"
    return f" (and its {copies} in the duplicate group)" if own else f" (and {copies} in their duplicate groups)"


def _price_text(fixed: Optional[float], listed: Optional[float]) -> str:
    price = fixed if fixed is not None else listed
    return "no price" if price is None else f"{price:,.2f}"


def keep_only(context: ReviewContext, *, keep_sample_id: int, members: list[tuple[int, int, bool, Optional[int]]]) -> None:
    """Callback of "keep this one, delete the rest": one action over the whole duplicate group.

    members: (sample id, last correction id shown, deleted, flag id) of every member.
    The kept one is restored if it was deleted; the others not yet deleted are deleted.
    """
    decisions = []
    for sample_id, last_id, deleted, flag_id in members:
        if sample_id == keep_sample_id:
            action = "restore" if deleted else "keep"
        elif not deleted:
            action = "delete"
        else:
            continue
        decisions.append(Decision(sample_id, action, expected_last_id=last_id, flag_id=flag_id))
    if apply_many(context, decisions, note="duplicate group: kept one, deleted the rest"):
        deleted = sum(decision.action == "delete" for decision in decisions)
        notify("success", f"Kept one image of the group and deleted {deleted}.")
        _advance_after_decision(context)


def keep_group(context: ReviewContext, *, members: list[tuple[int, int, bool, Optional[int]]]) -> None:
    """Callback of Keep on a duplicate group: the flag was wrong, keep every member not deleted."""
    decisions = [Decision(sample_id, "keep", expected_last_id=last_id, flag_id=flag_id)
                 for sample_id, last_id, deleted, flag_id in members if not deleted]
    if apply_many(context, decisions, note="duplicate group: kept all"):
        notify("success", f"Kept all {len(decisions)} images of the group.")
        _advance_after_decision(context)


def apply_many(context: ReviewContext, decisions: list[Decision], *, note: str,
               carry_job_id: Optional[int] = None) -> Optional[int]:
    """Apply the decisions as one action (all or nothing), with carry_job_id each relabel and keep carried to
    the sample's open copies in that audit's duplicate groups (db.review.carry_to_copies). Returns how many
    decisions were made (copies included), or None after notifying why none could be."""
    if not decisions:
        notify("info", "Nothing to change.")
        return None

    def record(session) -> int:
        made = carry_to_copies(session, carry_job_id, decisions, actions=CARRIED_IN_BULK) if carry_job_id else decisions
        decide_many(session, made, classes=list(context.classes), reviewer=context.reviewer, note=note)
        return len(made)

    try:
        return write_transaction(session_factory(), record)
    except DecisionConflict as error:
        notify("warning", f"Nothing saved: {error}")
        return None
    except (DecisionError, DatabaseAccessError) as error:
        notify("error", f"Nothing saved: {error}")
        return None


def undo_last(context: ReviewContext, *, locate: Callable[[int], Optional[int]]) -> None:
    """Callback of Undo: revert the reviewer's latest action; show its item when the queue holds it.

    locate(flag_id) -> the flag's position in the current queue, or None.
    """

    def revert(session) -> tuple[list[str], list[Optional[int]]]:
        undos = undo_last_action(session, context.dataset_id, context.reviewer, classes=list(context.classes))
        return ([session.get(Sample, undo.sample_id).path for undo in undos],
                [session.get(Correction, undo.reverts_id).flag_id for undo in undos])

    try:
        reverted, reverted_flags = write_transaction(session_factory(), revert)
    except DecisionConflict as error:
        notify("warning", f"Not undone: {error}")
        return
    except (DecisionError, DatabaseAccessError) as error:
        notify("error", f"Not undone: {error}")
        return
    shown = f"{reverted[0]}" if len(reverted) == 1 else f"{len(reverted)} images"
    notify("success", f"Undid your last decision on {shown}.")
    for flag_id in filter(None, reverted_flags):
        position = locate(flag_id)
        if position is not None:
            st.session_state[POSITION_KEY] = position
            break


def move(delta: int, total: int) -> None:
    """Callback of Next / Previous."""
    st.session_state[POSITION_KEY] = min(max(0, st.session_state.get(POSITION_KEY, 0) + delta), max(0, total - 1))


# --- images -------------------------------------------------------------------------------------


def image_bytes(root: str, row, *, max_side: int) -> bytes:
    """JPEG bytes of the sample in `row` (path, mtime_ns, file_size, readable, error), or a placeholder."""
    if not row["readable"]:
        return unreadable_placeholder(row["error"] or "unreadable", side=max_side)
    path = str(Path(root) / row["path"])
    version = {"root": root, "content_hash": scanned_hash(row)}
    if max_side <= THUMBNAIL_SIDE:
        return thumbnail(path, int(row["mtime_ns"]), int(row["file_size"]), **version)
    return large_image(path, int(row["mtime_ns"]), int(row["file_size"]), max_side=max_side, **version)[0]


def sample_caption(row) -> str:
    state = _describe(row["current_label"], bool(row["deleted"]))
    price = "" if pd.isna(row["price"]) else f" · {row['price']:,.2f}"
    return plain(f"{row['path']} · {state}{price}")


def human_size(size_bytes: float) -> str:
    """e.g. 2048 -> "2.0 KB", 3_500_000 -> "3.3 MB"."""
    for unit in ("bytes", "KB", "MB"):
        if size_bytes < 1024 or unit == "MB":
            return f"{size_bytes:,.0f} {unit}" if unit == "bytes" else f"{size_bytes:,.1f} {unit}"
        size_bytes /= 1024
    return ""


def listing_lines(row) -> list[str]:
    """What the listing carries, as markdown lines: its title, price and listing id, then the file's pixels
    and size. A line is left out when the listing has nothing for it."""
    lines = []
    if isinstance(row["title"], str) and row["title"].strip():
        lines.append(f"**{plain(row['title'].strip())}**")
    facts = []
    if not pd.isna(row["price"]):
        facts.append(f"price {row['price']:,.2f}")
    if isinstance(row["listing_id"], str) and row["listing_id"]:
        facts.append(f"listing {plain(row['listing_id'])}")
    if facts:
        lines.append(" · ".join(facts))
    return lines + [file_line(row)]


def file_line(row) -> str:
    """The file's pixels (upright) and size, e.g. "640 × 480 px · 52.1 KB": what tells copies apart."""
    size = [f"{int(row['width'])} × {int(row['height'])} px"] if not pd.isna(row["width"]) else []
    return " · ".join(size + [human_size(int(row["file_size"]))])


@st.dialog("Full resolution", width="large")
def show_full_resolution(root: str, row) -> None:
    """The file as it is on disk (up to ZOOM_SIDE px, upright) with its format, pixels, size and EXIF orientation."""
    path = Path(root) / row["path"]
    st.caption(plain(row["path"]))
    try:
        facts = read_file_facts(path)
    except Exception as error:  # noqa: BLE001 - whatever Pillow says about a file it cannot open
        st.error(plain(f"cannot open: {error}"))
        return
    st.markdown(plain(f"{facts.describe()} · {human_size(int(row['file_size']))}"))
    image, problem = large_image(str(path), int(row["mtime_ns"]), int(row["file_size"]), max_side=ZOOM_SIDE,
                                 root=root, content_hash=scanned_hash(row))
    st.image(image, width="content")  # at its own size (at most ZOOM_SIDE): never blown up past the file's pixels
    if problem:
        st.warning(plain(problem))


def render_examples(root: str, examples: pd.DataFrame, *, title: str) -> None:
    """A row of thumbnails under `title` (markdown: escape user strings in it)."""
    st.caption(title)
    if examples.empty:
        st.write("no readable examples")
        return
    st.image([image_bytes(root, row, max_side=THUMBNAIL_SIDE) for _, row in examples.iterrows()],
             caption=[plain(row["path"]) for _, row in examples.iterrows()], width=96)


# --- evidence -----------------------------------------------------------------------------------


def top_classes(evidence: dict) -> list[tuple[str, float]]:
    """The evidence's top-3 as (class, probability): from [[label, p], ...] or [{"label", "probability"}, ...]."""
    pairs = []
    for entry in evidence.get("top3") or []:
        if isinstance(entry, dict):
            label, probability = entry.get("label", entry.get("class")), entry.get("probability", entry.get("p"))
        else:
            label, probability = entry[0], entry[1]
        if label is not None and probability is not None:
            pairs.append((str(label), float(probability)))
    return pairs


def suggested_probability(item) -> Optional[float]:
    value = item["evidence"].get("suggested_probability")
    if value is None:
        value = dict(top_classes(item["evidence"])).get(item["suggested_label"])
    return None if value is None else float(value)


def cross_evidence(evidence: dict, *, suggested: str) -> list[str]:
    """What the price and duplicate checks said about a mislabel flag's sample, as markdown lines."""
    lines = []
    price = evidence.get("price_check") or {}
    if price.get("supports_suggestion"):
        lines.append(f"Its price {float(price['price']):,.2f} is an outlier for its class and within the usual "
                     f"range of **{plain(suggested)}**.")
    group = evidence.get("duplicate_group") or {}
    if group.get("majority_label"):
        labels = group.get("labels")
        shown = ", ".join(map(str, labels)) if isinstance(labels, list) else str(labels or "")
        lines.append(f"It has duplicates labelled {plain(shown)}; the majority label is **{plain(group['majority_label'])}**.")
    return lines


def member_vote_text(vote: dict) -> str:
    """One member's vote as markdown, e.g. "title 'nordvik jacket' → **coat** 91% (words: jacket)"."""
    verdict = f"**{plain(vote['top'])}** {float(vote['probability']):.0%}"
    if vote.get("member") == "price" and "price" in vote:  # the likeliest class by price, as the other members say
        return f"price {float(vote['price']):,.2f} → {verdict}"
    if "title" in vote:
        words = f" (words: {plain(', '.join(vote['words']))})" if vote.get("words") else ""
        return f"title '{plain(vote['title'])}' → {verdict}{words}"
    return f"{plain(vote.get('label', vote.get('member', '')))}: {verdict}"


def member_lines(evidence: dict) -> list[str]:
    """Each evidence member's vote with its weight in the combination, strongest weight first."""
    votes = sorted(evidence.get("members") or [], key=lambda vote: -float(vote.get("weight", 0.0)))
    return [f"{member_vote_text(vote)} · weight {float(vote.get('weight', 0.0)):.2f}" for vote in votes]


def neighbour_labels_line(neighbours: pd.DataFrame) -> str:
    """How the most similar photos are labelled, e.g. "5 of 6 most similar photos are labelled **phone**, 1 bag"."""
    counts = neighbours["current_label"].value_counts()
    first, *rest = [(label, int(count)) for label, count in counts.items()]
    others = "".join(f", {count} {plain(label)}" for label, count in rest)
    return (f"{first[1]} of {len(neighbours)} most similar photos are labelled **{plain(first[0])}**{others}")


def render_neighbours(root: str, neighbours: pd.DataFrame, lookalike_ids: frozenset = frozenset()) -> None:
    """The most similar photos in the dataset (SAMPLE_VIEW_COLUMNS + similarity), most similar first; those in
    `lookalike_ids` marked as look-alikes."""
    st.markdown(neighbour_labels_line(neighbours),
                help="Nearest neighbours by cosine similarity of the audit's cached photo embeddings.")
    st.image([image_bytes(root, row, max_side=THUMBNAIL_SIDE) for _, row in neighbours.iterrows()],
             caption=[f"{plain(row['current_label'])} · {row['similarity']:.2f}"
                      + (" · look-alike" if int(row["sample_id"]) in lookalike_ids else "")
                      for _, row in neighbours.iterrows()],
             width=NEIGHBOUR_SIDE)
    if lookalike_ids:
        count = len(lookalike_ids)
        which, carry, moved = ((f"{count} look-alikes", "carry", "them") if count > 1
                               else ("1 look-alike", "carries", "it"))
        st.caption(f"{which} of this photo still {carry} its label: more alike than 95% of listings are to any "
                   f"photo of another class here. Sellers misfile a kind of item together; Relabel with "
                   f"look-alikes moves {moved} with this one.")


def render_mislabel(item, *, root: str, neighbours: pd.DataFrame, examples: Callable[[str], pd.DataFrame],
                    lookalikes: Optional[pd.DataFrame] = None) -> None:
    """A mislabel flag's evidence; its most similar photos when the dataset's embeddings are cached, else
    examples of the given and suggested classes.

    neighbours: SAMPLE_VIEW_COLUMNS + similarity, most similar first (empty when there are none).
    examples(label) -> examples of class `label` (SAMPLE_VIEW_COLUMNS); only called when there are no neighbours.
    lookalikes: the neighbours that look like the item under its label (marked on their captions).
    """
    probability = suggested_probability(item)
    shown = f" ({probability:.0%})" if probability is not None else ""
    st.markdown(f"Given label **{plain(item['given_label'])}** · suggested "
                f"**{plain(item['suggested_label'] or '—')}**{shown}")
    top = top_classes(item["evidence"])
    if top:
        st.markdown("Top classes: " + ", ".join(f"{plain(label)} {p:.0%}" for label, p in top))
    votes = member_lines(item["evidence"])
    if votes:
        st.markdown("Evidence: " + " · ".join(votes[:1]) + "".join(f"  \n{line}" for line in votes[1:]),
                    help="Each kind of evidence on its own, out of fold; the weight is how much it counts "
                         "on this dataset.")
    if item["reason"]:
        st.caption(plain(item["reason"]))
    for line in cross_evidence(item["evidence"], suggested=item["suggested_label"]):
        st.markdown(line)
    if not neighbours.empty:
        ids = frozenset() if lookalikes is None else frozenset(int(i) for i in lookalikes["sample_id"])
        render_neighbours(root, neighbours, ids)
        return
    given_column, suggested_column = st.columns(2)
    with given_column:
        render_examples(root, examples(item["given_label"]), title=f"Other images of {plain(item['given_label'])}")
    if item["suggested_label"]:
        with suggested_column:
            render_examples(root, examples(item["suggested_label"]),
                            title=f"Images of {plain(item['suggested_label'])}")


def _marker(x: float, *, text: str, color: str, dash: str) -> tuple[dict, dict]:
    """A vertical line across the plot at `x` and its label, as plotly layout shape and annotation dicts."""
    shape = {"type": "line", "x0": x, "x1": x, "y0": 0, "y1": 1, "yref": "paper",
             "line": {"color": color, "width": 2, "dash": dash}}
    note = {"x": math.log10(x), "y": 1, "yref": "paper", "text": text, "showarrow": False, "yanchor": "bottom",
            "font": {"color": color}}
    return shape, note


def price_figure(prices: np.ndarray, price: float, *, label: str, median: Optional[float] = None,
                 expected: Optional[tuple[float, float]] = None) -> dict:
    """Plotly figure spec: histogram of a class's prices on a log axis (30 bins), this listing's price marked,
    and its expected range (low, high) shaded when the expected-price model gave one.

    prices: shape (N,), the class's prices; non-positive ones cannot sit on a log axis and are left out.
    A plain dict rather than a graph object: building graph objects costs tens of ms per rerun.
    """
    positive = prices[prices > 0]
    data = []
    if positive.size:
        counts, edges = np.histogram(np.log10(positive), bins=30)
        data.append({
            "type": "bar", "x": (10 ** ((edges[:-1] + edges[1:]) / 2)).tolist(), "y": counts.tolist(),
            "width": (10 ** edges[1:] - 10 ** edges[:-1]).tolist(), "name": f"{html.escape(label)} prices",
            "marker": {"color": "#9db4d0"},
        })
    markers = []
    if price > 0:
        markers.append(_marker(price, text=f"this listing: {price:,.2f}", color="#d62728", dash="solid"))
    if median is not None and median > 0:
        markers.append(_marker(median, text="median", color="#444444", dash="dash"))
    shapes = [shape for shape, _ in markers]
    if expected is not None and expected[0] > 0 and expected[1] >= expected[0]:
        shapes.insert(0, {"type": "rect", "x0": expected[0], "x1": expected[1], "y0": 0, "y1": 1, "yref": "paper",
                          "fillcolor": "#2ca02c", "opacity": 0.15, "line": {"width": 0}})
    return {"data": data, "layout": {
        "height": 240, "margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "showlegend": False, "bargap": 0.02,
        "xaxis": {"type": "log", "title": {"text": "price"}}, "yaxis": {"title": {"text": "listings"}},
        "shapes": shapes, "annotations": [note for _, note in markers],
    }}


def expected_price_lines(evidence: dict) -> list[str]:
    """What the expected-price model said about a price flag, as markdown lines: the expected range and what
    it comes from, the similar listings' prices, and the price a decimal slip would give. Empty for flags made
    by class statistics alone."""
    if "expected_low" not in evidence:
        return []
    low, high = float(evidence["expected_low"]), float(evidence["expected_high"])
    lines = [f"Expected **{low:,.2f}-{high:,.2f}** (95% range, typical {float(evidence['expected_price']):,.2f})"]
    weights = evidence.get("weights") or {}
    shares = {"similar photos": float(weights.get("photo", 0.0)), "similar titles": float(weights.get("title", 0.0)),
              "the class's prices": float(weights.get("class sample", 0.0)) + float(weights.get("class", 0.0))}
    ranked = sorted(((share, name) for name, share in shares.items() if share >= 0.005), reverse=True)
    if ranked:
        lines[0] += " · from " + ", ".join(f"{name} {share:.0%}" for share, name in ranked)
    similar = evidence.get("similar") or []
    if similar:
        noun = "photos" if evidence.get("similar_source") == "photo" else "titles"
        prices = ", ".join(f"{float(entry['price']):,.2f}" for entry in similar)
        lines.append(f"The {len(similar)} most similar {noun} (of {int(evidence.get('similar_count', len(similar)))}) "
                     f"sell at {prices}")
    if evidence.get("suggested_price"):
        lines.append(f"Looks like a slipped decimal point or an extra zero: **{float(evidence['suggested_price']):,.2f}**")
    return lines


def ratio_text(ratio: float) -> str:
    """A price's ratio to a median as people read it: 3.2× above, 1/88× below (0.011 would read "0.0×")."""
    return f"{ratio:.1f}×" if ratio >= 1 or ratio <= 0 else f"1/{1 / ratio:,.0f}×" if ratio < 0.1 else f"{ratio:.2f}×"


def render_price(item, *, prices: np.ndarray) -> None:
    evidence = item["evidence"]
    price = evidence.get("price", item["price"])
    median = evidence.get("class_median")
    if median is None and prices.size:
        median = float(np.median(prices))
    if price is None or (isinstance(price, float) and math.isnan(price)):
        st.info("This listing has no price any more.")
        return
    text = f"Price **{float(price):,.2f}** in class **{plain(item['given_label'])}**"
    if median is not None:
        text += f" · class median {float(median):,.2f} ({ratio_text(float(price) / float(median))})" if median else ""
    st.markdown(text)
    expected_lines = expected_price_lines(evidence)
    for line in expected_lines:
        st.markdown(line)
    if evidence.get("best_class") and evidence["best_class"] != item["given_label"]:
        st.markdown(f"This price fits **{plain(evidence['best_class'])}** better.")
    if item["reason"] and not expected_lines:  # the lines above say what the reason would
        st.caption(plain(item["reason"]))
    expected = ((float(evidence["expected_low"]), float(evidence["expected_high"]))
                if "expected_low" in evidence else None)
    st.plotly_chart(price_figure(prices, float(price), label=item["given_label"], median=median, expected=expected),
                    key="price_chart", config={"displayModeBar": False})


def member_states(members: pd.DataFrame) -> list[tuple[int, int, bool, Optional[int]]]:
    """(sample id, last correction id shown, deleted, flag id) of each member of a duplicate group."""
    return [(int(r.sample_id), int(r.last_correction_id), bool(r.deleted),
             None if pd.isna(r.flag_id) else int(r.flag_id)) for r in members.itertuples()]


def render_duplicates(item, *, root: str, members: pd.DataFrame, context: ReviewContext, can_decide: bool) -> None:
    labels = sorted(set(members["current_label"]))
    conflict = " — **members carry different labels**" if len(labels) > 1 else ""
    st.markdown(f"{len(members)} images in this duplicate group{conflict}")
    if item["reason"]:
        st.caption(plain(item["reason"]))
    states = member_states(members)
    with st.container(horizontal=True):
        for _, row in members.iterrows():
            with st.container(width=THUMBNAIL_SIDE + 40):
                st.image(image_bytes(root, row, max_side=THUMBNAIL_SIDE), width=THUMBNAIL_SIDE)
                st.caption(sample_caption(row) + "  \n" + file_line(row))
                st.button(
                    "Keep this one, delete the rest", key=f"keep_only_{int(row['sample_id'])}",
                    on_click=keep_only, disabled=not can_decide,
                    kwargs=dict(context=context, keep_sample_id=int(row["sample_id"]), members=states),
                )


def render_broken(item) -> None:
    st.error(f"Broken file: {plain(item['reason'] or item['error'] or 'unreadable')}")
    if item["error"] and item["error"] != item["reason"]:
        st.caption(f"Scan said: {plain(item['error'])}")


def render_other(item) -> None:
    st.markdown(f"**{plain(item['kind'])}**: {plain(item['reason'] or 'no reason given')}")
    if item["evidence"]:
        st.json(item["evidence"], expanded=False)
