"""End to end in a real browser: user strings with markdown in them are shown as typed on every page.

A dataset whose class folder, file names, titles and flag reasons are markdown images and links
(`![t](pwn-file.png)`, `[b](pwn-broken)`) is scanned and audited for real; the app is walked page by
page in headless Chromium. The browser must never ask for one of those URLs, no page may hold an
<img> or <a> pointing at one, and the names must read as typed.
"""
from __future__ import annotations

import re
import shutil

import pytest
from sqlalchemy import select

from db.models import Sample
from jobs.audit import audit_params
from jobs.runner import create_job, run_job
from jobs.scan import scan_dataset
from tests.conftest import make_image
from tests.e2e.browser import browser_page, expect, running_app, wait_until_idle  # noqa: F401 (fixture)
from tests.review_data import add_flags

pytestmark = pytest.mark.e2e

HOSTILE_CLASS = "![c](pwn-class.png)"
HOSTILE_FILE = "shoe/![t](pwn-file.png).png"
BROKEN_FILE = "shoe/[b](pwn-broken).jpg"
COPY_FILE = "shoe/copy [d](pwn-dup).png"
HOSTILE_TITLE = "![ti](pwn-title.png) **Nordvik** [jacket](pwn-link)"
#: URL path -> the page's title, shown once the page has rendered.
#: The pages, the home page last: a server's first visit to another page once showed the pages folder's
#: own sidebar list, which names the home page "app".
PAGES = {"Browse": "Browse", "Review": "Review", "Train": "Train", "Metrics": "Metrics", "History": "History",
         "Export": "Export", "": "listing-audit"}
SIDEBAR_LINKS = ["Home", "Browse", "Review", "Train", "Metrics", "History", "Export"]


def build_hostile_dataset(root):
    """Three classes (one of them named like a markdown image) with hostile file names and titles."""
    rows = ["path,listing_id,price,title"]
    for label in (HOSTILE_CLASS, "shoe", "bag"):
        for index in range(4):
            path = f"{label}/{'item' if label == HOSTILE_CLASS else label}-{index}.png"
            make_image(root / path, size=(32, 32))
            rows.append(f"{path},L{len(rows)},{40 + index},{HOSTILE_TITLE}")
    make_image(root / HOSTILE_FILE, size=(32, 32))
    rows.append(f"{HOSTILE_FILE},L-odd,40,{HOSTILE_TITLE}")
    shutil.copy(root / HOSTILE_CLASS / "item-0.png", root / COPY_FILE)  # a duplicate across the hostile class
    (root / BROKEN_FILE).write_bytes(b"not an image")
    (root / "listings.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def hostile_app(tmp_path, factory, db_path):
    root = build_hostile_dataset(tmp_path / "hostile")
    dataset_id = scan_dataset(factory, root, workers=1)["dataset_id"]
    with factory.begin() as session:
        job_id = create_job(session, dataset_id, "audit", audit_params(checks=["broken", "duplicate"])).id
    assert run_job(factory, job_id).status == "succeeded"
    with factory.begin() as session:
        sample_ids = dict(session.execute(select(Sample.path, Sample.id).where(Sample.dataset_id == dataset_id)).all())
        add_flags(session, job_id, sample_ids, {"shoe/shoe-0.png": ("mislabel", 0.01, HOSTILE_CLASS, None,
                                                                    "looks like ![r](pwn-reason.png)", {
            "suggested_probability": 0.9, "top3": [[HOSTILE_CLASS, 0.9], ["shoe", 0.1]],
            "members": [{"member": "title", "label": "title", "top": HOSTILE_CLASS, "probability": 0.9,
                         "weight": 1.0, "title": HOSTILE_TITLE, "words": ["[jacket](pwn-word)"]}],
        })})
    with running_app(db_path, tmp_path / "streamlit.log") as url:
        yield url


def hostile_elements(page) -> int:
    """<img>, <source> or <a> elements pointing at a hostile URL (a heading's own #anchor is not one)."""
    return page.locator('img[src*="pwn"], source[src*="pwn"], a[href*="pwn"]:not([href^="#"])').count()


def open_page(page, url: str, title: str) -> None:
    """Go to `url` and wait until its page has rendered and the script is idle."""
    page.goto(url)
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    wait_until_idle(page)


def test_hostile_names_are_shown_as_typed_and_never_fetched(hostile_app, browser_page):
    page = browser_page
    requested = []
    page.on("request", lambda request: requested.append(request.url) if "pwn" in request.url else None)
    for name, title in PAGES.items():
        open_page(page, f"{hostile_app}/{name}", title)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        assert hostile_elements(page) == 0, name
        links = page.get_by_test_id("stSidebar").get_by_test_id("stPageLink-NavLink").all_inner_texts()
        assert [link.split("\n")[-1] for link in links] == SIDEBAR_LINKS, name
        expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)

    open_page(page, f"{hostile_app}/Browse", "Browse")
    tile = page.locator('[class*="st-key-open_"]').filter(has=page.locator("button")).first
    caption = tile.locator("xpath=..").inner_text()
    tile.get_by_role("button").click()
    expect(page.locator('[class*="st-key-browse_close"] button')).to_be_visible()
    wait_until_idle(page)
    assert caption.startswith(HOSTILE_CLASS), caption  # its caption reads as typed
    assert hostile_elements(page) == 0

    open_page(page, f"{hostile_app}/Review", "Review")
    total = int(page.get_by_role("heading", name=re.compile(r"^1 of \d+ · ")).inner_text().split()[2])
    seen = []
    for position in range(1, total + 1):  # every flag: the broken file, the mislabel, the duplicate group
        heading = page.get_by_role("heading", name=re.compile(rf"^{position} of {total} · "))
        expect(heading).to_be_visible()
        wait_until_idle(page)
        seen.append(heading.inner_text())
        assert hostile_elements(page) == 0, seen[-1]
        if " · duplicate · " in seen[-1]:
            expect(page.get_by_text(f"{COPY_FILE} · shoe")).to_be_visible()  # the group's other member, as typed
        page.get_by_role("button", name="Next").click()
    assert sorted(heading.split(" · ", 1)[1] for heading in seen) == [
        f"broken · {BROKEN_FILE}", f"duplicate · {HOSTILE_CLASS}/item-0.png", "mislabel · shoe/shoe-0.png"]
    assert requested == []
