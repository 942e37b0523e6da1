"""Typed SQLAlchemy models: datasets, samples, append-only corrections, jobs, flags, training logs.

Labels are never overwritten: a sample's folder class is `Sample.label`, and its
current state is the state after its latest `Correction` (see db.queries).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


#: 64 bits on every backend: BIGINT on PostgreSQL, SQLite's INTEGER (64-bit already) there.
BIG_INTEGER = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Dataset(Base):
    """A dataset root folder: subfolders are classes (ImageFolder layout)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    root: Mapped[str] = mapped_column(String, unique=True)  # absolute, resolved path
    name: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    scanned_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    # JSON: the last scan's summary (listings.csv problems, counts) for display.
    last_scan_json: Mapped[Optional[str]] = mapped_column(Text)

    samples: Mapped[list["Sample"]] = relationship(back_populates="dataset")


class Sample(Base):
    """One image file of a dataset. Identity is (dataset, path) and survives rescans."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("dataset_id", "path", name="uq_sample_path"),
        # A class's samples: its prices without reading the rows (Review's price evidence), and its
        # examples in content-hash order, read up to the few shown (revision 0004).
        Index("ix_samples_class_price", "dataset_id", "label", "missing", "price"),
        Index("ix_samples_class_hash", "dataset_id", "label", "content_hash"),
        Index("ix_samples_content_hash", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String)  # POSIX path relative to the dataset root
    label: Mapped[str] = mapped_column(String)  # class given by its top-level folder
    file_size: Mapped[int] = mapped_column(BIG_INTEGER)  # bytes
    mtime_ns: Mapped[int] = mapped_column(BIG_INTEGER)
    content_hash: Mapped[Optional[str]] = mapped_column(String(64))  # sha256 hex of the bytes
    phash: Mapped[Optional[str]] = mapped_column(String(16))  # 64-bit pHash, 16 hex digits
    width: Mapped[Optional[int]] = mapped_column(Integer)  # pixels, after EXIF rotation
    height: Mapped[Optional[int]] = mapped_column(Integer)
    mode: Mapped[Optional[str]] = mapped_column(String(16))  # PIL mode of the file
    readable: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    error: Mapped[Optional[str]] = mapped_column(Text)  # why it is unreadable
    # Image statistics measured on the decoded thumbnail (see core.imaging.ImageStats).
    brightness: Mapped[Optional[float]] = mapped_column(Float)  # mean luma, 0..1
    contrast: Mapped[Optional[float]] = mapped_column(Float)  # std of luma, 0..1
    sharpness: Mapped[Optional[float]] = mapped_column(Float)  # variance of Laplacian on 0..255 luma
    entropy: Mapped[Optional[float]] = mapped_column(Float)  # luma histogram entropy, bits (0..8)
    colorfulness: Mapped[Optional[float]] = mapped_column(Float)  # mean chroma spread, 0..1
    # listings.csv columns (None when the image has no listing row).
    listing_id: Mapped[Optional[str]] = mapped_column(String)
    price: Mapped[Optional[float]] = mapped_column(Float)
    title: Mapped[Optional[str]] = mapped_column(Text)
    listing_json: Mapped[Optional[str]] = mapped_column(Text)  # extra CSV columns as JSON
    missing: Mapped[bool] = mapped_column(Boolean, default=False, index=True)  # vanished from disk
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    scanned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="samples")


class Correction(Base):
    """Append-only log of review decisions. Each row records the sample's state after it.

    action: relabel | delete | keep | restore | undo. `new_label` and `deleted` are
    the state after this decision; `old_label` and `was_deleted` the state before.
    An undo points at the decision it reverts through `reverts_id`; `previous_id`
    chains each sample's decisions into one linear history.
    """

    __tablename__ = "corrections"
    __table_args__ = (
        Index("ix_corrections_sample_id_id", "sample_id", "id"),
        # Optimistic concurrency: two decisions made on the same previous state
        # cannot both land; the second fails and its reviewer is told.
        UniqueConstraint("sample_id", "previous_id", name="uq_correction_previous"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    old_label: Mapped[str] = mapped_column(String)
    new_label: Mapped[str] = mapped_column(String)
    was_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewer: Mapped[str] = mapped_column(String, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    previous_id: Mapped[int] = mapped_column(Integer, default=0)  # the sample's latest correction before this, 0 if none
    reverts_id: Mapped[Optional[int]] = mapped_column(ForeignKey("corrections.id"))
    flag_id: Mapped[Optional[int]] = mapped_column(ForeignKey("flags.id", ondelete="SET NULL"), index=True)
    # Decisions made by one action (a bulk accept, "keep one, delete the rest", an import)
    # share a batch id, so "undo my last decision" reverts the whole action.
    batch_id: Mapped[Optional[str]] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # A reviewer's fix of the listing's price, before and after (revision 0002). Not written yet:
    # reserved for price decisions, so that adding them needs no schema change.
    old_price: Mapped[Optional[float]] = mapped_column(Float)
    new_price: Mapped[Optional[float]] = mapped_column(Float)


class Job(Base):
    """A long-running piece of work (scan, audit, train) run in its own process.

    status: queued | running | succeeded | failed | cancelled. The worker writes
    progress (0..1) and a message; `heartbeat_at` and `pid` let readers detect a
    dead worker. `params_json` is the job's config; `result_json` its outcome.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_dataset_kind", "dataset_id", "kind"),
                      Index("ix_jobs_kind_number", "kind", "number", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    result_json: Mapped[Optional[str]] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[Optional[str]] = mapped_column(Text)
    pid: Mapped[Optional[int]] = mapped_column(Integer)
    host: Mapped[Optional[str]] = mapped_column(String)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    #: The job's name among the jobs of its kind in this database (Run 1, Audit 1, ...), in the order they
    #: were made. The CLI and the pages take and show it; the job id stays internal.
    number: Mapped[Optional[int]] = mapped_column(Integer)


class Flag(Base):
    """One suspected problem with one sample, found by one audit job (kind = check name)."""

    __tablename__ = "flags"
    __table_args__ = (
        # The review queue: an audit's flags worst first, all kinds or some, with every column its
        # conditions read (kind, duplicate group, sample), so counting and paging never read the rows
        # (revision 0004).
        Index("ix_flags_queue", "job_id", "score", "id", "kind", "group_id", "sample_id"),
        Index("ix_flags_queue_kind", "job_id", "kind", "score", "id", "group_id", "sample_id"),
        Index("ix_flags_sample", "sample_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # mislabel | price | duplicate | broken | quality ...
    score: Mapped[float] = mapped_column(Float)  # in [0, 1], lower is worse
    given_label: Mapped[str] = mapped_column(String)
    suggested_label: Mapped[Optional[str]] = mapped_column(String)
    group_id: Mapped[Optional[int]] = mapped_column(Integer)  # duplicate group, per job
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence_json: Mapped[str] = mapped_column(Text, default="{}")


class EvaluationSide(Base):
    """A listing's side of its dataset's evaluation split (core.train.eval_split), stored once and never changed:
    every training run of the dataset is scored on the same listings (revision 0005)."""

    __tablename__ = "evaluation_split"

    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    evaluation: Mapped[bool] = mapped_column(Boolean)  # True: evaluation; False: training
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Embedding(Base):
    """Cached image embedding per content hash and backbone (float32 bytes)."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("content_hash", "backbone", name="uq_embedding"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    backbone: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class TrainEpoch(Base):
    """Per-epoch training log of a train job, for live curves."""

    __tablename__ = "train_epochs"
    __table_args__ = (UniqueConstraint("job_id", "epoch", name="uq_train_epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float] = mapped_column(Float)
    train_accuracy: Mapped[Optional[float]] = mapped_column(Float)
    val_loss: Mapped[Optional[float]] = mapped_column(Float)
    val_accuracy: Mapped[Optional[float]] = mapped_column(Float)
    lr: Mapped[Optional[float]] = mapped_column(Float)
    seconds: Mapped[Optional[float]] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Setting(Base):
    """A database-wide value by name, e.g. `database_id`, the database's random identity (db.runs.database_identity)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
