"""Pool workers die with the scan: a scan process killed with SIGKILL leaves no worker behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_image

REPO = Path(__file__).resolve().parents[2]
#: Inspects a dataset in 2 worker processes and stops in its first progress report (as a slow scan would),
#: with the workers started; prints "inspecting" then.
SCAN_THAT_HANGS = """
import sys, time
import core.scan.inspect
from core.scan.walk import discover

core.scan.inspect.MIN_FILES_FOR_POOL = 0
core.scan.inspect.CHUNK_SIZE = 1

def hang(fraction, message):
    print("inspecting", flush=True)
    time.sleep(600)

files = discover(sys.argv[1])
core.scan.inspect.inspect_files(files.root, files.files, workers=2, progress=hang)
"""


def children_of(pid: int) -> list[int]:
    """The pids of a process's children, read from /proc."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


def running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (an orphan killed under an init that does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads process children from /proc")
def test_killing_the_scan_kills_its_workers(tmp_path):
    for index in range(8):
        make_image(tmp_path / "shoes" / f"{index}.png")
    scan = subprocess.Popen([sys.executable, "-c", SCAN_THAT_HANGS, str(tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        assert scan.stdout.readline() == "inspecting\n"
        workers = children_of(scan.pid)
        assert len(workers) == 2
        os.kill(scan.pid, signal.SIGKILL)
        scan.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(running(pid) for pid in workers), "workers outlived the killed scan"
    finally:
        scan.kill()
        for pid in workers:  # this test's own processes, if the assertion failed
            if running(pid):
                os.kill(pid, signal.SIGKILL)
