"""Helpers shared by CLI subcommands: the --db option, opening the database, output, progress bars."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

from sqlalchemy.orm import Session, sessionmaker

from core.csvsafe import write_dict_rows
from db.engine import default_location, make_engine, make_session_factory
from db.models import Dataset
from db.queries import get_dataset


class CliError(Exception):
    """A user-facing error: printed as `error: <message>` with exit status 2."""


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=str, default=None,  # a str: Path would fold a URL's "//"
        help="SQLite database file, or a postgresql+psycopg://user@host/db URL "
             "(default: $LISTING_AUDIT_DB or data/listing-audit.db)",
    )


def add_format_option(parser: argparse.ArgumentParser, choices: Iterable[str] = ("text", "json")) -> None:
    choices = list(choices)
    parser.add_argument("--format", choices=choices, default=choices[0], help="output format")


def open_db(args: argparse.Namespace) -> sessionmaker[Session]:
    """Session factory for the database named by --db (or the default)."""
    return make_session_factory(make_engine(args.db or default_location()))


def require_dataset(session: Session, dataset_dir: str | Path) -> Dataset:
    """The dataset registered for folder `dataset_dir`; CliError when it was never scanned into this database."""
    dataset = get_dataset(session, dataset_dir)
    if dataset is None:
        raise CliError(f"{dataset_dir} is not in the database; run `listing-audit scan {dataset_dir}` first")
    return dataset


#: Characters a terminal acts on rather than shows: C0 and C1 controls (ESC, CR, newline, backspace, ...) and
#: the bidirectional overrides that reorder what follows them.
_TERMINAL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def shown(value) -> str:
    """`value` as text that prints as itself: every control character written as its escape (`\x1b`,
    `\n`), so a file, class or reviewer name or a note cannot clear the screen, fake a line or split a
    table. Use it on every untrusted string the text output carries."""
    return _TERMINAL_CONTROLS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), str(value))


def print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_csv(rows: list[dict], columns: list[str]) -> None:
    """Rows as CSV on stdout, text that a spreadsheet would take for a formula escaped (core.csvsafe)."""
    write_dict_rows(sys.stdout, rows, columns, extrasaction="ignore")


class ProgressBar:
    """A one-line terminal progress bar on stderr, silent when stderr is not a terminal."""

    def __init__(self, label: str, *, stream=None, min_interval_s: float = 0.1):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.min_interval_s = min_interval_s
        self._last = 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.min_interval_s and fraction < 1.0):
            return
        self._last = now
        width = 30
        filled = int(round(max(0.0, min(1.0, fraction)) * width))
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {fraction * 100:5.1f}% {message[:60]:<60}")
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()

    def close(self, message: Optional[str] = None) -> None:
        if self.enabled:
            self.stream.write("\n" if message is None else f"\r{message}\n")
            self.stream.flush()
