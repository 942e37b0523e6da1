"""End to end in a real browser: the running app, headless Chromium, keyboard shortcuts, then the database and export.

Starts `streamlit run app.py` on a free port against a temporary database
holding a scanned tiny dataset with a few flags, drives the Review page with
Playwright (the system Chromium; nothing is downloaded), and checks the
corrections it wrote and the exported files.
"""
from __future__ import annotations

import csv
import re

import pytest
from sqlalchemy import select

from cli.main import main as cli_main
from db.models import Correction, Sample
from tests.conftest import make_image
from tests.e2e.browser import browser_page, expect, running_app, wait_until_idle  # noqa: F401 (fixture)
from tests.review_data import (add_weak_audit, build_review_data, plant_expected_price_flag,
                               store_embeddings_by_folder)

pytestmark = pytest.mark.e2e


@pytest.fixture
def app_server(tmp_path, factory, db_path):
    """(base URL, review data) of a running app on the temporary database; the server is stopped afterwards."""
    data = build_review_data(tmp_path / "tiny", factory)
    with running_app(db_path, tmp_path / "streamlit.log") as url:
        yield url, data


def heading(page, text: str) -> None:
    """Wait until the item heading reads `text` (the rerun after the last key press has finished)."""
    expect(page.get_by_role("heading", name=text)).to_be_visible()


def press(page, key: str) -> None:
    """Press a shortcut key once the app is idle, with the focus on the page rather than in a text box."""
    wait_until_idle(page)
    page.get_by_role("heading", name="Review", exact=True).click()
    page.keyboard.press(key)


def open_review_as(page, url: str, reviewer: str) -> None:
    """Open the Review page at its first flag and enter the reviewer's name."""
    page.goto(f"{url}/Review")
    heading(page, "1 of 6 · broken · shoe/broken.jpg")
    page.get_by_label("Reviewer", exact=True).fill(reviewer)
    page.get_by_label("Reviewer", exact=True).press("Enter")


def test_relabel_with_the_keyboard_delete_undo_then_export(app_server, browser_page, factory, db_path, tmp_path):
    url, data = app_server
    page = browser_page
    open_review_as(page, url, "eve")
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


def choose_kind(page, label: str) -> None:
    """Pick `label` (e.g. "mislabel") in the sidebar's "Kind of flag" filter."""
    page.get_by_test_id("stSidebar").get_by_role("combobox", name=re.compile("Kind of flag")).click()
    page.get_by_role("option", name=re.compile(rf"^{label}")).click()
    page.keyboard.press("Escape")


def open_mislabels_as_eve(page, url: str) -> None:
    """Review as eve with the queue filtered to mislabels, at its first item."""
    open_review_as(page, url, "eve")
    wait_until_idle(page)
    choose_kind(page, "mislabel")
    heading(page, "1 of 3 · mislabel · bag/bag-0.png")


def test_the_kind_filter_stays_after_decide_next_and_undo(app_server, browser_page):
    url, data = app_server
    page = browser_page
    open_mislabels_as_eve(page, url)
    press(page, "a")
    heading(page, "1 of 2 · mislabel · shoe/shoe-1.png")
    press(page, "n")
    heading(page, "2 of 2 · mislabel · phone/phone-3.png")
    press(page, "u")  # the undone item comes back, still among mislabels only
    heading(page, "1 of 3 · mislabel · bag/bag-0.png")
    press(page, "n")
    heading(page, "2 of 3 · mislabel · shoe/shoe-1.png")


def test_a_reload_mid_review_keeps_the_filters_and_the_item(app_server, browser_page):
    url, _ = app_server
    page = browser_page
    open_mislabels_as_eve(page, url)
    press(page, "n")
    heading(page, "2 of 3 · mislabel · shoe/shoe-1.png")
    wait_until_idle(page)
    expect(page).to_have_url(re.compile(r"[?&]item=\d+"))
    page.reload()
    heading(page, "2 of 3 · mislabel · shoe/shoe-1.png")
    expect(page.get_by_label("Reviewer", exact=True)).to_have_value("eve")
    press(page, "l")  # no class chosen for it but its suggestion: relabels to the suggestion only
    heading(page, "2 of 2 · mislabel · phone/phone-3.png")


def test_the_reviewer_name_survives_a_reload_and_shows_on_every_page(app_server, browser_page):
    url, _ = app_server
    page = browser_page
    open_review_as(page, url, "eve")
    expect(page).to_have_url(re.compile(r"[?&]reviewer=eve"))
    page.reload()
    heading(page, "1 of 6 · broken · shoe/broken.jpg")
    expect(page.get_by_label("Reviewer", exact=True)).to_have_value("eve")
    expect(page.get_by_role("button", name="Delete")).to_be_enabled()
    for name in ("Train", "Metrics", "Browse"):
        page.get_by_test_id("stSidebar").get_by_role("link", name=re.compile(rf"\b{name}$")).click()
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
        expect(page.get_by_label("Reviewer", exact=True)).to_have_value("eve")


def test_zoom_opens_the_full_file_and_a_queue_row_opens_its_item(app_server, browser_page):
    url, _ = app_server
    page = browser_page
    open_review_as(page, url, "eve")
    press(page, "n")
    heading(page, "2 of 6 · mislabel · bag/bag-0.png")
    press(page, "z")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("PNG · 32 × 32 px stored · RGB")).to_be_visible()
    expect(dialog.get_by_role("img")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    # the queue: select the fourth row (a canvas grid: rows are 35 px below a 35 px header)
    grid = page.locator('[class*="st-key-queue_table"] [data-testid="stDataFrameResizable"]')
    grid.click(position={"x": 12, "y": 35 + 35 * 3 + 17})  # its row marker
    heading(page, "4 of 6 · price · phone/phone-2.png")


def test_grid_untick_one_then_accept_the_rest_with_a_key(app_server, browser_page, factory):
    url, data = app_server
    page = browser_page
    open_review_as(page, url, "eve")
    page.get_by_test_id("stSidebar").get_by_text("Grid", exact=True).click()
    expect(page.get_by_role("button", name="Accept 3 ticked")).to_be_visible()
    page.get_by_text("shoe → bag 80%").click()  # untick the wrong suggestion
    expect(page.get_by_role("button", name="Accept 2 ticked")).to_be_visible()
    wait_until_idle(page)
    page.get_by_text("untick the wrong ones").click()  # focus on the page, not in a box
    page.keyboard.press("a")
    expect(page.get_by_text("Accepted 2 of 3. Undo reverts the whole page.")).to_be_visible()
    with factory() as session:
        log = [tuple(row) for row in session.execute(
            select(Sample.path, Correction.new_label, Correction.reviewer, Correction.batch_id)
            .join(Sample, Sample.id == Correction.sample_id).order_by(Correction.id))]
    assert [row[:3] for row in log] == [("bag/bag-0.png", "phone", "eve"), ("phone/phone-3.png", "shoe", "eve")]
    assert log[0][3] is not None and log[0][3] == log[1][3]  # one action


def test_grid_tiles_line_up_whatever_the_shape_of_the_photos(app_server, browser_page):
    url, data = app_server
    make_image(data.root / "bag/bag-0.png", size=(96, 32))  # a wide photo among square ones
    page = browser_page
    open_review_as(page, url, "eve")
    page.get_by_test_id("stSidebar").get_by_text("Grid", exact=True).click()
    expect(page.get_by_role("button", name="Accept 3 ticked")).to_be_visible()
    wait_until_idle(page)
    tiles = page.get_by_test_id("stMain").locator("img")
    expect(tiles).to_have_count(3)
    page.wait_for_function("""() => Array.from(document.querySelectorAll('[data-testid="stMain"] img'))
        .every(img => img.complete && img.naturalWidth > 0)""")
    boxes = [tile.bounding_box() for tile in tiles.all()]
    assert len({round(box["y"]) for box in boxes}) == 1  # one row
    assert all(abs(box["height"] - box["width"]) <= 1 for box in boxes), boxes  # square tiles of one size


def test_fix_a_price_then_export_the_corrected_listings(app_server, browser_page, db_path, tmp_path):
    url, data = app_server
    page = browser_page
    open_review_as(page, url, "eve")
    choose_kind(page, "price")
    heading(page, "1 of 1 · price · phone/phone-2.png")
    box = page.get_by_label("Price", exact=True)
    expect(box).to_have_value("320.00")
    box.fill("299")
    box.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Fix price").click()
    expect(page.get_by_text("phone/phone-2.png — 320.00 → 299.00")).to_be_visible()
    out = tmp_path / "clean"
    assert cli_main(["export", str(data.root), "--out", str(out), "--db", str(db_path)]) == 0
    with (out / "listings.csv").open(newline="") as stream:
        prices = {row["path"]: row["price"] for row in csv.DictReader(stream)}
    assert prices["phone/phone-2.png"] == "299.0" and prices["phone/phone-1.png"] == "310.0"


def test_a_price_flag_shows_what_similar_listings_sell_at_and_f_saves_the_suggested_slip(app_server, browser_page,
                                                                                         factory):
    """Evidence as core.audit.checks.price writes it when similar photos set the expected price."""
    url, data = app_server
    plant_expected_price_flag(factory, data)
    page = browser_page
    open_review_as(page, url, "eve")
    choose_kind(page, "price")
    heading(page, "1 of 1 · price · phone/phone-2.png")
    expect(page.get_by_text("95% range, typical 1,150.00")).to_be_visible()
    expect(page.get_by_text("The 2 most similar photos (of 20) sell at 1,050.00, 1,299.00")).to_be_visible()
    expect(page.get_by_label("Price", exact=True)).to_have_value("1299.00")
    press(page, "f")
    expect(page.get_by_text("phone/phone-2.png — 12,990.00 → 1,299.00")).to_be_visible()
    with factory() as session:
        correction = session.scalars(select(Correction)).one()
        assert (correction.action, correction.new_price, correction.reviewer) == ("price", 1299.0, "eve")


def test_relabel_with_look_alikes_moves_the_misfiled_kind_in_one_decision(app_server, browser_page, factory):
    """bag-0 and bag-1 are phones filed as bags: bag-1 shows beside bag-0 marked look-alike, and the button
    relabels both (and bag-1's duplicate copy bag-2) in one action."""
    url, _ = app_server
    store_embeddings_by_folder(factory, phones_filed_as_bags=("bag/bag-0.png", "bag/bag-1.png"))
    page = browser_page
    open_review_as(page, url, "eve")
    press(page, "n")
    heading(page, "2 of 6 · mislabel · bag/bag-0.png")
    expect(page.get_by_text("bag · 1.00 · look-alike")).to_be_visible()
    wait_until_idle(page)
    page.get_by_role("button", name="Relabel with 1 look-alike").click()
    expect(page.get_by_text("bag → phone, with 1 look-alike")).to_be_visible()
    with factory() as session:
        relabelled = session.execute(select(Sample.path, Correction.new_label).join(
            Sample, Sample.id == Correction.sample_id).order_by(Sample.path)).all()
    assert [tuple(row) for row in relabelled] == [("bag/bag-0.png", "phone"), ("bag/bag-1.png", "phone"),
                                                  ("bag/bag-2.png", "phone")]


def test_past_a_weak_budget_the_queue_goes_on_and_my_decisions_there_are_counted(app_server, browser_page, factory):
    """A newer audit whose mislabel evidence was weak: one flag, then two listings ranked past the budget."""
    url, data = app_server
    flags = {"bag/bag-1.png": ("mislabel", 0.02, "phone", None, "odd", {}),
             "phone/phone-0.png": ("maybe_mislabel", 0.2, "bag", None, "odd", {}),
             "phone/phone-1.png": ("maybe_mislabel", 0.3, "shoe", None, "odd", {})}
    summary = {"flags": 1, "seconds": 1.0, "assessed": 12, "estimated_issues": 1, "estimated_interval": [1, 4],
               "weak_evidence": True, "review_budget": 1, "past_budget": 2}
    add_weak_audit(factory, data, flags, summary)
    page = browser_page
    page.goto(f"{url}/Review")
    heading(page, "1 of 3 · mislabel · bag/bag-1.png")
    expect(page.get_by_text("2 more listings are ranked past it (maybe_mislabel)")).to_be_visible()
    page.get_by_label("Reviewer", exact=True).fill("eve")
    page.get_by_label("Reviewer", exact=True).press("Enter")
    press(page, "a")
    heading(page, "1 of 2 · maybe_mislabel · phone/phone-0.png")
    expect(page.get_by_text("ranked past the review budget")).to_be_visible()
    press(page, "a")
    heading(page, "1 of 1 · maybe_mislabel · phone/phone-1.png")
    expect(page.get_by_text("Past the budget: 1 of your 1 decisions confirmed the flag")).to_be_visible()
    with factory() as session:
        assert session.scalars(select(Correction.new_label).order_by(Correction.id)).all() == ["phone", "bag"]
