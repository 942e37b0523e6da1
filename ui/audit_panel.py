"""The audit section of the home page: what the latest audit flagged (per kind, per class), what changed
since the audit before it, and a form that starts a new audit in a worker process.

Progress lives in the database (the job row), so a running audit is shown again after a reload.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from core.audit.checks.base import PAST_BUDGET_MISLABEL
from core.audit.run import available_checks
from db.flags import class_flag_counts, diff_flags, kind_summary, previous_audit_job
from db.models import Job
from db.review import latest_audit_job
from jobs.audit import AuditError, audit_params
from jobs.runner import ACTIVE, create_job, job_result, latest_job, reap_dead_jobs, spawn_job
from ui.common import DatasetRef, db_path, job_name, job_status_panel, session_factory
from ui.text import plain

#: Backbones offered for the mislabel check's embeddings (names of core.models.embeddings.BACKBONES, listed
#: here so that the home page does not import torch); "pixels" needs no pretrained weights.
BACKBONE_CHOICES = ("mobilenet_v2", "resnet18", "resnet50", "efficientnet_b0", "pixels")
DEFAULT_FOLDS = 5
#: Where the mislabel check's photo evidence can come from in the form (core.audit.checks.mislabel SOURCES).
PHOTO_SOURCES = ("embeddings", "finetune")
#: The fine-tuned source's epochs and image size: core.audit.evidence.gather.MislabelOptions' defaults and choices.
FINETUNE_EPOCHS = 3
FINETUNE_IMAGE_SIZE = 112
FINETUNE_IMAGE_SIZES = (64, 96, 112, 128, 160, 224)
#: Files that exist where an NVIDIA driver is installed.
NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidia0")
FEEDBACK_KEY = "audit_feedback"
KIND_LABELS = {"mislabel": "Mislabels", PAST_BUDGET_MISLABEL: "Mislabels past the review budget",
               "price": "Price outliers", "duplicate": "Duplicates", "broken": "Broken files", "quality": "Poor images"}
REVIEW_PAGE = "pages/2_Review.py"


def start_audit(dataset_id: int, params: dict) -> tuple[int, bool]:
    """Queue an audit of the dataset and start its worker, unless one is already queued or running.

    Returns (job id, started): started is False when an active audit was reused.
    """
    with session_factory().begin() as session:
        reap_dead_jobs(session)
        running = latest_job(session, dataset_id, "audit")
        if running is not None and running.status in ACTIVE:
            return running.id, False
        job_id = create_job(session, dataset_id, "audit", params).id
    spawn_job(db_path(), job_id)
    return job_id, True


@st.cache_resource
def gpu_available() -> bool:
    """Whether torch sees a CUDA GPU. torch takes seconds to load, so it is asked only where an NVIDIA
    driver is installed (or torch is loaded already); elsewhere the answer is no."""
    if "torch" not in sys.modules and not any(Path(p).exists() for p in NVIDIA_DRIVER_PATHS):
        return False
    import torch

    return torch.cuda.is_available()


def mislabel_form_options(backbone: str) -> dict:
    """The mislabel check's options chosen in the form (empty: its defaults): no price evidence, and the
    fine-tuned source with its epochs and image size. Raises AuditError for fine-tuning without a network."""
    options: dict = {}
    if not st.session_state.get("audit_use_price", True):
        options["use_price"] = False
    if st.session_state.get("audit_photo_source", PHOTO_SOURCES[0]) == "finetune":
        if backbone == "pixels":
            raise AuditError("Fine-tuned networks need a network backbone: choose one other than 'pixels'.")
        options.update(source="finetune",
                       epochs=int(st.session_state.get("audit_finetune_epochs", FINETUNE_EPOCHS)),
                       image_size=int(st.session_state.get("audit_finetune_image_size", FINETUNE_IMAGE_SIZE)))
    return options


def _audit_clicked(dataset_id: int) -> None:
    """Button callback: build the audit's parameters from the form and start it."""
    if not st.session_state.get("audit_checks"):
        st.session_state[FEEDBACK_KEY] = ("error", "Choose at least one check.")
        return
    backbone = st.session_state.get("audit_backbone", BACKBONE_CHOICES[0])
    try:
        mislabel = mislabel_form_options(backbone)
        params = audit_params(
            checks=st.session_state.get("audit_checks") or None,
            folds=int(st.session_state.get("audit_folds", DEFAULT_FOLDS)),
            backbone=backbone,
            options={"mislabel": mislabel} if mislabel else None,
        )
    except AuditError as error:
        st.session_state[FEEDBACK_KEY] = ("error", str(error))
        return
    job_id, started = start_audit(dataset_id, params)
    if not started:
        st.session_state[FEEDBACK_KEY] = ("info", "An audit of this dataset is already running "
                                                  f"({job_name('audit', job_id)}).")


def _photo_source_label(source: str) -> str:
    folds = st.session_state.get("audit_folds", DEFAULT_FOLDS)
    return {"embeddings": "embeddings of a pretrained network (fast)",
            "finetune": f"fine-tuned networks ({folds} folds)"}.get(source, source)


def render_photo_source() -> None:
    """Where the mislabel check's photo evidence comes from; epochs and image size of fine-tuning."""
    gpu = gpu_available()
    source = st.radio("Photo evidence", PHOTO_SOURCES, key="audit_photo_source", horizontal=True,
                      index=PHOTO_SOURCES.index("finetune") if gpu else 0, format_func=_photo_source_label,
                      help="Mislabel check: classify the photos' embeddings from a frozen pretrained network, or "
                           "fine-tune one network per fold on the dataset's labels (it learns this dataset's "
                           "classes; many times slower without a GPU).")
    if gpu:
        st.caption("A GPU is available: fine-tuned networks are the default here (minutes on a GPU, many times "
                   "longer on a CPU).")
    if source == "finetune":
        epochs_column, size_column = st.columns(2)
        epochs_column.number_input("Fine-tuning epochs", min_value=1, max_value=50, value=FINETUNE_EPOCHS, step=1,
                                   key="audit_finetune_epochs")
        size_column.selectbox("Fine-tuning image size (px)", FINETUNE_IMAGE_SIZES,
                              index=FINETUNE_IMAGE_SIZES.index(FINETUNE_IMAGE_SIZE), key="audit_finetune_image_size")


def render_audit_form(dataset: DatasetRef, *, running: bool) -> None:
    """Checks, folds, backbone, where the photo evidence comes from, price evidence, and the button that
    starts an audit."""
    checks = available_checks()
    with st.container(border=True):
        st.multiselect("Checks", options=checks, default=checks, key="audit_checks",
                       format_func=lambda name: KIND_LABELS.get(name, name))
        folds_column, backbone_column = st.columns(2)
        folds_column.number_input("Cross-validation folds", min_value=2, max_value=10, value=DEFAULT_FOLDS, step=1,
                                  key="audit_folds", help="Mislabel check: each image is judged by a model "
                                  "trained on the other folds.")
        backbone_column.selectbox("Backbone", options=BACKBONE_CHOICES, key="audit_backbone",
                                  help="Mislabel check: the network whose image embeddings are classified. "
                                       "'pixels' needs no pretrained weights.")
        render_photo_source()
        st.checkbox("Use prices as mislabel evidence", value=True, key="audit_use_price",
                    help="Mislabel check: a listing whose price fits another class much better than its own "
                         "counts against its label. Untick to judge the photos alone.")
        st.button("Start audit", key="audit_start", type="primary", disabled=running,
                  on_click=_audit_clicked, args=(dataset.id,),
                  help="Runs in the background: you can leave this page; progress is kept.")
        feedback = st.session_state.pop(FEEDBACK_KEY, None)
        if feedback is not None:
            level, text = feedback
            (st.error if level == "error" else st.info)(text)


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def count_text(row) -> str:
    """One kind's count in the unit of the Review page: "12", or "150 groups (300 files)" for duplicates."""
    if row.kind == "duplicate":
        return f"{_counted(row.items, 'group')} ({_counted(row.files, 'file')})"
    return f"{row.items:,}"


def _counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def review_progress_table(kinds: pd.DataFrame) -> pd.DataFrame:
    """Per kind (db.flags.kind_summary rows): its label, items to review, open, decided and the share decided
    (NaN, shown empty, for a kind with nothing to review)."""
    return pd.DataFrame({
        "kind": [kind_label(kind) for kind in kinds["kind"]],
        "items": kinds["items"], "open": kinds["open"], "decided": kinds["decided"],
        "reviewed": kinds["decided"] / kinds["items"].where(kinds["items"] > 0),
    })


def render_completion(job_id: int, finished_at, kinds: pd.DataFrame) -> None:
    """That the audit finished, with what it found per kind, and the way to the Review page."""
    when = f" {finished_at:%Y-%m-%d %H:%M} UTC" if finished_at else ""
    found = " · ".join(f"{kind_label(row.kind)} {count_text(row)}" for row in kinds.itertuples())
    st.success(f"{job_name('Audit', job_id)} finished{when}. " + (found or "It flagged nothing."),
               icon=":material/task_alt:")
    still_open = int(kinds["open"].sum())
    label = f"Review: {_counted(still_open, 'item')} to decide" if still_open else "Review: every flag has a decision"
    st.page_link(REVIEW_PAGE, label=label, icon=":material/rule:")


def render_review_progress(kinds: pd.DataFrame) -> None:
    """Open and decided items per kind of flag (the Review page's unit: a duplicate group counts once)."""
    if not int(kinds["items"].sum()):
        return
    st.markdown("**Review progress**")
    st.dataframe(review_progress_table(kinds), hide_index=True, key="audit_review_table", column_config={
        "kind": st.column_config.TextColumn("kind of flag"),
        "items": st.column_config.NumberColumn("to review", help="A duplicate group counts once, as on Review."),
        "open": st.column_config.NumberColumn("open", help="No decision since this audit."),
        "decided": st.column_config.NumberColumn("decided"),
        "reviewed": st.column_config.ProgressColumn("reviewed", format="percent", min_value=0.0, max_value=1.0),
    })


def classes_column_config(classes: pd.DataFrame) -> dict:
    """Readable headers for db.flags.class_flag_counts: one per kind, then the flagged images and their share."""
    config = {"class": st.column_config.TextColumn("class")}
    config.update({kind: st.column_config.NumberColumn(kind_label(kind).lower(), help=f"{kind_label(kind)} flags")
                   for kind in classes.columns if kind not in ("flagged_samples", "samples", "flagged_share")})
    config["flagged_samples"] = st.column_config.NumberColumn("flagged images", help="Images with any flag")
    config["samples"] = st.column_config.NumberColumn("images", help="Images of the class the audit saw")
    config["flagged_share"] = st.column_config.ProgressColumn("flagged share", format="percent",
                                                             min_value=0.0, max_value=1.0)
    return config


def render_flag_summary(job_id: int, finished_at) -> None:
    """The audit's completion, its count per kind (every check that ran, duplicates as groups), review
    progress per kind and the noisiest classes."""
    with session_factory()() as session:
        kinds = kind_summary(session, job_id)
        classes = class_flag_counts(session, job_id)
    order = {kind: position for position, kind in enumerate(KIND_LABELS)}
    kinds = kinds.sort_values("kind", key=lambda names: names.map(lambda name: order.get(name, len(order))),
                              kind="stable").reset_index(drop=True)
    render_completion(job_id, finished_at, kinds)
    if kinds.empty:
        return
    for column, row in zip(st.columns(len(kinds)), kinds.itertuples()):
        if row.kind == "duplicate":
            column.metric("Duplicate groups", f"{row.items:,}",
                          help=f"{count_text(row)}: Review shows each group once.")
        else:
            column.metric(kind_label(row.kind), f"{row.items:,}")
    render_review_progress(kinds)
    if not int(kinds["files"].sum()):
        return
    st.markdown("**Noisiest classes** (share of the class's images with any flag)")
    st.dataframe(classes.reset_index(), hide_index=True, key="audit_classes_table",
                 column_config=classes_column_config(classes))


def check_problems(result: dict) -> tuple[list[str], list[str]]:
    """From an audit job's result: one line per failed check, and one per warning a check raised."""
    checks = result.get("checks") or {}
    errors = [f"The {kind_label(name).lower()} check failed ({error}); the other checks' flags "
              "are kept. Run the audit again to retry it." for name, error in (result.get("failed_checks") or {}).items()]
    warnings = [f"{kind_label(name)}: {warning}"
                for name, summary in checks.items() for warning in summary.get("warnings") or []]
    return errors, warnings


def render_check_problems(job_id: int) -> None:
    """The audit's failed checks (errors) and the checks' warnings, as plain text."""
    with session_factory()() as session:
        result = job_result(session.get(Job, job_id)) or {}
    errors, warnings = check_problems(result)
    for line in errors:
        st.error(plain(line), icon=":material/error:")
    for line in warnings:
        st.warning(plain(line), icon=":material/warning:")


def mislabel_evidence_tables(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From the mislabel check's summary: one row per evidence member (weight, out-of-fold accuracy,
    listings it had evidence for) and one per class (cleanlab's estimated noise rate, flagged)."""
    members = pd.DataFrame([
        {"evidence": name, "weight": values.get("weight"), "out-of-fold accuracy": values.get("accuracy"),
         "listings": values.get("rows")}
        for name, values in (summary.get("members") or {}).items()
    ])
    noise = summary.get("estimated_noise_per_class") or {}
    flagged = summary.get("per_class") or {}
    classes = pd.DataFrame([{"class": name, "estimated noise": rate, "flagged": flagged.get(name, 0)}
                            for name, rate in noise.items()])
    if not classes.empty:
        classes = classes.sort_values("estimated noise", ascending=False, kind="stable")
    return members, classes


def noise_heading(summary: dict) -> str:
    """The line above the noise table: the estimated share of wrong labels with its interval, and the flags
    (a review budget when the evidence is weak)."""
    rate, interval = summary.get("estimated_noise_rate"), summary.get("estimated_interval")
    if rate is None:
        return "**Label noise**"
    heading = f"**Label noise**: an estimated {rate:.1%} of labels are wrong"
    if interval:
        heading += f" ({interval[0]:,}-{interval[1]:,} listings, 95% interval)"
    if summary.get("weak_evidence"):
        past = int(summary.get("past_budget") or 0)
        return (heading + f"; the evidence is weak: review the first {summary.get('review_budget', 0):,} flags"
                + (f", then {past:,} more ranked past them while your decisions keep confirming them" if past else ""))
    return heading + f"; {summary.get('flagged', 0):,} flagged"


def render_mislabel_evidence(job_id: int) -> None:
    """What the mislabel check weighed (members and their weights) and its estimated noise per class."""
    with session_factory()() as session:
        result = job_result(session.get(Job, job_id)) or {}
    summary = (result.get("checks") or {}).get("mislabel")
    if not summary or not summary.get("members"):
        return
    members, classes = mislabel_evidence_tables(summary)
    st.markdown(noise_heading(summary))
    noise_column, members_column = st.columns([3, 2])
    with noise_column:
        st.dataframe(classes, hide_index=True, key="audit_noise_table",
                     column_config={"estimated noise": st.column_config.ProgressColumn(
                         "estimated noise", format="percent", min_value=0.0, max_value=1.0)})
    with members_column:
        st.dataframe(members, hide_index=True, key="audit_members_table",
                     column_config={"weight": st.column_config.NumberColumn(format="%.2f"),
                                    "out-of-fold accuracy": st.column_config.NumberColumn(format="percent")})
        unused = summary.get("unavailable_members") or {}
        if unused:
            st.caption("Not used: " + "; ".join(f"{name} ({why})" for name, why in unused.items()))


def render_price_model(job_id: int) -> None:
    """One line on what judged the prices: the expected-price model's sources and weights, or class statistics
    and why."""
    from core.audit.checks.price import expected_price_text

    with session_factory()() as session:
        result = job_result(session.get(Job, job_id)) or {}
    text = expected_price_text((result.get("checks") or {}).get("price") or {})
    if text:
        st.caption(f"Prices: {plain(text)}")


def render_changes(job_id: int) -> None:
    """New and resolved flags per kind since the previous succeeded audit, if there is one."""
    with session_factory()() as session:
        previous = previous_audit_job(session, session.get(Job, job_id))
        if previous is None:
            return
        diff = diff_flags(session, previous.id, job_id)
    counts = diff.counts()
    st.markdown(f"**Since the previous audit** (audit {previous.number})")
    if counts.empty:
        st.write(f"Nothing changed: the same {diff.kept} flags.")
        return
    counts = counts.rename(index=kind_label).reset_index(names="kind")
    st.dataframe(counts, hide_index=True, key="audit_changes_table",
                 column_config={"kind": st.column_config.TextColumn("kind of flag")})
    st.caption(f"{len(diff.new)} new flags, {len(diff.resolved)} no longer raised, {diff.kept} still raised.")


def render_audit_section(dataset: DatasetRef) -> None:
    """The home page's audit section for `dataset`: status of a running or failed audit, the latest
    audit's flags per kind and per class, what changed since the audit before, and the start form."""
    st.subheader("Audit")
    with session_factory().begin() as session:
        reap_dead_jobs(session)
        last = latest_job(session, dataset.id, "audit")
        done = latest_audit_job(session, dataset.id)
        last_id, last_status = (last.id, last.status) if last else (None, None)
        done_id, done_at = (done.id, done.finished_at) if done else (None, None)
    running = last_status in ACTIVE
    if last_id is not None and last_id != done_id:
        job_status_panel(last_id, title=f"Audit of {dataset.name}", show_success=False)
    if done_id is None:
        if not running:
            st.info("No audit yet: choose the checks below and start one.")
    else:
        render_flag_summary(done_id, done_at)
        render_check_problems(done_id)
        render_mislabel_evidence(done_id)
        render_price_model(done_id)
        render_changes(done_id)
    render_audit_form(dataset, running=running)
