"""Shared plumbing of the browser tests (import `browser_page` as a fixture): the running app on a temporary database, and headless Chromium.

Chromium is the system package (nothing is downloaded). `make test` sets
LISTING_AUDIT_REQUIRE_BROWSER=1: there a missing browser is a failed set-up, not a reason to skip.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 60
STEP_TIMEOUT_MS = 20_000

REQUIRE_BROWSER = os.environ.get("LISTING_AUDIT_REQUIRE_BROWSER") == "1"
if not Path(CHROMIUM).exists():
    message = f"{CHROMIUM} is not installed (scripts/setup.sh --with-browser installs it)"
    if REQUIRE_BROWSER:
        raise RuntimeError(message)
    pytest.skip(message, allow_module_level=True)
if REQUIRE_BROWSER:
    from playwright.sync_api import expect, sync_playwright
else:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=STEP_TIMEOUT_MS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")


@contextmanager
def running_app(db_path: Path, log: Path) -> Iterator[str]:
    """`streamlit run app.py` on a free port against `db_path`; yields its base URL, stops it afterwards."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "LISTING_AUDIT_DATASET"}
    env["LISTING_AUDIT_DB"] = str(db_path)
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture
def browser_page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def wait_until_idle(page) -> None:
    """Wait until the app's script is not running (a key pressed mid-rerun can hit a button being redrawn) and
    no element is still a grey placeholder (Streamlit shows those while an element's code loads, even when idle)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', state="attached")
    page.wait_for_selector('[data-testid="stMain"] [data-testid="stSkeleton"]', state="detached")
