"""Train: start a training run on the dataset's current labels, watch its loss and accuracy live, cancel or resume it,
and see where a finished run's time went. After a review round, retrain with the same settings and see the new run
compared with the one it replaces, on the same images against the same labels.

The run is a job in its own worker process (`jobs.runner.spawn_job`), never in the
Streamlit server: closing the browser does not stop it, and its state and curves
are read back from the database on every refresh.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd
import streamlit as st

from core.models.config import BACKBONE_NAMES, BALANCING, DEVICES, OPTIMIZERS, SCHEDULERS, SPLITS, TrainConfig
from core.train.estimate import EarlierRun, describe_seconds, estimate_seconds
from db.models import Job
from db.evaluation import split_summary
from db.runs import (TRAIN_KIND, active_run_like, dataset_snapshot, get_run, replaced_run, requeue_run, run_config,
                     run_epochs, run_name, run_phases, runs_frame)
from jobs.runner import ACTIVE, create_job, job_params, reap_dead_jobs, spawn_job
from ui.common import DatasetRef, db_path, job_status_panel, open_page, run_title, session_factory
from ui.run_comparison import comparison_for, render_comparison_headline
from ui.train_charts import curves_figure

RUN_KEY = "train_run_id"
FEEDBACK_KEY = "train_feedback"
CURVES_REFRESH_S = 2.0
DEFAULTS = TrainConfig()
IMAGE_SIZES = (32, 64, 96, 128, 160, 192, 224, 256, 320)
SPLIT_CHOICES = {"dataset": "the dataset's evaluation split", "run": "a split of this run's own"}
#: widget key -> TrainConfig field
FORM_FIELDS = {
    "train_backbone": "backbone", "train_pretrained": "pretrained", "train_epochs": "epochs",
    "train_image_size": "image_size", "train_batch_size": "batch_size", "train_lr": "lr",
    "train_optimizer": "optimizer", "train_scheduler": "scheduler", "train_balance": "balance",
    "train_augment": "augment", "train_freeze_epochs": "freeze_backbone_epochs", "train_patience": "patience",
    "train_split": "split", "train_val_fraction": "val_fraction", "train_folds": "folds", "train_device": "device", "train_seed": "seed",
}


# --- starting and resuming runs ---------------------------------------------------------------------


class SameRunActive(ValueError):
    """A run with the same settings is already queued or training."""


def start_run(dataset_id: int, config: TrainConfig, *, replaces: Optional[int] = None) -> int:
    """Queue a run and start its worker; returns the run id. It waits in the queue while another run trains.
    replaces: the run this one retrains with the same settings, compared with it when it ends.
    SameRunActive when a run with these settings is already queued or training (a second click)."""
    params = {"config": config.to_dict(), **({"replaces": replaces} if replaces else {})}
    with session_factory().begin() as session:
        twin = active_run_like(session, dataset_id, params["config"])
        if twin is not None:
            raise SameRunActive(f"{run_name(twin.number)} with these settings is already {twin.status}: "
                                "nothing was started.")
        run_id = create_job(session, dataset_id, TRAIN_KIND, params).id
    spawn_job(db_path(), run_id)
    return run_id


def same_settings(config: dict) -> TrainConfig:
    """A finished run's config for a new run: its own folder, everything else as it was."""
    return TrainConfig.from_dict({**config, "out_dir": None})


def _retrain_clicked(dataset_id: int, run_id: int) -> None:
    with session_factory()() as session:
        config = same_settings(run_config(get_run(session, run_id)))
    try:
        new_id = start_run(dataset_id, config, replaces=run_id)
    except SameRunActive as error:
        st.session_state[FEEDBACK_KEY] = ("warning", str(error))
        return
    st.session_state[RUN_KEY] = new_id
    st.session_state[FEEDBACK_KEY] = ("success", f"{run_title(new_id)} started with the settings of "
                                                 f"{run_title(run_id, capital=False)}.")


def resume_run(run_id: int) -> None:
    with session_factory().begin() as session:
        requeue_run(session, run_id)
    spawn_job(db_path(), run_id)


def _start_clicked(dataset_id: int) -> None:
    """Form callback: build the config from the widgets, start the run (runs before the page)."""
    values = {name: st.session_state[key] for key, name in FORM_FIELDS.items()}
    if not values["pretrained"]:
        values["freeze_backbone_epochs"] = 0
    try:
        config = TrainConfig.from_dict(values)
    except ValueError as error:
        st.session_state[FEEDBACK_KEY] = ("error", str(error))
        return
    try:
        run_id = start_run(dataset_id, config)
    except SameRunActive as error:
        st.session_state[FEEDBACK_KEY] = ("warning", str(error))
        return
    st.session_state[RUN_KEY] = run_id
    st.session_state[FEEDBACK_KEY] = ("success", f"{run_title(run_id)} started.")


def _resume_clicked(run_id: int) -> None:
    try:
        resume_run(run_id)
    except ValueError as error:
        st.session_state[FEEDBACK_KEY] = ("error", str(error))
        return
    st.session_state[FEEDBACK_KEY] = ("success", f"{run_title(run_id)} resumes from its last checkpoint.")


# --- rendering ----------------------------------------------------------------------------------------


def _field_help(name: str) -> Optional[str]:
    return {
        "balance": "sampler: draw every class equally often; loss: weigh rare classes more; none",
        "freeze_backbone_epochs": "train only the new classification head for these first epochs",
        "patience": "stop after this many epochs without validation-loss improvement (0: never)",
        "folds": "also train K models for out-of-fold probabilities of every sample, for the next audit (0: off)",
    }.get(name)


def render_form(dataset: DatasetRef) -> None:
    # Enter in a box does not submit: only the Start button starts a run.
    with st.form("train_form", enter_to_submit=False):
        first, second, third = st.columns(3)
        first.selectbox("Backbone", BACKBONE_NAMES, index=BACKBONE_NAMES.index(DEFAULTS.backbone),
                        key="train_backbone", persist_state="session")
        first.checkbox("ImageNet weights", value=DEFAULTS.pretrained, key="train_pretrained", persist_state="session",
                       help="start from pretrained weights (installed offline); off: train from scratch")
        second.number_input("Epochs", 1, 500, DEFAULTS.epochs, key="train_epochs", persist_state="session")
        second.selectbox("Image size (px)", IMAGE_SIZES, index=IMAGE_SIZES.index(DEFAULTS.image_size),
                         key="train_image_size", persist_state="session")
        third.number_input("Batch size", 2, 1024, DEFAULTS.batch_size, key="train_batch_size", persist_state="session")
        third.number_input("Learning rate", 1e-6, 1.0, DEFAULTS.lr, format="%.5f", key="train_lr", persist_state="session")
        with st.expander("More options"):
            left, middle, right = st.columns(3)
            left.selectbox("Optimizer", OPTIMIZERS, key="train_optimizer", persist_state="session")
            left.selectbox("Learning-rate schedule", SCHEDULERS, key="train_scheduler", persist_state="session")
            left.selectbox("Class imbalance", BALANCING, key="train_balance", persist_state="session", help=_field_help("balance"))
            middle.checkbox("Augmentation (crop, flip, colour)", value=DEFAULTS.augment, key="train_augment", persist_state="session")
            middle.number_input("Frozen backbone epochs", 0, 100, DEFAULTS.freeze_backbone_epochs,
                                key="train_freeze_epochs", persist_state="session", help=_field_help("freeze_backbone_epochs"))
            middle.number_input("Early-stopping patience", 0, 100, DEFAULTS.patience, key="train_patience", persist_state="session",
                                help=_field_help("patience"))
            right.selectbox("Validate on", SPLITS, key="train_split", persist_state="session",
                            format_func=SPLIT_CHOICES.get,
                            help="the dataset's evaluation split is shared by every run, so runs compare on the "
                                 "same images; a split of the run's own is drawn with its seed and share")
            right.number_input("Validation share (own split)", 0.05, 0.5, DEFAULTS.val_fraction, step=0.05,
                               key="train_val_fraction", persist_state="session")
            right.number_input("Out-of-fold folds", 0, 10, DEFAULTS.folds, key="train_folds", persist_state="session",
                               help=_field_help("folds"))
            right.selectbox("Device", DEVICES, key="train_device", persist_state="session", help="auto: the GPU when there is one")
            right.number_input("Seed", 0, 2**31 - 1, DEFAULTS.seed, key="train_seed", persist_state="session")
        st.form_submit_button("Start training", key="train_start", type="primary",
                              on_click=_start_clicked, args=(dataset.id,))


def earlier_run(session, runs: pd.DataFrame, backbone: str) -> tuple[Optional[int], Optional[EarlierRun]]:
    """The newest succeeded run of `backbone` with recorded phase times, as (run id, EarlierRun)."""
    for row in runs[(runs["status"] == "succeeded") & (runs["backbone"] == backbone)].itertuples():
        timing = run_phases(session, int(row.id))
        if timing is not None:
            folds = int(job_params(session.get(Job, int(row.id))).get("config", {}).get("folds") or 0)
            return int(row.id), EarlierRun(timing["phases"], int(row.epochs_done), int(row.image_size), folds)
    return None, None


def render_estimate(runs: pd.DataFrame) -> None:
    """How long a run with the form's settings should take, from the newest comparable run."""
    values = {name: st.session_state.get(key, getattr(DEFAULTS, name)) for key, name in FORM_FIELDS.items()}
    with session_factory()() as session:
        run_id, earlier = earlier_run(session, runs, values["backbone"])
    seconds = estimate_seconds(earlier, epochs=int(values["epochs"]), image_size=int(values["image_size"]),
                               folds=int(values["folds"]))
    if seconds is None:
        st.caption(f"No estimate yet: the first {values['backbone']} run on this dataset sets one.")
        return
    st.caption(f"Expected time with these settings: {describe_seconds(seconds)} (from "
               f"{run_title(run_id, capital=False)}; less if early "
               "stopping ends it sooner, more while another run holds the queue).")


def render_curves(run_id: int) -> None:
    with session_factory()() as session:
        epochs = run_epochs(session, run_id)
    if epochs.empty:
        st.caption("The curves appear when the first epoch ends.")
        return
    st.plotly_chart(curves_figure(epochs), key=f"train_curves_{run_id}")


def phases_table(timing: dict) -> pd.DataFrame:
    """One row per phase of a run (db.runs.run_phases): seconds and share of the wall time; folds as columns."""
    wall = timing["seconds"] or float("nan")
    table = pd.DataFrame({"phase": list(timing["phases"]), "seconds": list(timing["phases"].values())})
    table["share"] = table["seconds"] / wall
    for number, fold in enumerate(timing["fold_phases"], start=1):
        table[f"fold {number}"] = table["phase"].map(fold)
    return table


def render_phases(run_id: int) -> None:
    """Where a finished run's time went (nothing for runs from before phases were recorded)."""
    with session_factory()() as session:
        timing = run_phases(session, run_id)
    if timing is None:
        return
    st.markdown(f"**Where the time went**: {timing['seconds']:.1f} s in all")
    folds = {f"fold {n}": st.column_config.NumberColumn(format="%.2f")
             for n in range(1, len(timing["fold_phases"]) + 1)}
    st.dataframe(phases_table(timing), hide_index=True, key=f"train_phases_{run_id}", column_config={
        "seconds": st.column_config.NumberColumn(format="%.2f"),
        "share": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0), **folds,
    })


def render_split(dataset_id: int) -> None:
    """The dataset's evaluation split in one line."""
    with session_factory()() as session:
        split = split_summary(session, dataset_id)
    assigned = split["evaluation"] + split["training"]
    if not assigned:
        st.caption("Evaluation split: drawn when the first run starts.")
        return
    joining = f" {split['unassigned']:,} listings scanned since join it when the next run starts." \
        if split["unassigned"] else ""
    st.caption(f"Evaluation split: {split['evaluation']:,} of {assigned:,} listings "
               f"({split['evaluation'] / assigned:.0%}), drawn once from the files' contents, by folder class and "
               "with copies of a photo together. Every run validates on it, so runs compare on the same images; "
               f"decisions never move a listing across it.{joining}")


def retrain_candidate(runs: pd.DataFrame, decisions_now: int) -> Optional[tuple[int, int]]:
    """(run id, decisions since it trained) of the newest succeeded run, when decisions were made since it
    trained and no run started since (a newer run, even one still training, is the retrain)."""
    if runs.empty or runs["status"].iloc[0] != "succeeded":
        return None
    newest = runs.iloc[0]
    since = decisions_now - int(newest.corrections or 0)
    return (int(newest.id), since) if since > 0 else None


def render_retrain(dataset_id: int, runs: pd.DataFrame) -> None:
    """After a review round: retrain with the settings of the newest run, to compare with it."""
    with session_factory()() as session:
        decisions_now = dataset_snapshot(session, dataset_id)["corrections"]
    candidate = retrain_candidate(runs, decisions_now)
    if candidate is None:
        return
    run_id, since = candidate
    text, button = st.columns([3, 1], vertical_alignment="center")
    text.info(f"{since:,} review decision{'s' if since != 1 else ''} since {run_title(run_id, capital=False)} "
              "trained. Retrain with its "
              "settings to see what they changed, on the same images against the same labels.")
    button.button("Retrain with the same settings", key="train_retrain", type="primary", width="stretch",
                  on_click=_retrain_clicked, args=(dataset_id, run_id))


def render_replaced_comparison(dataset_id: int, run_id: int) -> None:
    """A retrain compared with the run it replaces (today's labels); the details are on Metrics."""
    with session_factory()() as session:
        replaces = replaced_run(get_run(session, run_id))
    if replaces is None:
        return
    comparison = comparison_for(str(db_path()), dataset_id, replaces, run_id, "current")
    if comparison is None:
        return
    before = run_title(replaces, capital=False)
    st.markdown(f"**Compared with {before}, which it replaces**")
    render_comparison_headline(comparison, replaces, run_id, "current")
    st.caption(f"Per class, and against verified labels only: the Metrics page (baseline {before}).")


def render_run(dataset_id: int, run_id: int) -> None:
    """Progress (with Cancel) and live curves of one run; Resume when it failed or was cancelled; the comparison
    with the run it replaces and where the time went when it succeeded."""
    status = job_status_panel(run_id, title=run_title(run_id))
    if status is None:
        return
    if status in ACTIVE:
        st.fragment(run_every=CURVES_REFRESH_S)(render_curves)(run_id)
    else:
        render_curves(run_id)
    if status in ("failed", "cancelled"):
        with session_factory()() as session:
            checkpointed = not run_epochs(session, run_id).empty  # a checkpoint is written as each epoch ends
        st.button("Resume from the last checkpoint" if checkpointed else "Start it again", key="train_resume",
                  on_click=_resume_clicked, args=(run_id,),
                  help=None if checkpointed else "It stopped before its first epoch ended, so there is no "
                                                 "checkpoint: it trains from the start, with the same settings.")
    if status == "succeeded":
        render_replaced_comparison(dataset_id, run_id)
        render_phases(run_id)


def _run_label(runs: pd.DataFrame, run_id: int) -> str:
    """What identifies a run in the picker: only what never changes (its state and epochs are shown below it;
    a label that changed while the run trained went stale in the browser)."""
    row = runs.set_index("id").loc[run_id]
    return (f"{run_name(row.number)} · {row.backbone} · {row.image_size} px · {row.epochs} epochs · "
            f"{row.created_at:%Y-%m-%d %H:%M}")


def choose_run(runs: pd.DataFrame) -> int:
    """The run to show: the one just started, else the newest."""
    ids = runs["id"].tolist()
    if st.session_state.get(RUN_KEY) not in ids:
        st.session_state[RUN_KEY] = ids[0]
    return st.selectbox("Run", ids, key=RUN_KEY, format_func=lambda run_id: _run_label(runs, run_id))


def render_runs_table(runs: pd.DataFrame) -> None:
    table = runs[["number", "status", "backbone", "image_size", "epochs_done", "epochs", "accuracy", "macro_f1",
                  "corrections", "device", "created_at"]]
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "number": st.column_config.NumberColumn("run"),
        "accuracy": st.column_config.NumberColumn(format="%.4f"),
        "macro_f1": st.column_config.NumberColumn("macro F1", format="%.4f"),
        "corrections": st.column_config.NumberColumn("corrections applied"),
    })


def show_feedback() -> None:
    feedback: Optional[tuple[str, str]] = st.session_state.pop(FEEDBACK_KEY, None)
    if feedback:
        kind, text = feedback
        {"error": st.error, "warning": st.warning}.get(kind, st.success)(text)


def main() -> None:
    dataset = open_page("Train")
    if dataset is None:
        return
    st.caption("Fine-tunes a classifier on the current labels: corrections applied, deleted and unreadable images "
               "left out. Runs train one at a time; a new run waits in the queue while another trains.")
    with session_factory().begin() as session:
        reap_dead_jobs(session)
        runs = runs_frame(session, dataset.id)
    render_retrain(dataset.id, runs)
    render_form(dataset)
    show_feedback()
    render_estimate(runs)
    render_split(dataset.id)
    if runs.empty:
        st.info("No training run yet.")
        return
    st.subheader("Runs")
    run_id = choose_run(runs)
    render_run(dataset.id, run_id)
    render_runs_table(runs)


main()
