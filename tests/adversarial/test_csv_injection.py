"""CSV we write must not carry spreadsheet formulas: reviewer names, notes, class names and paths are escaped."""
from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from core.csvsafe import escape_cell, frame_to_csv, unescape_cell
from core.export.plan import plan_export
from core.export.write import write_export
from jobs.scan import scan_dataset
from tests.cli import run_cli
from tests.conftest import make_image

FORMULAS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


@pytest.mark.parametrize("value", FORMULAS + ["'=already quoted", "''@twice", "'plain quote", "plain", "", "'",
                                              "a=b", "-", "'-"])
def test_escaping_round_trips_every_string(value):
    written = escape_cell(value)
    assert not written.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert unescape_cell(written) == value


def test_formula_cells_gain_one_quote_and_other_cells_stay_as_they_are():
    assert [escape_cell(value) for value in FORMULAS] == ["'" + value for value in FORMULAS]
    assert escape_cell("'=x") == "''=x" and escape_cell("'abc") == "'abc" and escape_cell("shoe") == "shoe"
    assert escape_cell(-5) == -5 and escape_cell(-2.5) == -2.5 and escape_cell(None) is None
    assert unescape_cell("'abc") == "'abc"  # a quote before ordinary text was never ours


def test_numbers_in_a_frame_stay_numbers():
    text = frame_to_csv(pd.DataFrame({"price": [-5.0, 3.0], "note": ["-5", "ok"]}))
    assert text == "price,note\n-5.0,'-5\n3.0,ok\n"


@pytest.fixture
def formula_dataset(tmp_path, factory):
    """A scanned dataset whose classes are `=cmd` and `bag`; returns its folder."""
    root = tmp_path / "shop"
    for path in ("=cmd/a.png", "bag/b.png", "bag/-c.png"):
        make_image(root / path, size=(8, 8))
    scan_dataset(factory, root, workers=1)
    return root


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _unsafe(rows: list[list[str]]) -> list[str]:
    return [cell for row in rows for cell in row if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]


def test_history_csv_escapes_reviewers_notes_labels_and_paths(capsys, formula_dataset, db_path):
    run_cli(capsys, "correct", formula_dataset, "bag/b.png", "--relabel", "=cmd", "--reviewer", "=1+2",
            "--note", "@SUM(A1)", "--db", db_path)
    run_cli(capsys, "correct", formula_dataset, "=cmd/a.png", "--delete", "--reviewer=-ann", "--db", db_path)
    code, out, _ = run_cli(capsys, "history", formula_dataset, "--format", "csv", "--db", db_path)
    rows = _cells(out)
    assert code == 0 and _unsafe(rows) == []
    header, first, second = rows
    record = dict(zip(header, first))
    assert (record["reviewer"], record["note"], record["new_label"]) == ("'=1+2", "'@SUM(A1)", "'=cmd")
    assert dict(zip(header, second))["path"] == "'=cmd/a.png"
    assert record["id"] == "1"  # numbers are written as they are


def test_corrections_export_is_escaped_and_import_reads_it_back_unchanged(capsys, tmp_path, formula_dataset,
                                                                             db_path):
    run_cli(capsys, "correct", formula_dataset, "bag/b.png", "--relabel", "=cmd", "--reviewer", "=1+2",
            "--note", "'=already quoted", "--db", db_path)
    run_cli(capsys, "correct", formula_dataset, "bag/-c.png", "--delete", "--reviewer", "+bob", "--note", "\tx",
            "--db", db_path)
    log = tmp_path / "log.csv"
    assert run_cli(capsys, "corrections", "export", formula_dataset, "--out", log, "--db", db_path)[0] == 0
    assert _unsafe(_cells(log.read_text())) == []
    other = tmp_path / "other.db"
    run_cli(capsys, "scan", formula_dataset, "--db", other, "--workers", "1")
    code, out, _ = run_cli(capsys, "corrections", "import", formula_dataset, log, "--db", other)
    assert code == 0 and out.startswith("added 2 decisions, skipped 0")
    history = {}
    for database in (db_path, other):
        _, out, _ = run_cli(capsys, "history", formula_dataset, "--format", "json", "--db", database)
        history[database] = [(row["path"], row["reviewer"], row["note"], row["new_label"]) for row in json.loads(out)]
    assert history[other] == history[db_path] == [
        ("bag/b.png", "=1+2", "'=already quoted", "=cmd"), ("bag/-c.png", "+bob", "\tx", "bag")]


def test_the_export_manifest_escapes_paths_labels_and_reviewers(tmp_path):
    source = tmp_path / "source"
    make_image(source / "@home/a.png", size=(8, 8))
    samples = pd.DataFrame([{"path": "@home/a.png", "label": "@home", "current_label": "-minus", "deleted": False,
                             "readable": True, "missing": False, "last_action": "relabel", "reviewer": "=cmd"}])
    out = tmp_path / "out"
    write_export(plan_export(samples), source_root=source, out=out)
    rows = _cells((out / "manifest.csv").read_text())
    assert _unsafe(rows) == []
    assert rows[1] == ["'@home/a.png", "'@home", "'-minus", "relabelled", "'=cmd", "'-minus/a.png"]
    assert (out / "-minus/a.png").is_file()  # the files themselves keep their names
