"""Shared Streamlit plumbing: the cached engine, the selected dataset, a live job-progress panel.

Pages call `session_factory()` and `selected_dataset()`; nothing here computes:
it only reads the database and renders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from db.engine import default_db_path, make_engine, make_session_factory
from db.models import Job
from db.queries import get_dataset, list_datasets
from jobs.runner import reap_dead_jobs

#: Set by scripts/run.sh: the dataset the app opens on first.
DEFAULT_DATASET_ENV = "LISTING_AUDIT_DATASET"
DATASET_KEY = "dataset_id"


@dataclass(frozen=True)
class DatasetRef:
    """A plain copy of the selected dataset's identity (safe to keep in session state)."""

    id: int
    root: str
    name: str


def db_path() -> Path:
    return default_db_path().resolve()


@st.cache_resource
def _factory_for(path: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(path))


def session_factory() -> sessionmaker[Session]:
    """The app's session factory for $LISTING_AUDIT_DB (one engine per database file)."""
    return _factory_for(str(db_path()))


def _default_dataset_id(datasets) -> Optional[int]:
    preferred = os.environ.get(DEFAULT_DATASET_ENV)
    if preferred:
        with session_factory()() as session:
            dataset = get_dataset(session, preferred)
            if dataset is not None:
                return dataset.id
    return datasets[0].id if datasets else None


def selected_dataset() -> Optional[DatasetRef]:
    """Render the sidebar dataset picker and return the chosen dataset (None when there is none)."""
    with session_factory()() as session:
        datasets = [DatasetRef(d.id, d.root, d.name) for d in list_datasets(session)]
    if not datasets:
        st.sidebar.info("No dataset yet: scan a folder on the home page.")
        return None
    by_id = {d.id: d for d in datasets}
    if st.session_state.get(DATASET_KEY) not in by_id:
        st.session_state[DATASET_KEY] = _default_dataset_id(datasets)
    chosen = st.sidebar.selectbox(
        "Dataset", options=list(by_id), key=DATASET_KEY,
        format_func=lambda dataset_id: f"{by_id[dataset_id].name}  ({by_id[dataset_id].root})",
    )
    return by_id[chosen]


def reviewer_name() -> str:
    """The reviewer name set once in the sidebar; stored with every decision."""
    return st.sidebar.text_input("Reviewer", key="reviewer", placeholder="your name").strip()


def job_status_panel(job_id: int, *, title: str, run_every_s: float = 1.0) -> None:
    """A live progress bar for one job, polling the database; survives page reloads (state is in the db)."""

    @st.fragment(run_every=run_every_s)
    def _panel() -> None:
        with session_factory().begin() as session:
            reap_dead_jobs(session)
            job = session.get(Job, job_id)
            status, progress, message, error = job.status, job.progress, job.message, job.error
        if status in ("queued", "running"):
            st.progress(progress, text=f"{title}: {message or status}")
        elif status == "succeeded":
            st.success(f"{title}: done. {message}")
        elif status == "cancelled":
            st.warning(f"{title}: cancelled.")
        else:
            st.error(f"{title} failed: {(error or '').splitlines()[0] if error else 'unknown error'}")

    _panel()
