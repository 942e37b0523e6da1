"""Read-only queries behind the home page summary and the Browse page. Each takes the caller's session first.

Browsing is paged in SQL (filter on the current label, readability, price and
deleted state, then LIMIT/OFFSET by path), so a page costs the same with ten
images or a hundred thousand. A sample's current label and deleted flag come
from its latest correction, as in `db.queries.samples_frame`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Optional

import pandas as pd
from sqlalchemy import Select, and_, case, false, func, or_, select
from sqlalchemy.orm import Session

from db.models import Correction, Dataset, Sample
from db.queries import correction_counts, dataset_classes, latest_corrections_subquery

Readability = Literal["all", "readable", "unreadable"]
READABILITY = ("all", "readable", "unreadable")

#: Columns of a browse page, in order.
PAGE_COLUMNS = [
    "id", "path", "label", "current_label", "deleted", "readable", "error",
    "price", "title", "file_size", "mtime_ns", "content_hash",
]
HISTORY_COLUMNS = ["id", "when", "reviewer", "action", "change", "note"]


@dataclass(frozen=True)
class BrowseFilter:
    """Which samples a browse page shows. Missing files (vanished from disk) are never shown.

    label: a current label (after corrections), or None for every class.
    readable: "all", "readable" or "unreadable".
    price_range: (low, high) inclusive, in listing currency; None means no price
    filter (samples without a price are shown only then).
    include_deleted: whether samples deleted by a correction are shown.
    """

    label: Optional[str] = None
    readable: Readability = "all"
    price_range: Optional[tuple[float, float]] = None
    include_deleted: bool = False

    def __post_init__(self) -> None:
        if self.readable not in READABILITY:
            raise ValueError(f"unknown readability {self.readable!r}; choose one of: {', '.join(READABILITY)}")
        if self.price_range is not None and self.price_range[0] > self.price_range[1]:
            raise ValueError(f"price range low > high: {self.price_range}")


@dataclass(frozen=True)
class ClassCounts:
    """Images per class, in class order (sorted names). `current` counts by current label, deleted excluded."""

    classes: list[str]
    given: list[int]  # by folder
    current: list[int]  # after corrections


@dataclass(frozen=True)
class DatasetOverview:
    """What the home page shows about one dataset (present files only)."""

    images: int
    readable: int
    unreadable: int
    deleted: int  # by a correction
    relabelled: int  # current label differs from the folder
    price_fixed: int  # a reviewer's price stands
    changed: int  # deleted, relabelled or price fixed: the listings the decisions changed
    missing: int  # recorded by an earlier scan, gone from disk now
    priced: int  # images with a listing price
    corrections: int  # rows in the correction log
    counts: ClassCounts
    unreadable_files: pd.DataFrame  # columns path, reason; sorted by path
    prices: pd.DataFrame  # columns label (current), price; not deleted, price present
    scan_summary: dict[str, Any]  # the last scan's summary (see jobs.scan.scan_dataset), {} before any scan
    scanned_at: Optional[datetime]


@dataclass(frozen=True)
class SampleDetail:
    """Everything known about one sample, for the large view."""

    id: int
    dataset_root: str
    path: str
    absolute_path: str
    label: str  # folder class
    current_label: str
    deleted: bool
    last_correction_id: int  # 0 when there is none
    readable: bool
    error: Optional[str]
    missing: bool
    width: Optional[int]
    height: Optional[int]
    mode: Optional[str]
    file_size: int  # bytes
    mtime_ns: int
    content_hash: Optional[str]
    phash: Optional[str]
    listing_id: Optional[str]
    price: Optional[float]
    title: Optional[str]
    listing_extra: dict[str, Any]  # the other listings.csv columns


def _current_state_select(*columns) -> Select:
    """select(columns..., current_label, deleted) over samples joined to their latest correction."""
    latest = latest_corrections_subquery()
    return (
        select(
            *columns,
            func.coalesce(Correction.new_label, Sample.label).label("current_label"),
            func.coalesce(Correction.deleted, false()).label("deleted"),
        )
        .select_from(Sample)
        .outerjoin(latest, latest.c.sample_id == Sample.id)
        .outerjoin(Correction, Correction.id == latest.c.last_id)
    )


def _filtered(statement: Select, dataset_id: int, browse: BrowseFilter) -> Select:
    current_label = func.coalesce(Correction.new_label, Sample.label)
    deleted = func.coalesce(Correction.deleted, false())
    statement = statement.where(Sample.dataset_id == dataset_id, Sample.missing.is_(False))
    if browse.label is not None:
        statement = statement.where(current_label == browse.label)
    if browse.readable != "all":
        statement = statement.where(Sample.readable.is_(browse.readable == "readable"))
    if browse.price_range is not None:
        low, high = browse.price_range
        statement = statement.where(Sample.price.between(low, high))
    if not browse.include_deleted:
        statement = statement.where(deleted.is_(False))
    return statement


def count_samples(session: Session, dataset_id: int, browse: BrowseFilter) -> int:
    """How many samples `browse` matches."""
    statement = _filtered(_current_state_select(Sample.id), dataset_id, browse).subquery()
    return session.scalar(select(func.count()).select_from(statement)) or 0


def browse_page(session: Session, dataset_id: int, browse: BrowseFilter, *, page: int, per_page: int) -> pd.DataFrame:
    """One page of matching samples, sorted by path; columns PAGE_COLUMNS.

    page: 1-based. A page past the end is empty.
    """
    if page < 1 or per_page < 1:
        raise ValueError(f"page and per_page must be >= 1, got page={page}, per_page={per_page}")
    statement = _filtered(
        _current_state_select(
            Sample.id, Sample.path, Sample.label, Sample.readable, Sample.error,
            Sample.price, Sample.title, Sample.file_size, Sample.mtime_ns, Sample.content_hash,
        ),
        dataset_id, browse,
    ).order_by(Sample.path, Sample.id).limit(per_page).offset((page - 1) * per_page)
    rows = session.execute(statement).mappings().all()
    frame = pd.DataFrame([dict(row) for row in rows], columns=PAGE_COLUMNS)
    for column in ("deleted", "readable"):
        frame[column] = frame[column].astype(bool)
    frame["price"] = frame["price"].astype(float)
    return frame


def price_bounds(session: Session, dataset_id: int) -> Optional[tuple[float, float]]:
    """(lowest, highest) listing price of the dataset's present samples, or None when none has a price."""
    low, high = session.execute(
        select(func.min(Sample.price), func.max(Sample.price))
        .where(Sample.dataset_id == dataset_id, Sample.missing.is_(False))
    ).one()
    return None if low is None else (float(low), float(high))


def dataset_version(session: Session, dataset_id: int) -> str:
    """A cheap fingerprint that changes whenever a scan or a correction changes what the dataset shows.

    Use it as part of a cache key: (last scan time, number and last id of the dataset's corrections).
    """
    scanned_at = session.scalar(select(Dataset.scanned_at).where(Dataset.id == dataset_id))
    count, last_id = session.execute(
        select(func.count(Correction.id), func.max(Correction.id))
        .join(Sample, Sample.id == Correction.sample_id)
        .where(Sample.dataset_id == dataset_id)
    ).one()
    return f"{scanned_at.isoformat() if scanned_at else '-'}|{count}|{last_id or 0}"


def class_counts(session: Session, dataset_id: int) -> ClassCounts:
    """Images per class by folder and by current label (deleted excluded), in sorted class order."""
    classes = dataset_classes(session, dataset_id)
    present = and_(Sample.dataset_id == dataset_id, Sample.missing.is_(False))
    given = dict(session.execute(select(Sample.label, func.count()).where(present).group_by(Sample.label)).all())
    current_query = _filtered(_current_state_select(Sample.id), dataset_id, BrowseFilter()).subquery()
    current = dict(session.execute(
        select(current_query.c.current_label, func.count()).group_by(current_query.c.current_label)
    ).all())
    # A relabel can only target a known class, but keep any stray label visible rather than drop it.
    names = classes + sorted(set(current) - set(classes))
    return ClassCounts(names, [int(given.get(c, 0)) for c in names], [int(current.get(c, 0)) for c in names])


def _state_totals(session: Session, dataset_id: int) -> dict[str, int]:
    """images, readable, deleted, relabelled, price_fixed, changed (any of the three) and priced counts of the
    dataset's present samples, in one pass."""
    state = _current_state_select(Sample.id, Sample.label, Sample.readable, Sample.price,
                                  Correction.new_price.label("fixed_price")).where(
        Sample.dataset_id == dataset_id, Sample.missing.is_(False)
    ).subquery()
    changed = or_(state.c.deleted.is_(True), state.c.current_label != state.c.label, state.c.fixed_price.is_not(None))
    totals = session.execute(select(
        func.count().label("images"),
        func.coalesce(func.sum(case((state.c.readable.is_(True), 1), else_=0)), 0).label("readable"),
        func.coalesce(func.sum(case((state.c.deleted.is_(True), 1), else_=0)), 0).label("deleted"),
        func.coalesce(func.sum(case((state.c.current_label != state.c.label, 1), else_=0)), 0).label("relabelled"),
        func.coalesce(func.sum(case((state.c.fixed_price.is_not(None), 1), else_=0)), 0).label("price_fixed"),
        func.coalesce(func.sum(case((changed, 1), else_=0)), 0).label("changed"),
        func.count(state.c.price).label("priced"),
    )).one()
    return {name: int(value) for name, value in totals._mapping.items()}


def _prices(session: Session, dataset_id: int) -> pd.DataFrame:
    """(label, price) of every present, not deleted sample with a price; label is the current label."""
    state = _current_state_select(Sample.price).where(
        Sample.dataset_id == dataset_id, Sample.missing.is_(False), Sample.price.is_not(None)
    ).subquery()
    rows = session.execute(select(state.c.current_label, state.c.price).where(state.c.deleted.is_(False))).all()
    # Plain tuples: pandas probes each Row object's attributes, which costs more than the query.
    return pd.DataFrame([tuple(row) for row in rows], columns=["label", "price"]).astype({"price": float})


def dataset_overview(session: Session, dataset_id: int) -> DatasetOverview:
    """Counts, class sizes, unreadable files, prices and the last scan summary of one dataset."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise ValueError(f"no dataset with id {dataset_id}")
    totals = _state_totals(session, dataset_id)
    unreadable = session.execute(
        select(Sample.path, Sample.error)
        .where(Sample.dataset_id == dataset_id, Sample.missing.is_(False), Sample.readable.is_(False))
        .order_by(Sample.path)
    ).all()
    missing = session.scalar(
        select(func.count()).where(Sample.dataset_id == dataset_id, Sample.missing.is_(True))
    ) or 0
    return DatasetOverview(
        **totals,
        unreadable=totals["images"] - totals["readable"],
        missing=int(missing),
        corrections=correction_counts(session, dataset_id),
        counts=class_counts(session, dataset_id),
        unreadable_files=pd.DataFrame([tuple(row) for row in unreadable], columns=["path", "reason"]),
        prices=_prices(session, dataset_id),
        scan_summary=json.loads(dataset.last_scan_json) if dataset.last_scan_json else {},
        scanned_at=dataset.scanned_at,
    )


def sample_detail(session: Session, sample_id: int) -> Optional[SampleDetail]:
    """Everything about one sample, with its current state; None when there is no such sample."""
    row = session.execute(
        _current_state_select(Sample, Dataset.root, func.coalesce(Correction.id, 0))
        .join(Dataset, Dataset.id == Sample.dataset_id)
        .where(Sample.id == sample_id)
    ).one_or_none()
    if row is None:
        return None
    sample, root, last_correction_id, current_label, deleted = row
    return SampleDetail(
        id=sample.id, dataset_root=root, path=sample.path, absolute_path=str(Path(root) / sample.path),
        label=sample.label, current_label=current_label, deleted=bool(deleted),
        last_correction_id=int(last_correction_id), readable=sample.readable, error=sample.error,
        missing=sample.missing, width=sample.width, height=sample.height, mode=sample.mode,
        file_size=sample.file_size, mtime_ns=sample.mtime_ns, content_hash=sample.content_hash,
        phash=sample.phash, listing_id=sample.listing_id, price=sample.price, title=sample.title,
        listing_extra=json.loads(sample.listing_json) if sample.listing_json else {},
    )


def _describe_change(correction: Correction) -> str:
    before = f"{correction.old_label}{' (deleted)' if correction.was_deleted else ''}"
    after = f"{correction.new_label}{' (deleted)' if correction.deleted else ''}"
    change = f"{before} -> {after}"
    if correction.reverts_id is not None:
        change += f" (reverts #{correction.reverts_id})"
    return change


def correction_history(session: Session, sample_id: int) -> pd.DataFrame:
    """A sample's decisions, oldest first; columns HISTORY_COLUMNS (change reads "old -> new")."""
    corrections = session.scalars(
        select(Correction).where(Correction.sample_id == sample_id).order_by(Correction.id)
    ).all()
    return pd.DataFrame(
        [
            {"id": c.id, "when": c.created_at, "reviewer": c.reviewer, "action": c.action,
             "change": _describe_change(c), "note": c.note}
            for c in corrections
        ],
        columns=HISTORY_COLUMNS,
    )
