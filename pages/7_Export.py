"""Export: preview what the cleaned dataset will contain, download its manifest, and write it.

The preview is the export plan of the current decisions (nothing is written);
writing runs as a background job (it may copy many files), whose progress
survives a reload. The source folder is never modified.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import streamlit as st

from core.export.plan import EXPORT_MODES, ExportError, ExportPlan, manifest_csv
from core.export.write import check_export_target
from db.review import data_version
from jobs.export import plan_dataset_export
from jobs.runner import ACTIVE, create_job, job_result, latest_job, spawn_job
from db.models import Job
from ui.common import DatasetRef, db_path, factory_for, job_status_panel, open_page, session_factory
from ui.review_widgets import notify, render_notice
from ui.text import plain

CACHE_TTL_S = 600
OUT_KEY, MODE_KEY, OVERWRITE_KEY = "export_out", "export_mode", "export_overwrite"
DATASET_SEEN_KEY = "export_dataset_seen"
MODE_HELP = {
    "copy": "copy the images (independent of the source folder)",
    "symlink": "link to the source images (fast, no extra space; the source must stay)",
    "manifest": "write only manifest.csv and summary.json",
}


@st.cache_data(ttl=CACHE_TTL_S, max_entries=8, show_spinner=False)
def load_plan(database: str, dataset_id: int, version: tuple) -> tuple[Optional[ExportPlan], Optional[str]]:
    """(the export plan of the current state, None) or (None, why it cannot be exported)."""
    with factory_for(database)() as session:
        try:
            return plan_dataset_export(session, dataset_id), None
        except ExportError as error:
            return None, str(error)


def default_out(dataset: DatasetRef) -> str:
    root = Path(dataset.root)
    return str(root.parent / f"{root.name}-clean")


def start_export(dataset: DatasetRef) -> None:
    """Callback: check the target folder, then queue the export job and start its worker."""
    out = str(Path(st.session_state.get(OUT_KEY) or default_out(dataset)).expanduser())
    mode, overwrite = st.session_state.get(MODE_KEY, "copy"), bool(st.session_state.get(OVERWRITE_KEY))
    try:
        check_export_target(dataset.root, out, overwrite=overwrite)
    except ExportError as error:
        notify("error", str(error))
        return
    with session_factory().begin() as session:
        running = latest_job(session, dataset.id, "export")
        if running is not None and running.status in ACTIVE:
            notify("info", f"An export of this dataset is already running (export {running.number}).")
            return
        job_id = create_job(session, dataset.id, "export", {"out": out, "mode": mode, "overwrite": overwrite}).id
    spawn_job(db_path(), job_id)


def render_plan(plan: ExportPlan, dataset: DatasetRef) -> None:
    summary = plan.summary
    decisions = summary["decisions"]
    columns = st.columns(5)
    columns[0].metric("Images exported", f"{summary['exported']:,}", help=f"of {summary['samples']:,} in the dataset")
    columns[1].metric("Relabelled", f"{decisions['relabelled']:,}")
    columns[2].metric("Deleted", f"{decisions['deleted']:,}")
    columns[3].metric("Broken", f"{decisions['broken']:,}")
    columns[4].metric("Missing", f"{decisions['missing']:,}")
    if summary["relabelled"]:
        st.caption("Relabelled images move to their new class folder")
        st.dataframe(pd.DataFrame(summary["relabelled"]), hide_index=True, key="export_moves")
    if summary["renamed_to_avoid_clash"]:
        st.caption(f"{summary['renamed_to_avoid_clash']} moved images are renamed (`__from_<class>`) "
                   "because their name is taken in the new class.")
    classes = pd.DataFrame({"before": pd.Series(summary["classes_before"]),
                            "after": pd.Series(summary["classes_after"])}).fillna(0).astype(int)
    st.caption("Images per class")
    st.dataframe(classes, key="export_classes")
    st.download_button("Download manifest.csv", manifest_csv(plan), file_name=f"{dataset.name}-manifest.csv",
                       mime="text/csv", key="download_manifest", on_click="ignore")


def render_last_export(dataset: DatasetRef) -> None:
    with session_factory()() as session:
        job = latest_job(session, dataset.id, "export")
        job_id = None if job is None else job.id
    if job_id is None:
        return
    status = job_status_panel(job_id, title="Export")
    if status == "succeeded":
        with session_factory()() as session:
            result = job_result(session.get(Job, job_id)) or {}
        st.success(f"Wrote {result.get('files_written', 0):,} images ({result.get('mode')}) and manifest.csv "
                   f"to {plain(result.get('out'))}.")
        for path in result.get("failed", []):
            st.warning(f"{plain(path)} vanished since the scan and was not exported.")
        for path in result.get("refused_outside", []):
            st.warning(f"{plain(path)} now leads outside the dataset folder and was not exported.")


def main() -> None:
    dataset = open_page("Export")
    if dataset is None:
        return
    if st.session_state.get(DATASET_SEEN_KEY) != dataset.id:  # the output folder belongs to one dataset
        st.session_state.pop(OUT_KEY, None)
        st.session_state[DATASET_SEEN_KEY] = dataset.id
    render_notice()
    with session_factory()() as session:
        version = data_version(session, dataset.id)
    plan, problem = load_plan(str(db_path()), dataset.id, version)
    st.caption("The cleaned dataset in the same layout (one folder per class): relabelled images under their new "
               "class; deleted, unreadable and missing images left out; manifest.csv lists every image and its fate.")
    if problem:
        st.error(f"Cannot export: {plain(problem)}")
        return
    render_plan(plan, dataset)
    st.subheader("Write the export")
    st.text_input("Output folder", value=default_out(dataset), key=OUT_KEY,
                  help="Absent or empty; never inside the dataset folder.")
    st.radio("Mode", EXPORT_MODES, key=MODE_KEY, horizontal=True, format_func=lambda m: f"{m}: {MODE_HELP[m]}")
    st.checkbox("Replace a previous export in this folder", key=OVERWRITE_KEY,
                help="Removes the files its manifest lists; other files in the folder are left alone.")
    st.button("Export", key="export_run", type="primary", on_click=start_export, args=(dataset,))
    render_last_export(dataset)


main()
