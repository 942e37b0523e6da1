"""Text output prints untrusted names as themselves: an ESC sequence, a carriage return or a newline in a file,
class or reviewer name or a note is shown escaped, never acted on by the terminal."""
from __future__ import annotations

import os

import pytest

from tests.cli import run_cli
from tests.conftest import make_image

CLEAR_SCREEN = "\x1b[2J"


@pytest.fixture
def hostile_dataset(tmp_path):
    root = tmp_path / "shop"
    make_image(root / "bag" / "a.png")
    make_image(root / "bag" / f"b{CLEAR_SCREEN}.png")
    make_image(root / "fake\nline" / "c.png")
    return root


def test_scan_correct_and_history_escape_control_characters(capsys, hostile_dataset, db_path):
    code, out, _ = run_cli(capsys, "scan", hostile_dataset, "--db", db_path, "--workers", "1")
    assert code == 0 and "\x1b" not in out
    assert "  fake\\nline  " in out  # the class row stays one row
    code, out, _ = run_cli(capsys, "correct", hostile_dataset, f"bag/b{CLEAR_SCREEN}.png", "--keep",
                           "--reviewer", "eve\r\x1b[31mroot", "--note", "ok\x1b[1A\x1b[2Kfaked", "--db", db_path)
    assert code == 0 and "\x1b" not in out and "\r" not in out
    assert "bag/b\\x1b[2J.png" in out and "eve\\r\\x1b[31mroot" in out
    code, out, _ = run_cli(capsys, "history", hostile_dataset, "--db", db_path)
    assert code == 0 and "\x1b" not in out and "\r" not in out
    assert len(out.strip().splitlines()) == 1 and "# ok\\x1b[1A\\x1b[2Kfaked" in out
    assert os.path.exists(hostile_dataset / f"bag/b{CLEAR_SCREEN}.png")  # the source is untouched


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(hostile_dataset, db_path):
    import subprocess
    import sys
    from pathlib import Path

    from sqlalchemy import select

    from db.corrections import decide
    from db.engine import make_engine, make_session_factory
    from db.models import Sample

    for i in range(600):  # a log longer than the pipe's buffer (64 KiB)
        make_image(hostile_dataset / "bag" / f"many{i}.png", size=(8, 8))
    repo = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-m", "cli.main", "scan", str(hostile_dataset), "--db", str(db_path),
                           "--workers", "1"], cwd=repo, capture_output=True).returncode == 0
    engine = make_engine(db_path)
    with make_session_factory(engine).begin() as session:
        for sample in session.scalars(select(Sample)):
            decide(session, sample, "keep", classes=["bag", "fake\nline"], reviewer="eve", note="x" * 100)
    engine.dispose()
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "history", str(hostile_dataset), "--db",
                                str(db_path), "--format", "csv"], cwd=repo, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()  # `| head -1`
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err
