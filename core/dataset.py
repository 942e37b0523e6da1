"""Find the images and classes of a dataset folder, and read its optional listings.csv.

A dataset root's subfolders are classes (torchvision ImageFolder layout); images
may sit in nested subfolders of a class folder. Class order everywhere is
`sorted(class folder names)`.
"""
from __future__ import annotations

import csv
import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from core.imaging import IMAGE_EXTENSIONS

LISTINGS_FILE = "listings.csv"
LISTING_COLUMNS = ("listing_id", "price", "title")


@dataclass(frozen=True)
class FileEntry:
    """One image file found under a class folder.

    path: POSIX path relative to the dataset root; label: its top-level folder;
    size in bytes and mtime in ns (0 when stat failed); stat_error: why the file
    cannot be read at all (broken symlink, symlink loop, permission), else None.
    """

    path: str
    label: str
    size: int
    mtime_ns: int
    stat_error: Optional[str] = None


@dataclass
class DatasetFiles:
    """What walking a dataset root found. classes is sorted; empty_classes have no images."""

    root: Path
    classes: list[str]
    files: list[FileEntry]
    empty_classes: list[str] = field(default_factory=list)


@dataclass
class Listings:
    """listings.csv after validation: one row per distinct path, and what was wrong with the file.

    table columns: path (str), listing_id (str or None), price (float, NaN when
    missing or invalid), title (str or None), extra (dict of the other columns).
    """

    table: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    present: bool = True


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _stat_error(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if error.errno == errno.ENOENT:
        return "broken symlink: target does not exist"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot stat: {error.strerror or error}"


def _file_entry(root: Path, full: Path, label: str) -> FileEntry:
    relative = full.relative_to(root).as_posix()
    try:
        stat = full.stat()
    except OSError as error:
        return FileEntry(relative, label, 0, 0, _stat_error(error))
    return FileEntry(relative, label, stat.st_size, stat.st_mtime_ns)


def _walk_class(root: Path, class_dir: Path, label: str) -> list[FileEntry]:
    """All image files below one class folder, following symlinks but never a directory twice."""
    entries = []
    seen_dirs: set[tuple[int, int]] = set()
    for current, dirnames, filenames in os.walk(class_dir, followlinks=True):
        try:
            stat = os.stat(current)
        except OSError:
            dirnames[:] = []
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in seen_dirs:  # a directory symlink loop: do not descend again
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in sorted(filenames):
            if _is_hidden(name) or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            entries.append(_file_entry(root, Path(current) / name, label))
    return entries


def discover(root: str | os.PathLike) -> DatasetFiles:
    """Walk a dataset root: classes are its non-hidden subfolders, images any file with an image extension."""
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise NotADirectoryError(f"dataset folder does not exist or is not a folder: {root_path}")
    classes = sorted(
        entry.name for entry in os.scandir(root_path)
        if entry.is_dir(follow_symlinks=True) and not _is_hidden(entry.name)
    )
    files: list[FileEntry] = []
    empty = []
    for label in classes:
        class_files = _walk_class(root_path, root_path / label, label)
        if not class_files:
            empty.append(label)
        files.extend(class_files)
    return DatasetFiles(root=root_path, classes=classes, files=files, empty_classes=empty)


def normalise_listing_path(raw: str) -> str:
    """A listings.csv path as a POSIX path relative to the root: backslashes to slashes, no './'."""
    path = raw.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


_PRICE_JUNK = re.compile(r"[\s$€£¥]|(?i:eur|usd|gbp)")


def parse_price(raw: str) -> Optional[float]:
    """A price string as a float: currency symbols and thousands separators dropped; None if not a number."""
    text = _PRICE_JUNK.sub("", raw or "")
    if not text:
        return None
    if "," in text and "." in text:
        text = text.replace(",", "")
    elif text.count(",") == 1 and len(text.split(",")[1]) != 3:
        text = text.replace(",", ".")  # decimal comma, as in "12,50"
    else:
        text = text.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _row_list(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _read_csv_text(path: Path) -> pd.DataFrame:
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, sep=None, engine="python", encoding=encoding,
            )
        except UnicodeDecodeError:
            continue
    raise ValueError("cannot decode the file as UTF-8 or Latin-1")


def _empty_listings() -> pd.DataFrame:
    return pd.DataFrame({"path": pd.Series(dtype=str), "listing_id": pd.Series(dtype=object),
                         "price": pd.Series(dtype=float), "title": pd.Series(dtype=object),
                         "extra": pd.Series(dtype=object)})


def read_listings(root: str | os.PathLike) -> Listings:
    """Read and validate `<root>/listings.csv`. Never raises for bad content: problems are listed instead.

    Rows are numbered as in a spreadsheet (header = row 1). Non-numeric and
    negative prices become NaN; duplicate paths keep their first row.
    """
    path = Path(root) / LISTINGS_FILE
    if not path.is_file():
        return Listings(_empty_listings(), present=False)
    try:
        raw = _read_csv_text(path)
    except (ValueError, pd.errors.ParserError, csv.Error, OSError) as error:
        return Listings(_empty_listings(), [f"{LISTINGS_FILE} could not be read and was ignored: {error}"])
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if "path" not in raw.columns:
        return Listings(_empty_listings(), [
            f"{LISTINGS_FILE} has no 'path' column (columns: {', '.join(raw.columns)}); listing data ignored"
        ])
    problems = []
    missing = [c for c in LISTING_COLUMNS if c not in raw.columns]
    if missing:
        problems.append(f"{LISTINGS_FILE} has no {', '.join(repr(c) for c in missing)} column; left empty")
    row_numbers = np.arange(len(raw)) + 2
    paths = raw["path"].map(normalise_listing_path)
    blank = paths == ""
    if blank.any():
        problems.append(f"{int(blank.sum())} rows have an empty path and were ignored (rows {_row_list(list(row_numbers[blank]))})")
    duplicated = paths.duplicated() & ~blank
    if duplicated.any():
        problems.append(
            f"{int(duplicated.sum())} rows repeat an earlier path and were ignored (rows {_row_list(list(row_numbers[duplicated]))})"
        )
    prices = [None] * len(raw)
    if "price" in raw.columns:
        prices, price_problems = _validate_prices(raw["price"], row_numbers)
        problems.extend(price_problems)
    extra_columns = [c for c in raw.columns if c not in ("path", *LISTING_COLUMNS)]
    table = pd.DataFrame({
        "path": paths,
        "listing_id": raw["listing_id"].replace("", None) if "listing_id" in raw.columns else None,
        "price": pd.Series(prices, dtype=float),
        "title": raw["title"].replace("", None) if "title" in raw.columns else None,
        "extra": raw[extra_columns].to_dict("records") if extra_columns else [{}] * len(raw),
    })
    keep = ~(blank | duplicated)
    return Listings(table[keep.to_numpy()].reset_index(drop=True), problems)


def _validate_prices(column: pd.Series, row_numbers: np.ndarray) -> tuple[list[Optional[float]], list[str]]:
    values, non_numeric, negative = [], [], []
    for raw, row in zip(column, row_numbers):
        value = parse_price(raw)
        if value is None and raw.strip():
            non_numeric.append(int(row))
        elif value is not None and value < 0:
            negative.append(int(row))
            value = None
        values.append(value)
    problems = []
    if non_numeric:
        problems.append(f"{len(non_numeric)} rows have a non-numeric price, treated as missing (rows {_row_list(non_numeric)})")
    if negative:
        problems.append(f"{len(negative)} rows have a negative price, treated as missing (rows {_row_list(negative)})")
    return values, problems
