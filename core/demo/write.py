"""Write a planned demo: the photos (in parallel), their copies, the broken files and the two tables.
"""
from __future__ import annotations

import io
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from PIL import Image

from core.demo.styles import DemoStyle, Progress, label_title

LISTING_COLUMNS = ["path", "listing_id", "price", "title", "seller_id"]
#: Columns of truth.csv for every style; a style may add columns after these (the photos style does).
TRUTH_COLUMNS = [
    "path", "true_label", "given_label", "is_mislabel", "is_duplicate", "duplicate_of", "duplicate_kind",
    "is_price_typo", "true_price", "is_broken", "broken_kind",
]
_BROKEN_SOURCE_SHARE = 0.4  # truncated files keep this share of the real file's bytes
_HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><p>The requested image was not found on this server.</p></body></html>\n"
)
_XML_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\n"
)
# Bytes written over a JPEG's segments right after its FF D8 FF magic: no valid marker starts with 0x13.
_GARBLE = bytes(range(0x13, 0x13 + 61))


def _encode(image: Image.Image, image_format: str, *, quality: int = 90) -> bytes:
    """The bytes of `image` saved as "JPEG" (at `quality`) or "PNG"."""
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, image_format)
    return buffer.getvalue()


def _copy_bytes(original: bytes, kind: str, *, quality: int, scale: float) -> bytes:
    """A re-upload of an image file: byte-identical ("exact"), re-encoded, resized by `scale`, or as PNG.

    Never cropped or flipped: perceptual hashes of copies match their original's.
    """
    if kind == "exact":
        return original
    with Image.open(io.BytesIO(original)) as opened:
        image = opened.convert("RGB")
    if kind == "resized":
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return _encode(image, "PNG" if kind == "png" else "JPEG", quality=quality)


def _broken_bytes(kind: str, photo: Image.Image) -> bytes:
    """The contents of an unreadable file of `kind` (one of BROKEN_KINDS), made from a real photo."""
    if kind == "empty":
        return b""
    if kind == "html_as_jpg":
        return _HTML_ERROR_PAGE
    if kind == "text_as_png":
        return _XML_ACCESS_DENIED
    data = _encode(photo, "PNG" if kind == "truncated_png" else "JPEG", quality=90)
    if kind == "garbled_header":
        return data[:3] + _GARBLE + data[3 + len(_GARBLE):]
    return data[: int(len(data) * _BROKEN_SOURCE_SHARE)]


@dataclass(frozen=True)
class DemoPlan:
    """Everything to write, one row per file: listing photos, their re-uploaded copies, broken files."""

    photos: pd.DataFrame
    copies: pd.DataFrame
    broken: pd.DataFrame


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


_PARALLEL_MIN_PHOTOS = 200  # below this, starting processes costs more than it saves
_PARALLEL_CHUNK = 25  # photos per task handed to a worker process
# What forked workers render: (style, source, photos, root), set by the parent just before it forks.
_fork_job: Optional[tuple[DemoStyle, Any, pd.DataFrame, Path]] = None


def _worker_count(style: DemoStyle, photos: int) -> int:
    """Processes to render with: one, or up to four where the style allows it and fork is available."""
    if not style.parallel or photos < _PARALLEL_MIN_PHOTOS or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _write_photo(style: DemoStyle, source: Any, root: Path, row: Any) -> None:
    _save(root / row.path, _encode(style.render(source, row), "JPEG", quality=style.quality(row)))


def _write_chunk(bounds: tuple[int, int]) -> int:
    """In a forked worker: render and save photos[start:stop] of the parent's job; returns how many."""
    style, source, photos, root = _fork_job
    for row in photos.iloc[bounds[0]: bounds[1]].itertuples():
        _write_photo(style, source, root, row)
    return bounds[1] - bounds[0]


def write_photos(photos: pd.DataFrame, style: DemoStyle, source: Any, root: Path, *,
                  progress: Progress, span: tuple[float, float]) -> None:
    """Render and save every listing photo as JPEG, reporting progress from span[0] to span[1].

    Styles that allow it render in forked processes; every photo depends only on its planned row, so the
    files are the same either way.
    """
    global _fork_job
    workers = _worker_count(style, len(photos))
    if workers == 1:
        step = max(1, len(photos) // 200)
        for done, row in enumerate(photos.itertuples(), start=1):
            _write_photo(style, source, root, row)
            if done % step == 0 or done == len(photos):
                progress(span[0] + (span[1] - span[0]) * done / len(photos), f"photo {done}/{len(photos)}")
        return
    chunks = [(start, min(start + _PARALLEL_CHUNK, len(photos))) for start in range(0, len(photos), _PARALLEL_CHUNK)]
    _fork_job = (style, source, photos, root)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            done = 0
            for count in pool.imap_unordered(_write_chunk, chunks):
                done += count
                progress(span[0] + (span[1] - span[0]) * done / len(photos), f"photo {done}/{len(photos)}")
    finally:
        _fork_job = None


def write_copies(copies: pd.DataFrame, root: Path) -> None:
    """Save every re-upload, made from its original's file bytes."""
    for row in copies.itertuples():
        original = (root / row.duplicate_of).read_bytes()
        _save(root / row.path, _copy_bytes(original, row.duplicate_kind, quality=row.quality, scale=row.scale))


def write_broken(broken: pd.DataFrame, style: DemoStyle, source: Any, root: Path) -> None:
    """Save every unreadable file, made from a freshly rendered photo where its kind needs one."""
    for row in broken.itertuples():
        _save(root / row.path, _broken_bytes(row.broken_kind, style.render(source, row)))


def _tables(plan: DemoPlan, style: DemoStyle, *, titles: bool, prices: bool,
            label_titles: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """listings.csv (sorted by listing id) and truth.csv (sorted by path), one row per file each.

    Without `titles` every title is empty; with `label_titles` every title only repeats the given folder's
    class (`label_title`, truth's title_kind "label"); without `prices` every price is empty and nothing
    counts as a price typo (the photos and labels are the same as with them).
    """
    files = pd.concat([plan.photos, plan.copies, plan.broken], ignore_index=True)
    for column in ("duplicate_of", "duplicate_kind", "broken_kind"):
        files[column] = files[column].fillna("")
    files["is_mislabel"] = files["given_label"] != files["true_label"]
    files["is_duplicate"] = files["duplicate_kind"] != ""
    files["is_broken"] = files["broken_kind"] != ""
    if not titles:
        files["title"] = ""
        if "title_kind" in files.columns:
            files["title_kind"] = "none"
    elif label_titles:
        files["title"] = [label_title(label, listing) for label, listing in zip(files["given_label"], files["listing_id"])]
        if "title_kind" in files.columns:
            files["title_kind"] = "label"
    if not prices:
        files[["price", "true_price"]] = np.nan
        files["is_price_typo"] = False
    flags = ["is_mislabel", "is_duplicate", "is_price_typo", "is_broken"]
    files[flags] = files[flags].astype(bool).astype(int)
    listings = files.sort_values("listing_id")[LISTING_COLUMNS]
    truth = files.sort_values("path")[TRUTH_COLUMNS + list(style.extra_truth_columns)]
    return listings, truth


def write_tables(plan: DemoPlan, style: DemoStyle, root: Path, *, titles: bool, prices: bool,
                  label_titles: bool = False) -> pd.DataFrame:
    """Write listings.csv and truth.csv into `root`; returns the truth table."""
    listings, truth = _tables(plan, style, titles=titles, prices=prices, label_titles=label_titles)
    listings.to_csv(root / "listings.csv", index=False, float_format="%.2f", lineterminator="\n")
    truth.to_csv(root / "truth.csv", index=False, float_format="%.2f", lineterminator="\n")
    return truth
