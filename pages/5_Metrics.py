"""Metrics: how good a training run's model is per class, which validation images it gets wrong, and what changed
between two runs (for example before and after a cleaning round), compared on common ground: the images both
scored, against one set of labels, each change with its interval (ui.run_comparison).

Everything shown is read from the run's stored result (evaluated once, when the run
ended) and its epoch log; a finished run never changes, so its data is cached. The images
of a confusion-matrix cell can be relabelled to the predicted class or deleted, as one
action that Undo reverts as a whole (the Review page's decisions, ui.review_widgets).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import streamlit as st

from core.models.metrics import PER_CLASS_METRICS, cell_members, compare_reports, report_table
from core.models.samples import skipped_text
from db.corrections import Decision
from db.queries import dataset_classes
from db.review import sample_view
from db.runs import get_run, replaced_run, run_config, run_epochs, run_name, run_result, runs_frame
from jobs.runner import reap_dead_jobs
from ui.common import DatasetRef, db_path, factory_for, open_page, reviewer_name, run_title, session_factory
from ui.review_widgets import ReviewContext, apply_many, notify, render_notice, undo_last
from ui.run_comparison import (
    comparison_column_config, comparison_for, label_choice, render_comparison_headline, styled_comparison,
)
from ui.thumbnails import scanned_hash, thumbnail
from ui.train_charts import confusion_figure, curves_figure
from ui.text import plain

RUN_KEY, COMPARE_KEY, LABELS_KEY = "metrics_run", "metrics_compare", "metrics_labels"
TRUE_KEY, PRED_KEY, CHART_KEY, APPLIED_CELL_KEY = "cell_true", "cell_pred", "confusion_chart", "cell_applied"
TICK_KEY_PREFIX = "cell_tick_"
CELL_IMAGES = 36
GRID_COLUMNS = 6
NO_COMPARISON = 0


@dataclass(frozen=True)
class RunView:
    """What the page shows of one finished run (plain values; cached, never mutated)."""

    id: int
    config: dict[str, Any]
    result: dict[str, Any]
    epochs: pd.DataFrame
    replaces: Optional[int]  # the run it retrained with the same settings (Train's "retrain"), if any

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result["metrics"]


@st.cache_data(max_entries=8, show_spinner=False)
def _run_parts(database: str, run_id: int) -> Optional[tuple[dict, dict, pd.DataFrame, Optional[int]]]:
    """(config, result, epochs, replaced run) of a succeeded run: it never changes, so it is cached (as plain, picklable values)."""
    with factory_for(database)() as session:
        job = get_run(session, run_id)
        if job is None or job.status != "succeeded":
            return None
        return run_config(job), run_result(job), run_epochs(session, run_id), replaced_run(job)


def load_run(database: str, run_id: int) -> Optional[RunView]:
    parts = _run_parts(database, run_id)
    return None if parts is None else RunView(run_id, *parts)


def finished_runs(dataset_id: int) -> pd.DataFrame:
    with session_factory().begin() as session:
        reap_dead_jobs(session)
        runs = runs_frame(session, dataset_id)
    return runs[runs["status"] == "succeeded"].reset_index(drop=True)


def run_label(runs: pd.DataFrame, run_id: int) -> str:
    if run_id == NO_COMPARISON:
        return "(no comparison)"
    row = runs.set_index("id").loc[run_id]
    finished = pd.Timestamp(row.finished_at).strftime("%Y-%m-%d %H:%M") if pd.notna(row.finished_at) else ""
    return (f"{run_name(row.number)} · {row.backbone} · accuracy {row.accuracy:.3f} · macro F1 {row.macro_f1:.3f} · "
            f"{int(row.corrections or 0)} corrections · {finished}")


# --- one run ------------------------------------------------------------------------------------------


def render_headline(run: RunView) -> None:
    metrics = run.metrics
    columns = st.columns(5)
    columns[0].metric("Accuracy", f"{metrics['accuracy']:.3f}")
    columns[1].metric("Macro F1", f"{metrics['macro_avg']['f1']:.3f}")
    columns[2].metric("Weighted F1", f"{metrics['weighted_avg']['f1']:.3f}")
    columns[3].metric("Validation images", metrics["n"])
    columns[4].metric("Corrections applied", run.result.get("snapshot", {}).get("corrections", 0))
    split = run.result.get("split_source", "run")
    st.caption(f"This run as it scored itself: its {metrics['n']:,} validation images "
               + ("(the dataset's evaluation split, shared by every run)" if split == "dataset" else
                  "(a split of its own, drawn before runs shared one)" if split == "run" else f"(a split of its own, {split})")
               + ", against the labels current when it trained. To compare runs, see below.")


def render_report(run: RunView) -> None:
    st.subheader("Per class")
    table = report_table(run.metrics).reset_index()
    st.dataframe(table, hide_index=True, width="stretch", height="content", key="report_table", column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in ("precision", "recall", "f1")
    })


def _most_confused_cell(metrics: dict[str, Any]) -> tuple[str, str]:
    """(true, predicted) class names of the largest off-diagonal count; the first diagonal cell when there is none."""
    counts = np.asarray(metrics["confusion_matrix"])
    off_diagonal = counts - np.diag(np.diag(counts))
    true, pred = np.unravel_index(int(off_diagonal.argmax()), counts.shape)
    classes = metrics["classes"]
    return (classes[true], classes[pred]) if off_diagonal.max() > 0 else (classes[0], classes[0])


def _apply_clicked_cell(event, run: RunView) -> None:
    """Copy a newly clicked heatmap cell into the class pickers (they are drawn after the chart)."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if not points:
        return
    cell = (run.id, points[0]["y"], points[0]["x"])
    if cell != st.session_state.get(APPLIED_CELL_KEY):
        st.session_state[APPLIED_CELL_KEY] = cell
        st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = cell[1], cell[2]


def render_confusion(dataset: DatasetRef, run: RunView, *, reviewer: str) -> None:
    st.subheader("Confusion matrix")
    st.caption("Rows are true classes, columns predictions; colour is the share of the true class. "
               "Click a cell, or pick the classes below, to see its validation images: tick some to relabel "
               "them to the predicted class or delete them.")
    metrics = run.metrics
    event = st.plotly_chart(confusion_figure(metrics), key=CHART_KEY, on_select="rerun", selection_mode="points")
    _apply_clicked_cell(event, run)
    classes = metrics["classes"]
    if st.session_state.get(TRUE_KEY) not in classes or st.session_state.get(PRED_KEY) not in classes:
        st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = _most_confused_cell(metrics)
    left, right = st.columns(2)
    true_class = left.selectbox("True class", classes, key=TRUE_KEY)
    pred_class = right.selectbox("Predicted as", classes, key=PRED_KEY)
    render_cell_images(dataset, run, classes.index(true_class), classes.index(pred_class), reviewer=reviewer)


def render_cell_images(dataset: DatasetRef, run: RunView, true_index: int, pred_index: int, *, reviewer: str) -> None:
    """The cell's validation images (with what decisions changed since the run), each with a tick box, and
    the actions on the ticked ones."""
    validation = run.result["validation"]
    positions = cell_members(validation["true"], validation["pred"], true_class=true_index, pred_class=pred_index)
    classes = run.metrics["classes"]
    st.markdown(f"**{len(positions)}** validation images of class **{plain(classes[true_index])}** "
                f"predicted as **{plain(classes[pred_index])}**" + (f" (first {CELL_IMAGES} shown)"
                                                               if len(positions) > CELL_IMAGES else ""))
    render_notice()
    if not len(positions):
        return
    shown = positions[:CELL_IMAGES]
    confidence = {validation["sample_ids"][p]: validation["confidence"][p] for p in shown}
    with session_factory()() as session:
        view = sample_view(session, [validation["sample_ids"][p] for p in shown])
        context = ReviewContext(dataset.id, dataset.root, reviewer, tuple(dataset_classes(session, dataset.id)),
                                state_filter="all")
    samples = view.reindex([i for i in confidence if i in view.index])
    render_cell_actions(context, samples, predicted=classes[pred_index], diagonal=true_index == pred_index,
                        note=f"Metrics, {run_title(run.id, capital=False)}: {classes[true_index]} predicted as "
                             f"{classes[pred_index]}")
    for start in range(0, len(samples), GRID_COLUMNS):  # one row of columns per row of tiles, so rows line up
        for column, row in zip(st.columns(GRID_COLUMNS), samples.iloc[start:start + GRID_COLUMNS].itertuples()):
            with column:
                render_cell_tile(dataset.root, row, caption=cell_image_caption(row, classes[true_index],
                                                                               confidence[row.sample_id]))


def render_cell_tile(root: str, row, *, caption: str) -> None:
    """One validation image (a square thumbnail) with its caption and tick box."""
    st.image(thumbnail(str(Path(root) / row.path), int(row.mtime_ns), int(row.file_size), root=root,
                       content_hash=scanned_hash(row)), caption=plain(caption), width="stretch")
    st.checkbox(f"Tick {plain(row.path)}", key=tick_key(row.sample_id), label_visibility="collapsed",
                disabled=bool(row.deleted), help="Deleted: restore it on Browse first" if row.deleted else None)


def cell_image_caption(row, true_class: str, confidence: float) -> str:
    """Path and the model's confidence, with the image's state now when a decision changed it since the
    run (which knew it as `true_class`)."""
    now = " · deleted" if row.deleted else (f" · now {row.current_label}" if row.current_label != true_class else "")
    return f"{row.path} · p={confidence:.2f}{now}"


def tick_key(sample_id: int) -> str:
    return f"{TICK_KEY_PREFIX}{sample_id}"


def _set_ticks(sample_ids: list[int], ticked: bool) -> None:
    for sample_id in sample_ids:
        st.session_state[tick_key(sample_id)] = ticked


def _act_on_ticked(context: ReviewContext, cell: list[tuple[int, int, str]], *, action: str, note: str,
                   new_label: Optional[str] = None) -> None:
    """Callback: relabel the ticked images to `new_label` or delete them, as one action noted with `note`.

    cell: (sample id, last correction id shown, current label) of the cell's images not deleted.
    Ticked images that already carry `new_label` are left as they are.
    """
    ticked = [(sample_id, last_id, label) for sample_id, last_id, label in cell
              if st.session_state.get(tick_key(sample_id))]
    decisions = [Decision(sample_id, action, new_label=new_label, expected_last_id=last_id)
                 for sample_id, last_id, label in ticked if action == "delete" or label != new_label]
    if not apply_many(context, decisions, note=note):
        return
    done = f"Relabelled {len(decisions)} images to {new_label}" if action == "relabel" else \
        f"Deleted {len(decisions)} images"
    skipped = len(ticked) - len(decisions)
    notify("success", done + (f"; {skipped} already had that label." if skipped else ".") + " Undo reverts them all.")
    _set_ticks([sample_id for sample_id, _, _ in cell], False)


def render_cell_actions(context: ReviewContext, samples: pd.DataFrame, *, predicted: str, diagonal: bool,
                        note: str) -> None:
    """Tick all / none, "Relabel ticked to <predicted>", "Delete ticked" and Undo; decisions need a reviewer
    and carry `note`."""
    live = samples[~samples["deleted"]]
    cell = [(int(row.sample_id), int(row.last_correction_id), row.current_label) for row in live.itertuples()]
    ids = [sample_id for sample_id, _, _ in cell]
    ticked = sum(bool(st.session_state.get(tick_key(sample_id))) for sample_id in ids)
    cannot = not context.reviewer
    tick_all, untick_all, relabel, delete, undo = st.columns([1, 1, 2, 1, 1], vertical_alignment="bottom")
    tick_all.button("Tick all", key="cell_tick_all", on_click=_set_ticks, args=(ids, True), width="stretch")
    untick_all.button("Untick all", key="cell_untick_all", on_click=_set_ticks, args=(ids, False), width="stretch")
    relabel.button(
        f"Relabel {ticked} ticked to {plain(predicted)}", key="cell_relabel", type="primary", width="stretch",
        on_click=_act_on_ticked, args=(context, cell),
        kwargs=dict(action="relabel", new_label=predicted, note=note),
        disabled=cannot or diagonal or not ticked,
        help="The model and the images agree here: pick a cell off the diagonal." if diagonal else
        "One action: Undo reverts it as a whole.",
    )
    delete.button(f"Delete {ticked} ticked", key="cell_delete", width="stretch", on_click=_act_on_ticked,
                  args=(context, cell), kwargs=dict(action="delete", note=note), disabled=cannot or not ticked,
                  help="Leave them out of training and export. One action: Undo reverts it as a whole.")
    undo.button("Undo", key="cell_undo", width="stretch", on_click=undo_last,
                kwargs=dict(context=context, locate=lambda flag_id: None), disabled=cannot,
                help="Undo your last decision (an action on several images as a whole)")
    if cannot:
        st.caption("Enter your name under Reviewer in the sidebar to relabel or delete: it is stored with "
                   "every decision.")


def render_curves(run: RunView) -> None:
    st.subheader("Training curves")
    if run.epochs.empty:
        st.caption("No epochs recorded.")
        return
    st.plotly_chart(curves_figure(run.epochs), key="metrics_curves")


def render_details(run: RunView) -> None:
    result = run.result
    snapshot = result.get("snapshot", {})
    samples = result["samples"]
    with st.expander("Run details: config, dataset snapshot, device"):
        st.markdown(
            f"- device: **{result['device']}**, {result['seconds']:.0f} s\n"
            f"- dataset snapshot: {snapshot.get('corrections', 0)} corrections in the log "
            f"({snapshot.get('relabelled', 0)} images relabelled, {snapshot.get('deleted', 0)} deleted)\n"
            f"- images: {samples['train']} training, {samples['val']} validation, "
            f"{skipped_text(samples['skipped'])}\n"
            f"- best epoch {result['best_epoch'] + 1} of {len(result['history'])}"
            + (" (stopped early)" if result["stopped_early"] else "")
            + (f"\n- resumed after epoch {result['resumed_from_epoch']}" if result.get("resumed_from_epoch") else "")
            + (f"\n- out-of-fold probabilities: `{result['out_of_fold']['pred_probs']}`"
               if result.get("out_of_fold") else "")
        )
        st.json(run.config, expanded=False)


# --- comparison ---------------------------------------------------------------------------------------


def _sides(before: float, after: float, pattern: str) -> str:
    """Both runs' values as "0.812 → 0.853"; a side a run lacks (a class it did not have) shows as "-"."""
    def text(value) -> str:
        return "-" if pd.isna(value) else pattern.format(value)

    return "" if pd.isna(before) and pd.isna(after) else f"{text(before)} → {text(after)}"


def own_split_table(before: RunView, after: RunView) -> pd.DataFrame:
    """compare_reports of the runs' own reports (each on its own validation images and the labels it trained
    with): per metric "before → after" and the change, then the images before → after."""
    report = compare_reports(before.metrics, after.metrics)
    table = pd.DataFrame(index=report.index)
    for metric in PER_CLASS_METRICS:
        table[metric] = [_sides(b, a, "{:.3f}") for b, a in zip(report[f"{metric}_before"], report[f"{metric}_after"])]
        table[f"{metric}_delta"] = report[f"{metric}_delta"].round(3)
    table["support"] = [_sides(b, a, "{:.0f}") for b, a in zip(report["support_before"], report["support_after"])]
    return table.reset_index()


def render_own_splits(before: RunView, after: RunView) -> None:
    with st.expander("Each run as it scored itself (its own validation images, the labels it trained with)"):
        st.caption("Not a like-for-like comparison: decisions made between the runs change what each counts as "
                   "right, and runs with different splits score different images. Use the table above.")
        st.dataframe(own_split_table(before, after), hide_index=True, height="content", key="own_split_table")


def render_comparison(dataset: DatasetRef, runs: pd.DataFrame, run: RunView) -> None:
    st.subheader("Compare with another run")
    others = [run_id for run_id in runs["id"].tolist() if run_id != run.id]
    if not others:
        st.caption("Train another run (for example after a cleaning round) to compare.")
        return
    options = [NO_COMPARISON] + others
    older = [run_id for run_id in others if run_id < run.id]
    if st.session_state.get(COMPARE_KEY) not in options:  # the run it replaces, else the one before it
        st.session_state[COMPARE_KEY] = run.replaces if run.replaces in others else \
            older[0] if older else NO_COMPARISON
    other_id = st.selectbox("Baseline run", options, key=COMPARE_KEY, format_func=lambda i: run_label(runs, i))
    if other_id == NO_COMPARISON:
        return
    labels = label_choice(LABELS_KEY)
    comparison = comparison_for(str(db_path()), dataset.id, other_id, run.id, labels)
    if comparison is None:
        st.warning(f"{run_title(other_id)} can no longer be compared: it is not a finished run of this dataset.")
        return
    render_comparison_headline(comparison, other_id, run.id, labels)
    if comparison.images:
        st.dataframe(styled_comparison(comparison), hide_index=True, height="content", key="comparison_table",
                     column_config=comparison_column_config())
    elif labels == "verified":
        st.info("No listing that both runs scored has been relabelled or kept yet: review some flags, or "
                "compare against today's labels.")
    render_own_splits(load_run(str(db_path()), other_id), run)


def main() -> None:
    dataset = open_page("Metrics")
    reviewer = reviewer_name()
    if dataset is None:
        return
    runs = finished_runs(dataset.id)
    if runs.empty:
        st.info("No finished training run yet: start one on the Train page.")
        return
    ids = runs["id"].tolist()
    if st.session_state.get(RUN_KEY) not in ids:
        st.session_state[RUN_KEY] = ids[0]
    run_id = st.selectbox("Run", ids, key=RUN_KEY, format_func=lambda i: run_label(runs, i))
    run = load_run(str(db_path()), run_id)
    render_headline(run)
    render_report(run)
    render_confusion(dataset, run, reviewer=reviewer)
    render_comparison(dataset, runs, run)
    render_curves(run)
    render_details(run)


main()
