"""A small local Ray instance for the tests of the ray executor: 2 CPUs, 200 MB of object store, no
dashboard, no usage reports, its session files in a temporary folder removed at the end; and a check
that it left no process behind."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CPUS = 2
OBJECT_STORE_BYTES = 200 * 2**20
#: Ray's settings read from the environment by the processes it starts.
QUIET_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
SHUTDOWN_WAIT_S = 30.0
#: Set to 1 where Ray Data must be installed (CI): its tests then fail instead of being skipped.
REQUIRE_ENV = "LISTING_AUDIT_REQUIRE_RAY"


def closed_port() -> int:
    """A local TCP port nothing listens on: "127.0.0.1:<it>" is a Ray address that cannot be reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def local_ray() -> Iterator[str]:
    """Start a local Ray instance in this process, yield its address, shut it down and remove its files.

    Skips the calling tests when Ray Data is not installed (the `ray` extra), or fails them when
    $LISTING_AUDIT_REQUIRE_RAY is 1. Fails when a process that Ray started outlives the shutdown by more
    than SHUTDOWN_WAIT_S seconds.
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"Ray Data is not installed ({error}) and {REQUIRE_ENV}=1")
        pytest.skip(f"Ray Data is not installed: {error}")
    # A short folder name: Ray's socket paths must fit in 107 characters.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in QUIET_RAY_ENV.items():
            patch.setenv(name, value)
        patch.delenv("LISTING_AUDIT_RAY_ADDRESS", raising=False)
        context = ray.init(num_cpus=CPUS, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                           log_to_driver=False, logging_level="warning", _temp_dir=temp_dir)
        try:
            yield context.address_info["address"]
        finally:
            started = _descendants(os.getpid())  # Ray's servers, and the workers they started
            ray.shutdown()
            left = _wait_for_processes_to_end(started)
            shutil.rmtree(temp_dir, ignore_errors=True)
            assert not left, f"Ray processes left running after shutdown: {left}"


def _wait_for_processes_to_end(pids: set[int]) -> list[str]:
    """'pid command' of those of `pids` still running after SHUTDOWN_WAIT_S seconds (zombies count as ended)."""
    deadline = time.monotonic() + SHUTDOWN_WAIT_S
    while (left := _running(pids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state letter, command line) of every process (Linux /proc)."""
    table = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        table[int(proc.name)] = (int(fields[1]), fields[0], command)
    return table


def _descendants(pid: int) -> set[int]:
    """The processes `pid` started, and theirs, now."""
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in _process_table().items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pids: set[int]) -> list[str]:
    table = _process_table()
    return [f"{pid} {table[pid][2][:120]}" for pid in sorted(pids) if pid in table and table[pid][1] != "Z"]
