"""Metrics: how good a training run's model is per class, which validation images it gets wrong, and what changed
between two runs (for example before and after a cleaning round).

Everything shown is read from the run's stored result (evaluated once, when the run
ended) and its epoch log; a finished run never changes, so its data is cached.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import streamlit as st

from core.metrics import cell_members, compare_reports, report_table
from db.runs import get_run, run_config, run_epochs, run_result, runs_frame, sample_files
from jobs.runner import reap_dead_jobs
from ui.common import DatasetRef, db_path, factory_for, open_page, session_factory
from ui.thumbnails import thumbnail
from ui.train_charts import confusion_figure, curves_figure
from ui.text import plain

RUN_KEY, COMPARE_KEY = "metrics_run", "metrics_compare"
TRUE_KEY, PRED_KEY, CHART_KEY, APPLIED_CELL_KEY = "cell_true", "cell_pred", "confusion_chart", "cell_applied"
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

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result["metrics"]


@st.cache_data(max_entries=8, show_spinner=False)
def _run_parts(database: str, run_id: int) -> Optional[tuple[dict, dict, pd.DataFrame]]:
    """(config, result, epochs) of a succeeded run: it never changes, so it is cached (as plain, picklable values)."""
    with factory_for(database)() as session:
        job = get_run(session, run_id)
        if job is None or job.status != "succeeded":
            return None
        return run_config(job), run_result(job), run_epochs(session, run_id)


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
    return (f"Run {run_id} · {row.backbone} · accuracy {row.accuracy:.3f} · macro F1 {row.macro_f1:.3f} · "
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


def render_confusion(dataset: DatasetRef, run: RunView) -> None:
    st.subheader("Confusion matrix")
    st.caption("Rows are true classes, columns predictions; colour is the share of the true class. "
               "Click a cell, or pick the classes below, to see its validation images.")
    metrics = run.metrics
    event = st.plotly_chart(confusion_figure(metrics), key=CHART_KEY, on_select="rerun", selection_mode="points")
    _apply_clicked_cell(event, run)
    classes = metrics["classes"]
    if st.session_state.get(TRUE_KEY) not in classes or st.session_state.get(PRED_KEY) not in classes:
        st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = _most_confused_cell(metrics)
    left, right = st.columns(2)
    true_class = left.selectbox("True class", classes, key=TRUE_KEY)
    pred_class = right.selectbox("Predicted as", classes, key=PRED_KEY)
    render_cell_images(dataset, run, classes.index(true_class), classes.index(pred_class))


def render_cell_images(dataset: DatasetRef, run: RunView, true_index: int, pred_index: int) -> None:
    validation = run.result["validation"]
    positions = cell_members(validation["true"], validation["pred"], true_class=true_index, pred_class=pred_index)
    classes = run.metrics["classes"]
    st.markdown(f"**{len(positions)}** validation images of class **{plain(classes[true_index])}** "
                f"predicted as **{plain(classes[pred_index])}**" + (f" (first {CELL_IMAGES} shown)"
                                                               if len(positions) > CELL_IMAGES else ""))
    if not len(positions):
        return
    shown = positions[:CELL_IMAGES]
    confidence = {validation["sample_ids"][p]: validation["confidence"][p] for p in shown}
    with session_factory()() as session:
        files = sample_files(session, [validation["sample_ids"][p] for p in shown])
    columns = st.columns(GRID_COLUMNS)
    for index, row in enumerate(files.itertuples()):
        with columns[index % GRID_COLUMNS]:
            st.image(thumbnail(str(Path(dataset.root) / row.path), int(row.mtime_ns), int(row.file_size)),
                     caption=f"{plain(row.path)} · p={confidence[row.id]:.2f}", width="stretch")


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
            f"{len(samples['skipped'])} left out because they could not be decoded\n"
            f"- best epoch {result['best_epoch'] + 1} of {len(result['history'])}"
            + (" (stopped early)" if result["stopped_early"] else "")
            + (f"\n- resumed after epoch {result['resumed_from_epoch']}" if result.get("resumed_from_epoch") else "")
            + (f"\n- out-of-fold probabilities: `{result['out_of_fold']['pred_probs']}`"
               if result.get("out_of_fold") else "")
        )
        st.json(run.config, expanded=False)


# --- comparison ---------------------------------------------------------------------------------------


def _delta_colour(value: float) -> str:
    if pd.isna(value) or abs(value) < 1e-9:
        return ""
    return "background-color: rgba(46, 160, 67, 0.25)" if value > 0 else "background-color: rgba(218, 54, 51, 0.25)"


def comparison_table(before: RunView, after: RunView):
    """compare_reports as a styled table: deltas green where they improved, red where they got worse."""
    table = compare_reports(before.metrics, after.metrics).reset_index()
    deltas = [c for c in table.columns if c.endswith("_delta")]
    numbers = [c for c in table.columns if c.split("_")[0] in ("precision", "recall", "f1")]
    return (table.style.map(_delta_colour, subset=deltas)
            .format("{:.3f}", subset=[c for c in numbers if c not in deltas], na_rep="")
            .format("{:+.3f}", subset=deltas, na_rep=""))


def render_comparison(runs: pd.DataFrame, run: RunView) -> None:
    st.subheader("Compare with another run")
    others = [run_id for run_id in runs["id"].tolist() if run_id != run.id]
    if not others:
        st.caption("Train another run (for example after a cleaning round) to compare.")
        return
    options = [NO_COMPARISON] + others
    older = [run_id for run_id in others if run_id < run.id]
    if st.session_state.get(COMPARE_KEY) not in options:
        st.session_state[COMPARE_KEY] = older[0] if older else NO_COMPARISON
    other_id = st.selectbox("Baseline run", options, key=COMPARE_KEY, format_func=lambda i: run_label(runs, i))
    if other_id == NO_COMPARISON:
        return
    before = load_run(str(db_path()), other_id)
    columns = st.columns(3)
    for column, (label, key) in zip(columns, (("Accuracy", None), ("Macro F1", "macro_avg"), ("Weighted F1", "weighted_avg"))):
        value = lambda metrics: metrics["accuracy"] if key is None else metrics[key]["f1"]
        column.metric(f"{label} (run {run.id} vs {other_id})", f"{value(run.metrics):.3f}",
                      delta=f"{value(run.metrics) - value(before.metrics):+.3f}")
    st.dataframe(comparison_table(before, run), hide_index=True, width="stretch", height="content",
                 key="comparison_table")
    shared = len(set(before.result["split"]["val"]) & set(run.result["split"]["val"]))
    st.caption(f"Validation images in both runs: {shared}. The split is drawn by folder class with the run's seed, "
               "so runs with the same seed share it; each run scores against the labels current when it trained, so "
               "corrections made in between change what counts as right.")


def main() -> None:
    dataset = open_page("Metrics")
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
    render_confusion(dataset, run)
    render_comparison(runs, run)
    render_curves(run)
    render_details(run)


main()
