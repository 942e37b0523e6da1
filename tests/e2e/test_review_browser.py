"""End to end in a real browser: the running app, headless Chromium, keyboard shortcuts, then the database and export.

Starts `streamlit run app.py` on a free port against a temporary database
holding a scanned tiny dataset with a few flags, drives the Review page with
Playwright (the system Chromium; nothing is downloaded), and checks the
corrections it wrote and the exported files.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.main import main as cli_main
from db.models import Correction, Sample
from tests.review_data import build_review_data

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 60
STEP_TIMEOUT_MS = 20_000

#: `make test` sets this: there a missing browser is a failed set-up, not a reason to skip.
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


@pytest.fixture
def app_server(tmp_path, factory, db_path):
    """(base URL, review data) of a running app on the temporary database; the server is stopped afterwards."""
    data = build_review_data(tmp_path / "tiny", factory)
    port = free_port()
    log = tmp_path / "streamlit.log"
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
        yield url, data
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


def heading(page, text: str) -> None:
    """Wait until the item heading reads `text` (the rerun after the last key press has finished)."""
    expect(page.get_by_role("heading", name=text)).to_be_visible()


def wait_until_idle(page) -> None:
    """Wait until the app's script is not running (a key pressed mid-rerun can hit a button being redrawn)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', state="attached")


def press(page, key: str) -> None:
    """Press a shortcut key once the app is idle, with the focus on the page rather than in a text box."""
    wait_until_idle(page)
    page.get_by_role("heading", name="Review", exact=True).click()
    page.keyboard.press(key)


def test_relabel_with_the_keyboard_delete_undo_then_export(app_server, browser_page, factory, db_path, tmp_path):
    url, data = app_server
    page = browser_page
    page.goto(f"{url}/Review")
    heading(page, "1 of 6 · broken · shoe/broken.jpg")
    page.get_by_label("Reviewer").fill("eve")
    page.get_by_label("Reviewer").press("Enter")
    expect(page.get_by_text("Enter your name under Reviewer")).to_have_count(0)

    press(page, "n")
    heading(page, "2 of 6 · mislabel · bag/bag-0.png")
    expect(page.get_by_text(re.compile(r"title 'Old nokia, works' → phone 93% \(words: nokia\)"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"photo: phone 84% · weight 1\.10"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Accept phone"))).to_be_enabled()
    press(page, "a")  # accept the suggested label: bag -> phone
    expect(page.get_by_text("bag/bag-0.png — bag → phone")).to_be_visible()
    heading(page, "2 of 5 · mislabel · shoe/shoe-1.png")

    press(page, "d")  # delete shoe/shoe-1.png
    expect(page.get_by_text("shoe/shoe-1.png — shoe → shoe (deleted)")).to_be_visible()
    heading(page, "2 of 4 · price · phone/phone-2.png")

    press(page, "u")  # undo that delete: the image is back in the queue and shown again
    expect(page.get_by_text("Undid your last decision on shoe/shoe-1.png")).to_be_visible()
    heading(page, "2 of 5 · mislabel · shoe/shoe-1.png")

    with factory() as session:
        log = [tuple(row) for row in session.execute(
            select(Sample.path, Correction.action, Correction.new_label, Correction.deleted, Correction.reviewer)
            .join(Sample, Sample.id == Correction.sample_id).order_by(Correction.id)
        )]
    assert log == [
        ("bag/bag-0.png", "relabel", "phone", False, "eve"),
        ("shoe/shoe-1.png", "delete", "shoe", True, "eve"),
        ("shoe/shoe-1.png", "undo", "shoe", False, "eve"),
    ]

    out = tmp_path / "clean"
    assert cli_main(["export", str(data.root), "--out", str(out), "--db", str(db_path)]) == 0
    assert (out / "phone/bag-0.png").is_file() and not (out / "bag/bag-0.png").exists()
    assert (out / "shoe/shoe-1.png").is_file()  # its deletion was undone
    assert not (out / "shoe/broken.jpg").exists()
    assert len(list(out.rglob("*.png"))) == 12
