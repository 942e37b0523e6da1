"""Two runs compared on common ground (db.evaluation.compare_runs), as the Metrics and Train pages show it: one line
saying which images and labels, the overall changes with their intervals, and a per-class table."""
from __future__ import annotations

from typing import Optional

import pandas as pd
import streamlit as st

from core.train.compare import CLASS_METRICS, OVERALL, RunComparison
from db.evaluation import LABEL_SOURCE_TEXT, LABEL_SOURCES, compare_runs
from db.queries import correction_counts
from ui.common import factory_for, job_number_of

LABEL_CHOICES = {"current": "Today's labels", "verified": "Verified only"}
HEADLINE_METRICS = {"accuracy": "Accuracy", "macro_f1": "Macro F1"}
METRIC_LABELS = {"precision": "precision", "recall": "recall", "f1": "F1"}
#: Table column widths in pixels, so the whole table fits a laptop screen beside the sidebar.
CLASS_COLUMN_PX, SIDES_COLUMN_PX, CHANGE_COLUMN_PX, IMAGES_COLUMN_PX = 130, 110, 170, 70


@st.cache_data(max_entries=16, show_spinner="Comparing the runs…")
def load_comparison(database: str, before_id: int, after_id: int, labels: str,
                    decisions: int) -> Optional[RunComparison]:
    """The comparison, or None when it cannot be made; `decisions` (the dataset's log length) is part of the key
    so that a new decision, which may change the reference labels, recomputes it."""
    with factory_for(database)() as session:
        try:
            return compare_runs(session, before_id, after_id, labels=labels)
        except ValueError:
            return None


def comparison_for(database: str, dataset_id: int, before_id: int, after_id: int,
                   labels: str) -> Optional[RunComparison]:
    with factory_for(database)() as session:
        decisions = correction_counts(session, dataset_id)
    return load_comparison(database, before_id, after_id, labels, decisions)


def change_text(row) -> str:
    """"+0.021 (-0.010 to +0.052)": the change and its interval."""
    return f"{row.change:+.3f} ({row.low:+.3f} to {row.high:+.3f})"


def is_real(row) -> bool:
    """Whether the interval of the change excludes zero."""
    return row.low > 0 or row.high < 0


def render_comparison_headline(comparison: RunComparison, before_id: int, after_id: int, labels: str) -> None:
    """The one line of ground, then accuracy and macro F1 after, with their change and its interval."""
    before, after = job_number_of(before_id), job_number_of(after_id)
    st.caption(comparison.ground(before, after, LABEL_SOURCE_TEXT[labels]))
    if not comparison.images:
        return
    columns = st.columns(len(HEADLINE_METRICS) + 1)
    for column, (metric, label) in zip(columns, HEADLINE_METRICS.items()):
        row = comparison.overall(metric)
        column.metric(f"{label}, run {after} (vs {before}, same images)", f"{row.after:.3f}",
                      delta=change_text(row), delta_color="normal" if is_real(row) else "off",
                      help=f"Run {before}: {row.before:.3f}. In brackets: the 95% interval of the change, "
                           "grey when it includes no change.")
    columns[-1].metric("Images compared", f"{comparison.images:,}")


def _colour(real: bool, change: float) -> str:
    if not real:
        return ""
    return "background-color: rgba(46, 160, 67, 0.25)" if change > 0 else "background-color: rgba(218, 54, 51, 0.25)"


def comparison_frame(comparison: RunComparison) -> pd.DataFrame:
    """One row per class and one overall: per metric "before → after" and "change (interval)"; images."""
    table = comparison.changes
    rows = []
    for name, group in table.groupby("row", sort=False):
        group = group.set_index("metric")
        row = {"class": name, "images": int(group["support"].iloc[0])}
        for metric in (CLASS_METRICS if name != OVERALL else ("macro_precision", "macro_recall", "macro_f1")):
            key = metric.removeprefix("macro_")
            values = group.loc[metric]
            row[key] = f"{values.before:.3f} → {values.after:.3f}"
            row[f"{key}_change"] = change_text(values)
        if name == OVERALL:
            row["class"] = "macro avg"
        rows.append(row)
    return pd.DataFrame(rows)


def styled_comparison(comparison: RunComparison):
    """comparison_frame with each change green or red only where its interval excludes zero."""
    frame = comparison_frame(comparison)
    table = comparison.changes.set_index(["row", "metric"])

    def colours(row: pd.Series) -> list[str]:
        name = OVERALL if row["class"] == "macro avg" else row["class"]
        styles = []
        for column in row.index:
            key = column.removesuffix("_change")
            if column.endswith("_change"):
                values = table.loc[(name, key if name != OVERALL else f"macro_{key}")]
                styles.append(_colour(is_real(values), values.change))
            else:
                styles.append("")
        return styles

    return frame.style.apply(colours, axis=1)


def comparison_column_config() -> dict:
    config = {"class": st.column_config.TextColumn("class", width=CLASS_COLUMN_PX),
              "images": st.column_config.NumberColumn("images", width=IMAGES_COLUMN_PX,
                                                      help="Images of the class (by the reference labels)")}
    for metric, label in METRIC_LABELS.items():
        config[metric] = st.column_config.TextColumn(label, width=SIDES_COLUMN_PX, help=f"{label}: baseline → run")
        config[f"{metric}_change"] = st.column_config.TextColumn(
            f"Δ {label} (95%)", width=CHANGE_COLUMN_PX,
            help=f"Change of {label} and its 95% interval; coloured where the interval excludes no change")
    return config


def label_choice(key: str) -> str:
    """The reference labels radio: today's labels (default) or verified only."""
    return st.radio("Score both runs against", LABEL_SOURCES, key=key, horizontal=True,
                    format_func=LABEL_CHOICES.get,
                    help="Today's labels: every listing's label after all review decisions. Verified only: the "
                         "listings a reviewer relabelled or kept, the most trusted labels there are.")
