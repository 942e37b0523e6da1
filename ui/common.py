"""Shared Streamlit plumbing: the cached engine, the selected dataset, the reviewer, a live job-progress panel.

Pages call `session_factory()`, `selected_dataset()` and `reviewer_name()`;
nothing here computes: it only reads the database and renders. The sidebar
choices keep their values across pages (`persist_state="session"`).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from sqlalchemy.orm import Session, sessionmaker

from db.corrections import MAX_REVIEWER_CHARS
from db.engine import DatabaseAccessError, canonical_location, default_location, make_engine, make_session_factory
from db.models import Job
from db.queries import get_dataset, job_numbers, list_datasets
from db.runs import run_name
from jobs.runner import ACTIVE, reap_dead_jobs, request_cancel
from ui.text import plain
from ui.url_state import set_url, url_number

#: Set by scripts/run.sh: the dataset the app opens on first.
DEFAULT_DATASET_ENV = "LISTING_AUDIT_DATASET"
DATASET_KEY = "dataset_id"
DATASET_PARAM = "dataset"  # the selected dataset's id in the URL
REVIEWER_KEY = "reviewer"
REVIEWER_NAME_KEY = "reviewer_name"
#: The time left of a running job is guessed once it has run this many seconds and done this share.
ETA_AFTER_S, ETA_AFTER_PROGRESS = 10.0, 0.02
#: The recent pace of a running job is its progress over about this many seconds.
PACE_WINDOW_S = 30.0
#: The sidebar's links: (script, label, icon), in order.
NAVIGATION = (
    ("app.py", "Home", ":material/home:"),
    ("pages/1_Browse.py", "Browse", ":material/photo_library:"),
    ("pages/2_Review.py", "Review", ":material/rule:"),
    ("pages/4_Train.py", "Train", ":material/model_training:"),
    ("pages/5_Metrics.py", "Metrics", ":material/bar_chart:"),
    ("pages/6_History.py", "History", ":material/history:"),
    ("pages/7_Export.py", "Export", ":material/download:"),
)
#: Mantissas of the round numbers a log-scale range slider stops at (1, 1.5, 2, 3, 5, 7, 10, 15, ...).
_ROUND_MANTISSAS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)


@dataclass(frozen=True)
class DatasetRef:
    """A plain copy of the selected dataset's identity (safe to keep in session state)."""

    id: int
    root: str
    name: str


@dataclass(frozen=True)
class JobSnapshot:
    """A job's state as read once from the database (plain values, safe after the session closes)."""

    id: int
    kind: str
    status: str  # queued | running | succeeded | failed | cancelled
    progress: float  # 0..1
    message: str
    error: Optional[str]
    cancel_requested: bool
    started_at: Optional[datetime]
    finished_at: Optional[datetime]

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def log_scale_stops(low: float, high: float) -> list[float]:
    """Stops for a range slider over [low, high] spread evenly on a log scale: low, round numbers between, high.

    Prices span orders of magnitude (and typos add more), so a linear slider
    leaves typical prices in a sliver of its track. Both ends are included
    exactly. A low of 0 (a free item) is followed by the stops from one cent up.
    """
    if low > high:
        raise ValueError(f"low > high: {low} > {high}")
    if low == high:
        return [low]
    if low <= 0:
        return [low] + log_scale_stops(min(0.01, high), high) if high > 0 else [low, high]
    stops = [low]
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in _ROUND_MANTISSAS:
            value = round(mantissa * 10.0 ** exponent, 10)
            if low < value < high:
                stops.append(value)
    stops.append(high)
    return stops


def db_path() -> str:
    """The app's database ($LISTING_AUDIT_DB): a SQLite file's absolute path or a server's URL.

    One string per database (db.engine.canonical_location), so it keys the engine and the caches.
    A location that names no usable database stops the page with its one-line reason.
    """
    try:
        return canonical_location(default_location())
    except DatabaseAccessError as error:
        st.error(str(error))
        st.stop()


@st.cache_resource
def factory_for(path: str) -> sessionmaker[Session]:
    """The session factory of the database at `path` (see db_path; one engine per database, shared by all sessions).

    Cached functions take the database location as an argument and call this, so
    that their cache is keyed by database as well as by their other arguments.
    """
    return make_session_factory(make_engine(path))


def session_factory() -> sessionmaker[Session]:
    """The app's session factory for $LISTING_AUDIT_DB (one engine per database file).

    A database that cannot be opened stops the page with its one-line reason.
    """
    try:
        return factory_for(db_path())
    except DatabaseAccessError as error:
        st.error(str(error))
        st.stop()


def _default_dataset_id(datasets) -> Optional[int]:
    preferred = os.environ.get(DEFAULT_DATASET_ENV)
    if preferred:
        with session_factory()() as session:
            dataset = get_dataset(session, preferred)
            if dataset is not None:
                return dataset.id
    return datasets[0].id if datasets else None


def select_dataset(dataset_id: int) -> None:
    """Make `dataset_id` the selected dataset. Call it from a widget callback (before the picker renders)."""
    st.session_state[DATASET_KEY] = dataset_id


def render_navigation() -> None:
    """The sidebar's links to every page, "Home" first. Streamlit's own list (hidden in .streamlit/config.toml)
    names the home page after its script, "app"; routing with st.navigation instead takes effect beside a
    pages/ folder only once the home page has run in the server, so a first visit to /Review kept that list."""
    context = get_script_run_ctx()
    if context is None or Path(context.main_script_path).name != "app.py":
        return  # a page script run on its own (AppTest.from_file of it) has no other page to link to
    with st.sidebar:
        for path, label, icon in NAVIGATION:
            st.page_link(path, label=label, icon=icon)
        st.divider()


def open_page(title: str) -> Optional[DatasetRef]:
    """Start a page: its browser title and heading, the sidebar's links, dataset picker and reviewer name.
    Returns the chosen dataset, or None after telling the user to scan a folder first."""
    st.set_page_config(page_title=f"{title} · listing-audit", layout="wide")
    render_navigation()
    dataset = selected_dataset()
    render_reviewer()
    st.title(title)
    if dataset is None:
        st.info("No dataset yet: scan a folder on the home page first.")
    return dataset


def selected_dataset() -> Optional[DatasetRef]:
    """Render the sidebar dataset picker and return the chosen dataset (None when there is none)."""
    with session_factory()() as session:
        datasets = [DatasetRef(d.id, d.root, d.name) for d in list_datasets(session)]
    if not datasets:
        st.sidebar.info("No dataset yet: scan a folder on the home page.")
        return None
    by_id = {d.id: d for d in datasets}
    if st.session_state.get(DATASET_KEY) not in by_id:
        from_url = url_number(DATASET_PARAM, low=1, high=2 ** 62)
        st.session_state[DATASET_KEY] = int(from_url) if from_url in by_id else _default_dataset_id(datasets)
    chosen = st.sidebar.selectbox(
        "Dataset", options=list(by_id), key=DATASET_KEY, persist_state="session",
        format_func=lambda dataset_id: f"{by_id[dataset_id].name}  ({by_id[dataset_id].root})",
    )
    set_url(DATASET_PARAM, str(chosen))  # a reload or a link opens the same dataset
    return by_id[chosen]


def _reviewer_changed() -> None:
    st.session_state[REVIEWER_NAME_KEY] = str(st.session_state.get(REVIEWER_KEY) or "").strip()


def render_reviewer() -> None:
    """The sidebar's reviewer name, on every page.

    Each page's input is its own widget, so the name lives under REVIEWER_NAME_KEY and is put back into
    the input on every page; it is also kept in the URL (`?reviewer=ann`), so a reload, a bookmark or a
    second tab keeps it.
    """
    if REVIEWER_NAME_KEY not in st.session_state:
        from_url = str(st.query_params.get(REVIEWER_KEY) or "").strip()
        if len(from_url) > MAX_REVIEWER_CHARS:
            st.sidebar.warning(f"The reviewer name in the address has {len(from_url):,} characters (at most "
                               f"{MAX_REVIEWER_CHARS}): not used.")
            from_url = ""
        st.session_state[REVIEWER_NAME_KEY] = from_url
    st.session_state[REVIEWER_KEY] = st.session_state[REVIEWER_NAME_KEY]
    st.sidebar.text_input("Reviewer", key=REVIEWER_KEY, placeholder="your name", on_change=_reviewer_changed,
                          max_chars=MAX_REVIEWER_CHARS, help="Stored with every decision you make.")
    name = st.session_state[REVIEWER_NAME_KEY]
    if name and st.query_params.get(REVIEWER_KEY) != name:
        st.query_params[REVIEWER_KEY] = name
    elif not name and REVIEWER_KEY in st.query_params:
        del st.query_params[REVIEWER_KEY]


def reviewer_name() -> str:
    """The reviewer name set in the sidebar (render_reviewer, called by open_page); "" when unset."""
    return st.session_state.get(REVIEWER_NAME_KEY, "")


def read_job(job_id: int, *, reap: bool = True) -> Optional[JobSnapshot]:
    """The job's current state, or None if there is no such job. reap: first mark dead workers' jobs failed."""
    with session_factory().begin() as session:
        if reap:
            reap_dead_jobs(session)
        job = session.get(Job, job_id)
        if job is None:
            return None
        return JobSnapshot(
            job.id, job.kind, job.status, float(job.progress or 0.0), job.message or "", job.error,
            bool(job.cancel_requested), job.started_at, job.finished_at,
        )


def job_number_of(job_id: int) -> Optional[int]:
    """Job `job_id`'s number among the jobs of its kind, its name (the job id stays internal); None if none."""
    with session_factory()() as session:
        return job_numbers(session, [job_id]).get(job_id)


def job_name(kind_word: str, job_id: int) -> str:
    """"audit 3": `kind_word` and job `job_id`'s number among the jobs of its kind."""
    return f"{kind_word} {job_number_of(job_id)}"


def run_title(run_id: int, *, capital: bool = True) -> str:
    """"Run 3": the name of training run `run_id`."""
    return run_name(job_number_of(run_id), capital=capital)


def _cancel(job_id: int) -> None:
    with session_factory().begin() as session:
        request_cancel(session, job_id)


def seconds_left(progress: float, elapsed_s: float, recent: Optional[tuple[float, float]] = None) -> Optional[float]:
    """Seconds a job still needs, or None while too little is done to tell (before ETA_AFTER_S or
    ETA_AFTER_PROGRESS, or no progress over a full window).

    The job has done share `progress` in `elapsed_s` seconds; recent: (seconds, share gained) over the last
    PACE_WINDOW_S when known. A job's steps do not move the bar evenly (a check's fits are slower per share
    than its embeddings, and the cheap ones are quick), so the slower of the two paces is the estimate: an
    estimate that runs out early ("less than a minute" for 95 s) misleads more than one that ends early.
    """
    if elapsed_s < ETA_AFTER_S or not ETA_AFTER_PROGRESS <= progress < 1.0:
        return None
    estimate = elapsed_s * (1.0 - progress) / progress
    if recent is not None and recent[0] >= PACE_WINDOW_S / 2:
        window_s, gained = recent
        if gained <= 0.0:
            return None
        estimate = max(estimate, window_s * (1.0 - progress) / gained)
    return estimate


def time_left(progress: float, elapsed_s: float, recent: Optional[tuple[float, float]] = None) -> str:
    """`seconds_left` as text to append: ", about 40 s left", ", about 3 min left"; "" when it cannot tell."""
    seconds = seconds_left(progress, elapsed_s, recent)
    if seconds is None:
        return ""
    if seconds < 55:
        return f", about {max(10, round(seconds / 10) * 10)} s left"
    minutes = max(1, round(seconds / 60))
    return f", about {minutes} min left" if minutes < 60 else f", about {minutes // 60} h {minutes % 60:02d} min left"


def recent_pace(job: JobSnapshot, now_s: float) -> Optional[tuple[float, float]]:
    """(seconds, share gained) over about the last PACE_WINDOW_S of `job`, from the readings this browser
    session made (kept in its session state); None until a second reading."""
    readings = st.session_state.setdefault(f"job_pace_{job.id}", [])
    readings.append((now_s, job.progress))
    while len(readings) > 2 and now_s - readings[1][0] >= PACE_WINDOW_S:
        readings.pop(0)
    (first_s, first_progress), (last_s, last_progress) = readings[0], readings[-1]
    return (last_s - first_s, last_progress - first_progress) if len(readings) > 1 else None


def _elapsed(job: JobSnapshot) -> str:
    """Seconds since the job started, with the time left while it runs: " (75 s, about 2 min left)"."""
    if job.started_at is None:
        return ""
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=timezone.utc)
    end = job.finished_at or datetime.now(timezone.utc)
    end = end if end.tzinfo else end.replace(tzinfo=timezone.utc)
    seconds = (end - started).total_seconds()
    if not job.active:
        return f" ({seconds:.0f} s)"
    return f" ({seconds:.0f} s{time_left(job.progress, seconds, recent_pace(job, time.monotonic()))})"


def _render_active(job: JobSnapshot, title: str) -> None:
    waiting = "waiting for the worker to start" if job.status == "queued" else job.status
    text = f"{title}: {job.message or waiting}{_elapsed(job)}"
    if job.cancel_requested:
        text += " - stopping"
    bar, button = st.columns([6, 1], vertical_alignment="bottom")
    bar.progress(min(max(job.progress, 0.0), 1.0), text=plain(text))
    button.button("Cancel", key=f"cancel_job_{job.id}", on_click=_cancel, args=(job.id,),
                  disabled=job.cancel_requested, width="stretch")


def _render_finished(job: JobSnapshot, title: str) -> None:
    if job.status == "succeeded":
        st.success(plain(f"{title}: done{_elapsed(job)}. {job.message}"))
    elif job.status == "cancelled":
        st.warning(plain(f"{title}: cancelled."))
    else:
        first_line = (job.error or "unknown error").splitlines()[0]
        st.error(plain(f"{title} failed: {first_line}"))
        if job.error and job.error.strip() != first_line:
            with st.expander("Error details"):
                st.code(job.error, language=None)


def job_status_panel(job_id: int, *, title: str, run_every_s: float = 1.0,
                     show_success: bool = True) -> Optional[str]:
    """Show one job's progress, polling the database while it is queued or running; returns its status.

    State lives in the database, so the panel survives page reloads. While the
    job is active the panel refreshes itself every `run_every_s` seconds and
    offers a Cancel button; when it ends, the whole page reruns once so that
    what the job changed is shown. A finished job shows its outcome (a failure
    with its error); show_success=False shows nothing for a job that succeeded.
    Returns None if there is no such job.
    """
    job = read_job(job_id)
    if job is None:
        st.error(plain(f"{title}: job {job_id} does not exist."))
        return None
    if not job.active:
        if job.status != "succeeded" or show_success:
            _render_finished(job, title)
        return job.status

    @st.fragment(run_every=run_every_s)
    def _live() -> None:
        current = read_job(job_id)
        if not current.active:
            st.rerun()  # the whole page: show the outcome and fresh data
        _render_active(current, title)

    _live()
    return job.status
