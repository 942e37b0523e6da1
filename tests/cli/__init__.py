"""Tests of the listing-audit command line, run in-process."""
from __future__ import annotations

from cli.main import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run `listing-audit argv...` in this process: (exit code, stdout, stderr)."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
