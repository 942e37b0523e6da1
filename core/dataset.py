"""Find the images and classes of a dataset folder, and read its optional listings.csv.

A dataset root's subfolders are classes (torchvision ImageFolder layout); images
may sit in nested subfolders of a class folder. Class order everywhere is
`sorted(class folder names)`.
"""
from __future__ import annotations

import csv
import errno
import io
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from core.imaging import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

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


def _display_path(relative: str) -> str:
    """`relative` as storable text: bytes that are not UTF-8 (surrogate-escaped by os) shown as \\xNN."""
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _file_entry(entry: os.DirEntry, relative: str, label: str) -> FileEntry:
    shown = _display_path(relative)
    if shown != relative:
        return FileEntry(shown, label, 0, 0, "file or folder name is not valid UTF-8; rename it to scan it")
    try:
        stat = entry.stat()
    except OSError as error:
        return FileEntry(relative, label, 0, 0, _stat_error(error))
    if not S_ISREG(stat.st_mode):  # reading a FIFO or a device would block or never end
        return FileEntry(relative, label, 0, 0, "not a regular file (a pipe, socket or device)")
    return FileEntry(relative, label, stat.st_size, stat.st_mtime_ns)


def _is_image_name(name: str) -> bool:
    return not _is_hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _directory_key(entry: os.DirEntry) -> Optional[tuple[int, int]]:
    """(device, inode) of the folder `entry` names, following symlinks; None when it is not a folder."""
    try:
        if not entry.is_dir(follow_symlinks=True):
            return None
        stat = entry.stat(follow_symlinks=True)
    except OSError:  # a symlink loop or a vanished entry is not a folder
        return None
    return stat.st_dev, stat.st_ino


def _walk_class(root: Path, folder: str, label: str, seen_dirs: set[tuple[int, int]]) -> list[FileEntry]:
    """All image files below one class folder, following symlinks.

    seen_dirs holds the folders already claimed (the root and every class
    folder from the start): a folder is listed at most once, so symlink loops
    end and a link to another class folder does not pull its images in here.
    """
    entries = []
    pending = [folder]  # folders to list, relative to root
    while pending:
        relative_dir = pending.pop()
        try:
            with os.scandir(root / relative_dir) as listing:
                children = list(listing)
        except OSError as error:
            log.warning("cannot list folder %s: %s", relative_dir, error.strerror or error)
            continue
        for child in children:
            if _is_hidden(child.name):
                continue
            relative = f"{relative_dir}/{child.name}"
            key = _directory_key(child)
            if key is not None:
                if key not in seen_dirs:
                    seen_dirs.add(key)
                    pending.append(relative)
            elif _is_image_name(child.name):
                entries.append(_file_entry(child, relative, label))
    return entries


def discover(root: str | os.PathLike) -> DatasetFiles:
    """Walk a dataset root: classes are its non-hidden subfolders, images any file with an image extension."""
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise NotADirectoryError(f"dataset folder does not exist or is not a folder: {root_path}")
    root_stat = root_path.stat()
    seen_dirs = {(root_stat.st_dev, root_stat.st_ino)}
    folders = []
    with os.scandir(root_path) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        key = None if _is_hidden(entry.name) else _directory_key(entry)
        if key is not None and key not in seen_dirs:  # a link to another class folder is not a class
            seen_dirs.add(key)
            folders.append(entry.name)
    files: list[FileEntry] = []
    classes, empty = [], []
    for folder in folders:
        label = _display_path(folder)
        class_files = sorted(_walk_class(root_path, folder, label, seen_dirs), key=lambda entry: entry.path)
        if not class_files:
            empty.append(label)
        classes.append(label)
        files.extend(class_files)
    return DatasetFiles(root=root_path, classes=sorted(classes), files=files, empty_classes=empty)


def normalise_listing_path(raw: str) -> str:
    """A listings.csv path as a POSIX path relative to the root: backslashes to slashes, no './'."""
    path = raw.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def _match_key(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


def match_listing_paths(listing_paths: Iterable[str], image_paths: Iterable[str]) -> dict[str, str]:
    """Which image each listings.csv path (already normalised) refers to: listing path -> image path.

    An exact match wins; otherwise paths are compared ignoring case and Unicode
    normalisation (files copied from Windows or macOS), and leading folders of
    the listing path are dropped one at a time (absolute paths, or paths from a
    parent folder, as in "C:/data/shop/shoes/1.jpg" for "shoes/1.jpg"). Each
    image is claimed by at most one listing path, exact matches first; paths
    that match nothing are left out.
    """
    images = set(image_paths)
    listing_paths = list(dict.fromkeys(listing_paths))
    matches = {path: path for path in listing_paths if path in images}
    claimed = set(matches.values())
    by_key: dict[str, Optional[str]] = {}
    for image in images - claimed:
        key = _match_key(image)
        by_key[key] = None if key in by_key else image  # None: two images differ only in case
    for path in listing_paths:
        if path in matches:
            continue
        parts = _match_key(path).split("/")
        for start in range(len(parts) - 1):
            image = by_key.get("/".join(parts[start:]))
            if image is not None and image not in claimed:
                matches[path] = image
                claimed.add(image)
                break
    return matches


_PRICE_JUNK = re.compile(r"[\s'$€£¥]|(?i:eur|usd|gbp)")
_DELIMITERS = (",", ";", "\t", "|")


def parse_price(raw: str) -> Optional[float]:
    """A price string as a float; None if it is not a number.

    Currency symbols and codes are dropped. When both "," and "." occur, the
    last one is the decimal mark ("1.299,00" and "1,299.00" are 1299); a lone
    comma followed by other than three digits is a decimal comma ("12,50");
    otherwise commas, and repeated dots, separate thousands. A single dot is
    always a decimal point ("1.299" is 1.299).
    """
    text = _PRICE_JUNK.sub("", raw or "")
    if not text:
        return None
    if "," in text and "." in text:
        decimal, thousands = (",", ".") if text.rfind(",") > text.rfind(".") else (".", ",")
        text = text.replace(thousands, "").replace(decimal, ".")
    elif text.count(",") == 1 and len(text.split(",")[1]) != 3:
        text = text.replace(",", ".")
    elif text.count(".") > 1:
        text = text.replace(".", "")
    else:
        text = text.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _rows_have(count: int) -> str:
    return "1 row has" if count == 1 else f"{count} rows have"


def _row_list(rows, limit: int = 5) -> str:
    """'row 3' or 'rows 3, 5, 8 and 2 more' (spreadsheet row numbers)."""
    rows = [int(row) for row in rows]
    shown = ", ".join(str(row) for row in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{'row' if len(rows) == 1 else 'rows'} {shown}{more}"


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Latin-1 (which accepts any bytes)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _guess_delimiter(header_line: str) -> str:
    """The most frequent of , ; tab | in the header line (comma when none occurs)."""
    counts = {delimiter: header_line.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


@dataclass
class _CsvRows:
    """A CSV file split into a header and records; `row` numbers are spreadsheet rows (header = 1)."""

    header: list[str]
    rows: list[int]
    records: list[list[str]]
    too_long: list[int]


def _read_csv_rows(path: Path) -> _CsvRows:
    text = _decode(path.read_bytes())
    delimiter = _guess_delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    rows, records, too_long = [], [], []
    for row, record in enumerate(reader, start=2):
        if not any(field.strip() for field in record):
            continue
        if len(record) > len(header):
            too_long.append(row)
            continue
        rows.append(row)
        records.append(record + [""] * (len(header) - len(record)))
    return _CsvRows(header, rows, records, too_long)


def _empty_listings() -> pd.DataFrame:
    return pd.DataFrame({"path": pd.Series(dtype=str), "listing_id": pd.Series(dtype=object),
                         "price": pd.Series(dtype=float), "title": pd.Series(dtype=object),
                         "extra": pd.Series(dtype=object)})


def read_listings(root: str | os.PathLike) -> Listings:
    """Read and validate `<root>/listings.csv`. Never raises for bad content: problems are listed instead.

    The delimiter (, ; tab |) is taken from the header line; the encoding is
    UTF-8 or else Latin-1. Rows are numbered as in a spreadsheet (header = row 1).
    Rows with more fields than the header are ignored; non-numeric and negative
    prices become NaN; duplicate paths keep their first row.
    """
    path = Path(root) / LISTINGS_FILE
    if not path.is_file():
        return Listings(_empty_listings(), present=False)
    try:
        csv_rows = _read_csv_rows(path)
    except (csv.Error, OSError) as error:
        return Listings(_empty_listings(), [f"{LISTINGS_FILE} could not be read and was ignored: {error}"])
    header = csv_rows.header
    if "path" not in header:
        shown = ", ".join(repr(name) for name in header[:10])
        return Listings(_empty_listings(), [
            f"{LISTINGS_FILE} has no 'path' column (columns: {shown}); listing data ignored"
        ])
    problems = []
    if len(set(header)) != len(header):
        problems.append(f"{LISTINGS_FILE} repeats a column name; the first column of each name is used")
    if csv_rows.too_long:
        problems.append(
            f"{_rows_have(len(csv_rows.too_long))} more fields than the header, perhaps an unquoted delimiter "
            f"({_row_list(csv_rows.too_long)}); ignored"
        )
    missing = [c for c in LISTING_COLUMNS if c not in header]
    if missing:
        problems.append(f"{LISTINGS_FILE} has no {', '.join(repr(c) for c in missing)} column; left empty")
    column_index: dict[str, int] = {}
    for index, name in enumerate(header):
        column_index.setdefault(name, index)
    raw = pd.DataFrame(
        {name: [record[index].strip() for record in csv_rows.records] for name, index in column_index.items()},
        dtype=object,
    )
    row_numbers = np.asarray(csv_rows.rows, dtype=int)
    paths = raw["path"].map(normalise_listing_path).astype(object)
    blank = paths == ""
    if blank.any():
        problems.append(f"{_rows_have(int(blank.sum()))} an empty path ({_row_list(row_numbers[blank])}); ignored")
    duplicated = paths.duplicated() & ~blank
    if duplicated.any():
        problems.append(
            f"{_rows_have(int(duplicated.sum()))} the path of an earlier row "
            f"({_row_list(row_numbers[duplicated])}); ignored"
        )
    prices = [None] * len(raw)
    if "price" in raw.columns:
        prices, price_problems = _validate_prices(raw["price"], row_numbers)
        problems.extend(price_problems)
    extra_columns = [c for c in raw.columns if c and c not in ("path", *LISTING_COLUMNS)]
    table = pd.DataFrame({
        "path": paths,
        "listing_id": _optional_text(raw, "listing_id"),
        "price": pd.Series(prices, dtype=float),
        "title": _optional_text(raw, "title"),
        "extra": raw[extra_columns].to_dict("records") if extra_columns else [{}] * len(raw),
    })
    keep = ~(blank | duplicated)
    return Listings(table[keep.to_numpy()].reset_index(drop=True), problems)


def _optional_text(raw: pd.DataFrame, column: str) -> pd.Series:
    """The column's values with "" as None (all None when the column is absent)."""
    if column not in raw.columns:
        return pd.Series([None] * len(raw), dtype=object)
    return pd.Series([value or None for value in raw[column]], dtype=object)


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
        problems.append(f"{_rows_have(len(non_numeric))} a non-numeric price ({_row_list(non_numeric)}); treated as missing")
    if negative:
        problems.append(f"{_rows_have(len(negative))} a negative price ({_row_list(negative)}); treated as missing")
    return values, problems
