"""Find the images and classes of a dataset folder, and read its optional listings.csv.

A dataset root's subfolders are classes (torchvision ImageFolder layout); images
may sit in nested subfolders of a class folder. Class order everywhere is
`sorted(class folder names)`. Nothing outside the root is read: links are followed
only while their target, resolved, stays inside it. What is left out for a reason
(links leading out, images outside class folders, formats the scan cannot read)
is listed in `DatasetFiles.skipped`, not silently dropped.
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

from core.imaging import IMAGE_EXTENSIONS, UNSUPPORTED_IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

LISTINGS_FILE = "listings.csv"
LISTING_COLUMNS = ("listing_id", "price", "title")
#: A larger listings.csv is not read (its table would not fit in memory comfortably).
MAX_LISTINGS_BYTES = 256 * 2**20
#: A listings.csv with more columns than this is not read; a row with a longer cell is ignored.
MAX_LISTING_COLUMNS = 1_000
MAX_LISTING_CELL_CHARS = 10_000

#: Why a file or folder was left out of a scan: DatasetFiles.skipped keys.
OUTSIDE_ROOT = "outside_root"
NOT_IN_CLASS_FOLDER = "not_in_class_folder"
UNSUPPORTED_FORMAT = "unsupported_format"
LINK_TO_CLASS = "link_to_class_folder"
#: How many example paths a skipped-files warning names.
SKIPPED_EXAMPLES = 3


class FileRefused(Exception):
    """A file the scan does not read (outside the dataset folder, not a regular file, too large).

    str(error) is a one-line reason.
    """


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
    """What walking a dataset root found. classes is sorted; empty_classes have no images.

    skipped: reason (OUTSIDE_ROOT, NOT_IN_CLASS_FOLDER, UNSUPPORTED_FORMAT) -> sorted
    relative paths left out for it; only reasons that occurred are keys.
    """

    root: Path
    classes: list[str]
    files: list[FileEntry]
    empty_classes: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)


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


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _is_image_name(name: str) -> bool:
    return not _is_hidden(name) and _extension(name) in IMAGE_EXTENSIONS


def _is_unsupported_image_name(name: str) -> bool:
    return not _is_hidden(name) and _extension(name) in UNSUPPORTED_IMAGE_EXTENSIONS


def is_inside(real_path: str, real_root: str) -> bool:
    """Whether `real_path` is `real_root` or below it (both already resolved, absolute)."""
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def _leads_outside(entry: os.DirEntry, real_root: str) -> bool:
    """Whether `entry` is a link whose target, all links resolved, is outside the root."""
    try:
        if not entry.is_symlink():
            return False  # a plain entry of a folder inside the root is inside it
    except OSError:
        return False
    return not is_inside(os.path.realpath(entry.path), real_root)


def _directory_key(entry: os.DirEntry) -> Optional[tuple[int, int]]:
    """(device, inode) of the folder `entry` names, following symlinks; None when it is not a folder."""
    try:
        if not entry.is_dir(follow_symlinks=True):
            return None
        stat = entry.stat(follow_symlinks=True)
    except OSError:  # a symlink loop or a vanished entry is not a folder
        return None
    return stat.st_dev, stat.st_ino


class _Walk:
    """State of one walk of a dataset root: the folders claimed so far and what was skipped, and why.

    seen_dirs holds the folders already claimed (the root and every class
    folder from the start): a folder is listed at most once, so symlink loops
    end and a link to another class folder does not pull its images in.
    """

    def __init__(self, root: Path):
        self.root = root
        self.real_root = str(root)  # discover() resolved it
        root_stat = root.stat()
        self.seen_dirs = {(root_stat.st_dev, root_stat.st_ino)}
        self.skipped: dict[str, list[str]] = {}

    def skip(self, reason: str, relative: str) -> None:
        """Record that `relative` was left out for `reason` (a DatasetFiles.skipped key)."""
        self.skipped.setdefault(reason, []).append(_display_path(relative))

    def _skip_if_wanted(self, link: os.DirEntry, relative: str) -> None:
        """Report a link leading outside the root when the scan would have used it: a folder or an image."""
        if _directory_key(link) is not None or _is_image_name(link.name) or _is_unsupported_image_name(link.name):
            self.skip(OUTSIDE_ROOT, relative)

    def class_folders(self) -> list[str]:
        """The root's class folder names, sorted; loose images and links leading out are skipped.

        Real folders are taken before links, so a link to a class folder (`a-bags -> bag`) never takes
        that class's place, whatever the names' order; it is skipped and reported.
        """
        with os.scandir(self.root) as listing:
            entries = sorted(listing, key=lambda entry: (entry.is_symlink(), entry.name))
        folders = []
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            if _leads_outside(entry, self.real_root):
                self._skip_if_wanted(entry, entry.name)
                continue
            key = _directory_key(entry)
            if key is None:
                if _is_image_name(entry.name) or _is_unsupported_image_name(entry.name):
                    self.skip(NOT_IN_CLASS_FOLDER, entry.name)
            elif key in self.seen_dirs:  # a link to another class folder is not a class
                self.skip(LINK_TO_CLASS, entry.name)
            else:
                self.seen_dirs.add(key)
                folders.append(entry.name)
        return sorted(folders)

    def class_files(self, folder: str, label: str) -> list[FileEntry]:
        """All image files below one class folder, following links that stay inside the root."""
        entries = []
        pending = [folder]  # folders to list, relative to root
        while pending:
            relative_dir = pending.pop()
            try:
                with os.scandir(self.root / relative_dir) as listing:
                    children = list(listing)
            except OSError as error:
                log.warning("cannot list folder %s: %s", relative_dir, error.strerror or error)
                continue
            for child in children:
                if _is_hidden(child.name):
                    continue
                relative = f"{relative_dir}/{child.name}"
                if _leads_outside(child, self.real_root):
                    self._skip_if_wanted(child, relative)
                    continue
                key = _directory_key(child)
                if key is not None:
                    if key not in self.seen_dirs:
                        self.seen_dirs.add(key)
                        pending.append(relative)
                elif _is_image_name(child.name):
                    entries.append(_file_entry(child, relative, label))
                elif _is_unsupported_image_name(child.name):
                    self.skip(UNSUPPORTED_FORMAT, relative)
        return entries


def discover(root: str | os.PathLike) -> DatasetFiles:
    """Walk a dataset root: classes are its non-hidden subfolders, images any file with an image extension.

    Links are followed while their resolved target stays inside the (resolved)
    root; links leading out are skipped (DatasetFiles.skipped), never read.
    """
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise NotADirectoryError(f"dataset folder does not exist or is not a folder: {root_path}")
    walk = _Walk(root_path)
    files: list[FileEntry] = []
    classes, empty = [], []
    for folder in walk.class_folders():
        label = _display_path(folder)
        class_files = sorted(walk.class_files(folder, label), key=lambda entry: entry.path)
        if not class_files:
            empty.append(label)
        classes.append(label)
        files.extend(class_files)
    skipped = {reason: sorted(paths) for reason, paths in walk.skipped.items()}
    return DatasetFiles(root=root_path, classes=sorted(classes), files=files, empty_classes=empty, skipped=skipped)


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """`text` with control characters (newlines included) shown as \\xNN, so that it prints on one line."""
    return _CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def some_paths(paths: list[str]) -> str:
    shown = ", ".join(one_line(path) for path in paths[:SKIPPED_EXAMPLES])
    return shown + (f" and {len(paths) - SKIPPED_EXAMPLES:,} more" if len(paths) > SKIPPED_EXAMPLES else "")


def _formats_of(paths: list[str]) -> str:
    return ", ".join(sorted({_extension(path).lstrip(".").upper() for path in paths}))


def skipped_warnings(skipped: dict[str, list[str]]) -> list[str]:
    """One line per reason in DatasetFiles.skipped: how many were left out, why, and a few of their paths."""
    lines = []
    outside = skipped.get(OUTSIDE_ROOT, [])
    if outside:
        lines.append(f"{_count(len(outside), 'link')} {'leads' if len(outside) == 1 else 'lead'} outside the "
                     f"dataset folder and {'was' if len(outside) == 1 else 'were'} not read: {some_paths(outside)}")
    loose = skipped.get(NOT_IN_CLASS_FOLDER, [])
    if loose:
        lines.append(f"{_count(len(loose), 'image')} {'is' if len(loose) == 1 else 'are'} in the dataset folder "
                     f"itself, not in a class folder, so not scanned: {some_paths(loose)}")
    linked = skipped.get(LINK_TO_CLASS, [])
    if linked:
        lines.append(f"{_count(len(linked), 'link')} to a class folder already scanned {'was' if len(linked) == 1 else 'were'} "
                     f"not taken as a class of {'its' if len(linked) == 1 else 'their'} own: {some_paths(linked)}")
    unsupported = skipped.get(UNSUPPORTED_FORMAT, [])
    if unsupported:
        lines.append(f"{_count(len(unsupported), 'image')} in a format the scan cannot decode "
                     f"({_formats_of(unsupported)}), so not scanned: {some_paths(unsupported)}")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def read_file_inside(root: str | os.PathLike, relative: str, *, max_bytes: int) -> bytes:
    """The bytes of `root/relative`, read only if, links resolved, it is a regular file inside `root`.

    Raises FileRefused (outside the root, not a regular file, more than
    max_bytes) or OSError (cannot be opened or read). The resolved path is
    opened without following a link and without blocking, so a file swapped
    for a link or a pipe after the check is refused too.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    if not is_inside(real, real_root):
        raise FileRefused("link leads outside the dataset folder; not read")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(real, flags)
    with os.fdopen(descriptor, "rb") as handle:
        stat = os.fstat(descriptor)
        if not S_ISREG(stat.st_mode):
            raise FileRefused("not a regular file (a pipe, socket or device)")
        # Asking for the file's size, not max_bytes, spares allocating (and freeing) a max_bytes buffer per
        # file: half the cost of reading a small photo. A file that grew since fstat is read on to the limit.
        data = handle.read(stat.st_size + 1) if stat.st_size <= max_bytes else b""
        if len(data) > stat.st_size:
            data += handle.read(max_bytes + 1 - len(data))
        if stat.st_size > max_bytes or len(data) > max_bytes:  # the second: it grew since fstat
            raise FileRefused(f"file too large to read: more than the {max_bytes / 2**20:,.0f} MiB "
                              f"the scan reads ({max(stat.st_size, len(data)) / 2**20:,.0f} MiB)")
        return data


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


_CURRENCY = re.compile(r"[$€£¥]|(?i:eur|usd|gbp)")
_DELIMITERS = (",", ";", "\t", "|")
#: A number with "." as its decimal point, or none: "12", "12.50", "1.299", ".5", "1e3".
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: A decimal comma that cannot be a thousands separator: "12,50", "0,5", "12,5000".
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,(\d{1,2}|\d{4,})")
#: Digits grouped by threes with one kind of separator, then an optional decimal part
#: after the other mark: "1,299.00", "1.299,00", "1 299,50", "1'299.50", "12,500", "1.299.000".
_GROUPED_NUMBER = re.compile(
    r"(?P<sign>[+-]?)(?P<whole>\d{1,3}(?P<sep>[,. '\u00a0\u202f])\d{3}(?:(?P=sep)\d{3})*)"
    r"(?:(?P<mark>[.,])(?P<fraction>\d+))?"
)


def parse_price(raw: str) -> Optional[float]:
    """A price string as a float; None if it is not a number written one unambiguous way.

    Currency symbols and codes around it are dropped. Accepted: a plain number
    with "." as the decimal point ("12.50"; a single dot is always a decimal
    point, so "1.299" is 1.299); a decimal comma followed by other than three
    digits ("12,50"); digits grouped by threes with one separator (comma, dot,
    space or apostrophe) and an optional decimal part after the other mark
    ("1,299.00", "1.299,00", "1 299,50", "12,500", "1.299.000"). Anything else,
    e.g. "12.5.3", "1,2,3" or "12-15", is not a price.
    """
    text = _CURRENCY.sub("", raw or "").strip()
    if _PLAIN_NUMBER.fullmatch(text):
        value = float(text)
    elif _DECIMAL_COMMA.fullmatch(text):
        value = float(text.replace(",", "."))
    else:
        grouped = _GROUPED_NUMBER.fullmatch(text)
        if grouped is None or grouped["mark"] == grouped["sep"]:
            return None
        whole = grouped["whole"].replace(grouped["sep"], "")
        value = float(f"{grouped['sign']}{whole}.{grouped['fraction'] or 0}")
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
    """UTF-16 or UTF-32 when the file starts with their byte-order mark (spreadsheets save "Unicode text" so),
    else UTF-8 (with or without BOM), else Latin-1 (which accepts any bytes)."""
    for bom, encoding in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                          (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
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


def _read_csv_rows(root: Path) -> _CsvRows:
    text = _decode(read_file_inside(root, LISTINGS_FILE, max_bytes=MAX_LISTINGS_BYTES))
    delimiter = _guess_delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    if len(header) > MAX_LISTING_COLUMNS:
        raise FileRefused(f"it has {len(header):,} columns, more than the {MAX_LISTING_COLUMNS:,} read")
    rows, records, too_long = [], [], []
    for row, record in enumerate(reader, start=2):
        if not any(field.strip() for field in record):
            continue
        if len(record) > len(header) or any(len(field) > MAX_LISTING_CELL_CHARS for field in record):
            too_long.append(row)
            continue
        rows.append(row)
        records.append(record + [""] * (len(header) - len(record)))
    return _CsvRows(header, rows, records, too_long)


_HEADER_NAME = re.compile(r"[a-z][a-z0-9 _.-]{0,39}")
_MAX_SHOWN_COLUMNS = 12


def _no_path_column_problem(header: list[str]) -> str:
    """Why the file is ignored; its column names are shown only when they look like a CSV header.

    That is 2 to _MAX_SHOWN_COLUMNS names, each a short word (letters, digits,
    space, _ . -). A file that is not a CSV (a binary, a password file, a key)
    yields one "column" or odd ones: its content is never echoed.
    """
    looks_like_header = (2 <= len(header) <= _MAX_SHOWN_COLUMNS
                         and all(_HEADER_NAME.fullmatch(name) for name in header))
    shown = f" (columns: {', '.join(repr(name) for name in header)})" if looks_like_header else ""
    return f"{LISTINGS_FILE} has no 'path' column{shown}; listing data ignored"


def _empty_listings() -> pd.DataFrame:
    return pd.DataFrame({"path": pd.Series(dtype=str), "listing_id": pd.Series(dtype=object),
                         "price": pd.Series(dtype=float), "title": pd.Series(dtype=object),
                         "extra": pd.Series(dtype=object)})


def read_listings(root: str | os.PathLike) -> Listings:
    """Read and validate `<root>/listings.csv`. Never raises for bad content: problems are listed instead.

    The file is read only when, links resolved, it is a regular file inside
    `root` of at most MAX_LISTINGS_BYTES; problems never quote its content. The delimiter (, ; tab |) is taken from the header line; the encoding is
    UTF-8 or else Latin-1. Rows are numbered as in a spreadsheet (header = row 1).
    Rows with more fields than the header are ignored; non-numeric and negative
    prices become NaN; duplicate paths keep their first row.
    """
    root = Path(root)
    if not os.path.lexists(root / LISTINGS_FILE):
        return Listings(_empty_listings(), present=False)
    try:
        csv_rows = _read_csv_rows(root)
    except FileRefused as refused:
        return Listings(_empty_listings(), [f"{LISTINGS_FILE} ignored: {refused}"])
    except OSError as error:
        return Listings(_empty_listings(), [f"{LISTINGS_FILE} could not be read and was ignored: "
                                            f"{error.strerror or type(error).__name__}"])
    except csv.Error as error:
        return Listings(_empty_listings(), [f"{LISTINGS_FILE} is not a readable CSV file and was ignored: {error}"])
    header = csv_rows.header
    if "path" not in header:
        return Listings(_empty_listings(), [_no_path_column_problem(header)])
    problems = []
    if len(set(header)) != len(header):
        problems.append(f"{LISTINGS_FILE} repeats a column name; the first column of each name is used")
    if csv_rows.too_long:
        problems.append(
            f"{_rows_have(len(csv_rows.too_long))} more fields than the header, perhaps an unquoted delimiter, "
            f"or a cell over {MAX_LISTING_CELL_CHARS:,} characters ({_row_list(csv_rows.too_long)}); ignored"
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
        # Only the values present: a wide header with mostly empty cells costs nothing per row.
        "extra": ([{name: value for name, value in record.items() if value} for record in
                   raw[extra_columns].to_dict("records")] if extra_columns else [{}] * len(raw)),
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
