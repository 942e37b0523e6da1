"""CSV cells safe to open in a spreadsheet: text that would start a formula is written with a leading quote.

Every CSV we write goes through here (OWASP's rule for CSV injection). A text cell
whose first character is `=`, `+`, `-`, `@`, a tab or a carriage return is
prefixed with a single quote `'`, which spreadsheets show as text and do not
evaluate. Only strings are escaped: ints and floats stay numbers (a price of -5
is written -5), while the text "-5" typed by a reviewer is written '-5.
Readers of our own CSVs (corrections import) call `unescape_cell`, so every
value reads back exactly as it was.

So that the round trip is exact for text that itself starts with quotes, a
string is escaped when it starts with a formula character after any leading
quotes: "'=x" is written "''=x" and read back as "'=x"; "'abc" is written as is.
"""
from __future__ import annotations

import csv
from typing import IO, Any, Iterable, Mapping

import pandas as pd

#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _needs_quote(text: str) -> bool:
    return text.lstrip(QUOTE).startswith(FORMULA_STARTS)


def escape_cell(value: Any) -> Any:
    """`value` as it is written to a CSV: a string that could start a formula gains a leading `'`; others unchanged."""
    if isinstance(value, str) and _needs_quote(value):
        return QUOTE + value
    return value


def unescape_cell(text: str) -> str:
    """The value `escape_cell` was given, from the text it wrote (text without our quote comes back unchanged)."""
    if text.startswith(QUOTE) and _needs_quote(text[1:]):
        return text[1:]
    return text


def escape_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A dict row with every cell escaped."""
    return {key: escape_cell(value) for key, value in row.items()}


def unescape_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row read by csv.DictReader with every text cell unescaped (None for a short row stays None)."""
    return {key: unescape_cell(value) if isinstance(value, str) else value for key, value in row.items()}


class SafeDictWriter(csv.DictWriter):
    """csv.DictWriter that escapes every cell of every row (header names are ours and left as they are)."""

    def writerow(self, rowdict: Mapping[str, Any]):
        return super().writerow(escape_row(rowdict))

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]):
        return super().writerows(escape_row(row) for row in rowdicts)


def write_dict_rows(stream: IO[str], rows: Iterable[Mapping[str, Any]], columns: list[str], **options: Any) -> None:
    """Write a header and `rows` (dicts keyed by `columns`) to `stream` as CSV, every cell escaped.

    options go to csv.DictWriter (e.g. extrasaction="ignore"); lines end with "\\n".
    """
    writer = SafeDictWriter(stream, fieldnames=columns, lineterminator="\n", **options)
    writer.writeheader()
    writer.writerows(rows)


def frame_to_csv(frame: pd.DataFrame, **options: Any) -> str:
    """`frame` as CSV text with every text cell escaped; options go to DataFrame.to_csv (index=False by default)."""
    escaped = frame.copy()
    for column in escaped.columns:
        if escaped[column].dtype == object or pd.api.types.is_string_dtype(escaped[column]):
            escaped[column] = escaped[column].map(escape_cell)
    return escaped.to_csv(**{"index": False, "lineterminator": "\n", **options})
