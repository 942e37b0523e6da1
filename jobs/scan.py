"""Scan a dataset folder into the database: new and changed files inspected, vanished ones marked missing.

Identity is (dataset, relative path): a rescan updates rows in place, so every
correction stays attached. Unchanged files (same size and mtime) are not re-read.
"""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Optional

import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.executors import resolve_executor
from core.imaging import ImageInfo
from core.progress import ProgressCallback
from core.scan.inspect import inspect_files
from core.scan.listings import match_listing_paths, read_listings
from core.scan.walk import FileEntry, discover, skipped_warnings, some_paths
from db.corrections import in_effect
from db.evaluation import ensure_evaluation_split
from db.models import Correction, Dataset, Job, Sample, utcnow
from db.moves import carry_moved_decisions
from db.queries import (apply_listings, get_or_create_dataset, known_files, listing_values, mark_missing,
                        store_dataset_scan)
from jobs.runner import job_params

INSPECT_SHARE = 0.9  # of the progress bar


def _sample_values(entry: FileEntry, info: ImageInfo, scanned_at: datetime) -> dict:
    stats = info.stats
    return {
        "path": entry.path, "label": entry.label, "file_size": entry.size, "mtime_ns": entry.mtime_ns,
        "content_hash": info.content_hash, "phash": info.phash, "width": info.width, "height": info.height,
        "mode": info.mode, "readable": info.error is None, "error": info.error,
        "brightness": stats.brightness if stats else None, "contrast": stats.contrast if stats else None,
        "sharpness": stats.sharpness if stats else None, "entropy": stats.entropy if stats else None,
        "colorfulness": stats.colorfulness if stats else None,
        "missing": False, "scanned_at": scanned_at,
    }


def _needs_inspection(entry: FileEntry, known: Optional[tuple[int, int, int]], unreadable: set[str]) -> bool:
    """New, changed (size or mtime), or unreadable last time: a permission fixed or a file system
    remounted makes a file readable without touching its mtime, so failures are always retried."""
    if known is None or entry.stat_error is not None or entry.path in unreadable:
        return True
    return (known[1], known[2]) != (entry.size, entry.mtime_ns)


def _unreadable_paths(session: Session, dataset_id: int) -> set[str]:
    return set(session.scalars(
        select(Sample.path).where(Sample.dataset_id == dataset_id, Sample.readable.is_(False))
    ))


def _store_inspected(session: Session, dataset_id: int, entries: list[FileEntry], infos: list[ImageInfo],
                     known: dict[str, tuple[int, int, int]], listings: pd.DataFrame) -> None:
    """Insert new samples (with their listing columns), update re-read ones in place."""
    listing_rows = {row.path: row for row in listings.itertuples(index=False)}
    now = utcnow()
    inserts, updates = [], []
    for entry, info in zip(entries, infos):
        values = _sample_values(entry, info, now)
        if entry.path in known:
            updates.append({"id": known[entry.path][0], **values})
        else:
            inserts.append({
                "dataset_id": dataset_id, "first_seen_at": now, **values,
                **listing_values(listing_rows.get(entry.path)),
            })
    if inserts:
        session.execute(insert(Sample), inserts)
    if updates:
        session.execute(update(Sample), updates)


def _decided_files_replaced(session: Session, entries: list[FileEntry], infos: list[ImageInfo],
                            known: dict[str, tuple[int, int, int]]) -> list[str]:
    """Paths of re-read files whose bytes changed (a new content hash) although review decisions on them are
    in effect: the decisions were made on the old picture. Call before the new hashes are stored."""
    new_hashes = {known[entry.path][0]: (entry.path, info.content_hash) for entry, info in zip(entries, infos)
                  if entry.path in known and info.content_hash}
    replaced = []
    ids = list(new_hashes)
    for start in range(0, len(ids), 10_000):
        chunk = ids[start:start + 10_000]
        old = dict(session.execute(select(Sample.id, Sample.content_hash).where(Sample.id.in_(chunk))).all())
        changed = [i for i in chunk if old.get(i) and old[i] != new_hashes[i][1]]
        if changed:
            decided = set(session.scalars(select(Correction.sample_id)
                                          .where(Correction.sample_id.in_(changed), in_effect()).distinct()))
            replaced += [new_hashes[i][0] for i in changed if i in decided]
    return sorted(replaced)


def replaced_warning(paths: list[str]) -> list[str]:
    if not paths:
        return []
    many = len(paths) != 1
    return [f"{len(paths):,} file{'s' if many else ''} with review decisions {'were' if many else 'was'} replaced by "
            f"a different picture since the last scan; {'their' if many else 'its'} decisions still apply, so "
            f"check {'them' if many else 'it'}: {some_paths(paths)}"]


def moved_note(moved: list[tuple[str, str]]) -> list[str]:
    """One line naming the files whose decisions followed them to a new path (db.moves)."""
    if not moved:
        return []
    shown = [f"{before} -> {after}" for before, after in moved]
    many = len(moved) != 1
    return [f"decisions on {len(moved):,} file{'s' if many else ''} that moved since the last scan (same content) "
            f"were carried to {'their' if many else 'its'} new path{'s' if many else ''}: {some_paths(shown)}"]


def _file_changes(files: list[FileEntry], known: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """{new, updated, unchanged}: files not seen before, files whose size or mtime changed, the rest."""
    new = sum(1 for entry in files if entry.path not in known)
    updated = sum(
        1 for entry in files
        if entry.path in known and known[entry.path][1:] != (entry.size, entry.mtime_ns)
    )
    return {"new": new, "updated": updated, "unchanged": len(files) - new - updated}


def listings_by_image(table: pd.DataFrame, image_paths: list[str]) -> pd.DataFrame:
    """The listings table with each row's path replaced by the image path it matches (see match_listing_paths).

    Rows that match no image keep their own path (they count as unmatched listings).
    """
    matches = match_listing_paths(table["path"], image_paths)
    joined = table.copy()
    joined["path"] = [matches.get(path, path) for path in table["path"]]
    return joined


def summarise(session: Session, dataset: Dataset, classes: list[str], listings_paths: set[str],
              problems: list[str]) -> dict:
    """The scan summary: counts per class, unreadable files, listing join counts (see the scan command)."""
    rows = session.execute(
        select(Sample.path, Sample.label, Sample.readable, Sample.error)
        .where(Sample.dataset_id == dataset.id, Sample.missing.is_(False))
        .order_by(Sample.path)
    ).all()
    per_class = {label: 0 for label in classes}
    unreadable = []
    image_paths = set()
    without_listing = 0
    for path, label, readable, error in rows:
        per_class[label] = per_class.get(label, 0) + 1
        image_paths.add(path)
        if not readable:
            unreadable.append({"path": path, "reason": error})
        if path not in listings_paths:
            without_listing += 1
    return {
        "dataset_id": dataset.id,
        "root": dataset.root,
        "images": len(rows),
        "classes": per_class,
        "empty_classes": [c for c, n in per_class.items() if n == 0],
        "unreadable": unreadable,
        "unmatched_listings": len(listings_paths - image_paths),
        "images_without_listing": without_listing,
        "listings_problems": problems,
    }


@contextmanager
def _cyclic_gc_paused():
    """Pause Python's cyclic garbage collector, restoring its state after.

    A scan allocates tens of thousands of small objects that live until it ends
    (file entries, results, row dicts); each full collection they trigger walks
    every object of the process, pandas and SQLAlchemy included (about 0.1 s a
    time, several times per 4,000 images). Reference counting still frees
    everything that is not in a cycle; cycles wait for the next collection.
    Worker processes forked meanwhile inherit the pause, which spares them from
    walking (and copying) the parent's objects; inspecting an image makes no cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def scan_dataset(factory: sessionmaker[Session], root: str | Path, *, workers: Optional[int] = None,
                 progress: Optional[ProgressCallback] = None, executor: str = "local") -> dict:
    """Scan `root` into the database and return the summary dict (also stored on the dataset); the images
    are inspected by `executor` ("local" or "ray", core.scan.inspect.inspect_files).

    Summary keys: dataset_id, root, images (present files, readable or not),
    classes (name -> count, sorted), empty_classes, unreadable [{path, reason}],
    unmatched_listings (listings.csv rows matching no image), images_without_listing,
    listings_problems, listings_file (whether there is one), new, updated (size or
    mtime changed), unchanged, missing (samples whose file is gone), skipped
    (reason -> count of what the walk left out: links leading outside the folder,
    images outside class folders, formats the scan cannot decode; see
    core.scan.walk.DatasetFiles), warnings (one line per skipped reason, with a
    few paths), seconds. Unchanged files are not read again unless they were
    unreadable last time.
    """
    with _cyclic_gc_paused():
        return _scan(factory, root, workers=workers, progress=progress, executor=executor)


def _scan(factory: sessionmaker[Session], root: str | Path, *, workers: Optional[int],
          progress: Optional[ProgressCallback], executor: str) -> dict:
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    report(0.0, "listing files")
    files = discover(root)
    listings = read_listings(files.root)
    listings_table = listings_by_image(listings.table, [entry.path for entry in files.files])
    with factory.begin() as session:
        dataset_id = get_or_create_dataset(session, files.root).id
        known = known_files(session, dataset_id)
        unreadable = _unreadable_paths(session, dataset_id)
    to_inspect = [e for e in files.files if _needs_inspection(e, known.get(e.path), unreadable)]
    infos = inspect_files(
        files.root, to_inspect,
        workers=workers, progress=lambda f, m: report(f * INSPECT_SHARE, m), executor=executor,
    )
    report(INSPECT_SHARE, "saving")
    with factory.begin() as session:
        dataset = session.get(Dataset, dataset_id)
        replaced = _decided_files_replaced(session, to_inspect, infos, known)
        _store_inspected(session, dataset_id, to_inspect, infos, known, listings_table)
        missing = mark_missing(session, dataset_id, {e.path for e in files.files})
        moved = carry_moved_decisions(session, dataset_id, [e.path for e in to_inspect if e.path not in known])
        apply_listings(session, dataset_id, listings_table)
        joined_split = ensure_evaluation_split(session, dataset_id)
        summary = summarise(session, dataset, files.classes, set(listings_table["path"]), listings.problems)
        summary.update(
            **_file_changes(files.files, known), missing=missing, listings_file=listings.present,
            skipped={reason: len(paths) for reason, paths in files.skipped.items()},
            warnings=skipped_warnings(files.skipped), decision_notes=replaced_warning(replaced) + moved_note(moved),
            carried_decisions=len(moved),
            evaluation_split_added=joined_split, seconds=round(time.perf_counter() - started, 3),
        )
        store_dataset_scan(session, dataset, summary)
    report(1.0, f"scanned {summary['images']} image{'' if summary['images'] == 1 else 's'}")
    return summary


def run_scan_job(factory: sessionmaker[Session], job_id: int, reporter) -> dict:
    """Job entry point: params {"root": str, "workers": int | None, "executor": "local" | "ray" (optional;
    absent: core.executors.resolve_executor's default)}."""
    with factory() as session:
        params = job_params(session.get(Job, job_id))
    return scan_dataset(factory, params["root"], workers=params.get("workers"), progress=reporter,
                        executor=resolve_executor(params.get("executor")))
