"""A dataset's optional listings.csv: one row per image with its price and title, read defensively.

Any delimiter and encoding a spreadsheet writes, prices as people type them (currency signs, decimal commas,
thousands separators), bounded in size, columns and cell length; a malformed file is one line of error.
"""
from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from core.files import FileRefused, read_file_inside

LISTINGS_FILE = "listings.csv"
LISTING_COLUMNS = ("listing_id", "price", "title")
#: A larger listings.csv is not read (its table would not fit in memory comfortably).
MAX_LISTINGS_BYTES = 256 * 2**20
#: A listings.csv with more columns than this is not read; a row with a longer cell is ignored.
MAX_LISTING_COLUMNS = 1_000
MAX_LISTING_CELL_CHARS = 10_000


@dataclass
class Listings:
    """listings.csv after validation: one row per distinct path, and what was wrong with the file.

    table columns: path (str), listing_id (str or None), price (float, NaN when
    missing or invalid), title (str or None), extra (dict of the other columns).
    """

    table: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    present: bool = True


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
