"""The README's screenshots (docs/screenshots/), taken in headless Chromium at 1440x900 on the photo demo.

Usage: python bench/screenshots.py [--dataset DIR] [--db FILE] [--reuse-db FILE] [--out docs/screenshots]

Set-up as bench/review_browser.py (scan and audit, or a copy of an audited database), then,
unless the database has a finished one, a cheap training run (MobileNetV2, 1 epoch at 64 px)
for the Metrics page. Then, as reviewer "bench": Review on a mislabel (review-single.png); on
the surest price flag (review-price.png);
the grid with one tile unticked (review-grid.png), whose page is then accepted; home with
the audit's review progress (home-progress.png); Metrics with the most confused cell and
three of its images ticked (metrics-cell.png); Browse's embedding map with a lasso drawn on it
(browse-map.png).
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from bench.review_browser import (  # noqa: E402
    IMAGES_LOADED_JS, REPO, REVIEWER, TEXT_SETTLED_JS, app_in_browser, chosen_dataset, cli, demo_dataset, focus_page,
    grid_tiles, open_grid, open_review, prepare_database, wait_idle,
)
from db.engine import make_engine, make_session_factory  # noqa: E402
from db.models import Job  # noqa: E402
from db.runs import TRAIN_KIND  # noqa: E402

TRAIN_OPTIONS = ("--epochs", "1", "--image-size", "64", "--batch-size", "64")
CELL_TICKS = 3


def shoot(page, out: Path, name: str) -> Path:
    """A screenshot of the viewport (not the whole page) once the script is idle and the images have loaded."""
    wait_idle(page)
    page.wait_for_function(IMAGES_LOADED_JS, polling="raf")
    path = out / name
    page.screenshot(path=str(path), full_page=False)
    return path


def review_single(page, url: str, dataset_id: int, out: Path) -> Path:
    open_review(page, url, dataset_id)
    page.get_by_role("heading", name=re.compile(r"^1 of \d+ · mislabel · ")).scroll_into_view_if_needed()
    return shoot(page, out, "review-single.png")


def review_price(page, url: str, dataset_id: int, out: Path) -> Path:
    """Review on the surest price flag: its expected range, the most similar listings' prices, the slip."""
    page.goto(f"{url}/Review?reviewer={REVIEWER}&dataset={dataset_id}&kind=price")
    page.get_by_role("heading", name=re.compile(r"^1 of \d+ · price · ")).wait_for()
    wait_idle(page)
    page.get_by_text(re.compile(r"^Price ")).first.scroll_into_view_if_needed()
    return shoot(page, out, "review-price.png")


def review_grid(page, out: Path) -> Path:
    """The grid with its first tile unticked; the page is accepted afterwards (home then shows progress)."""
    open_grid(page)
    grid_tiles(page, ticked=True).first.locator("label").click()
    page.wait_for_function(TEXT_SETTLED_JS, arg=["Accept 23 ticked"], polling="raf")
    path = shoot(page, out, "review-grid.png")
    focus_page(page)
    page.keyboard.press("a")
    page.wait_for_function(TEXT_SETTLED_JS, arg=["Accepted 23 of 24"], polling="raf")
    return path


def home_progress(page, url: str, out: Path) -> Path:
    page.goto(f"{url}/?reviewer={REVIEWER}")
    page.get_by_text("Review progress").wait_for()
    page.get_by_role("heading", name="Audit", exact=True).evaluate("heading => heading.scrollIntoView()")
    return shoot(page, out, "home-progress.png")


def metrics_cell(page, url: str, out: Path) -> Path:
    """Metrics on the run, its most confused cell (the page's default) with CELL_TICKS images ticked."""
    page.goto(f"{url}/Metrics?reviewer={REVIEWER}")
    cell = page.get_by_text(re.compile(r"validation images of class"))
    cell.wait_for()
    wait_idle(page)
    for ticked, box in enumerate(tile_boxes(page)[:CELL_TICKS], start=1):
        box.locator("label").click()
        page.get_by_role("button", name=re.compile(rf"^Relabel {ticked} ticked to ")).wait_for()
        wait_idle(page)
    cell.evaluate("caption => caption.scrollIntoView({block: 'center'})")  # the matrix's lower rows above it
    return shoot(page, out, "metrics-cell.png")


def browse_map(page, url: str, out: Path) -> Path:
    """Browse's embedding map coloured by label, with a lasso drawn round part of it (what it selected below)."""
    page.goto(f"{url}/Browse?reviewer={REVIEWER}")
    page.get_by_role("heading", name="Browse", exact=True).wait_for()
    wait_idle(page)
    page.get_by_text("Embedding map", exact=True).click()
    chart = page.get_by_test_id("stPlotlyChart").first
    chart.wait_for()
    wait_idle(page)
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    corners = [(0.35, 0.3), (0.55, 0.3), (0.55, 0.6), (0.35, 0.6), (0.35, 0.31)]
    page.mouse.move(box["x"] + box["width"] * corners[0][0], box["y"] + box["height"] * corners[0][1])
    page.mouse.down()
    for x, y in corners[1:]:
        page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=6)
    page.mouse.up()
    page.get_by_text(re.compile(r"listings selected")).first.wait_for()
    wait_idle(page)
    chart.scroll_into_view_if_needed()
    return shoot(page, out, "browse-map.png")


def tile_boxes(page) -> list:
    """The tick boxes of the cell's images in reading order (a column per tile, a row of columns per row)."""
    checkbox = page.get_by_test_id("stCheckbox")
    columns = page.get_by_test_id("stMain").get_by_test_id("stColumn").filter(has=checkbox)
    return [column.get_by_test_id("stCheckbox") for column in columns.all()]


def has_finished_run(db: Path) -> bool:
    """Whether the database holds a succeeded training run (one copied with --reuse-db is used as it is)."""
    engine = make_engine(str(db))
    try:
        with make_session_factory(engine)() as session:
            finished = select(Job.id).where(Job.kind == TRAIN_KIND, Job.status == "succeeded")
            return session.scalar(finished) is not None
    finally:
        engine.dispose()


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, help="dataset folder (default: data/demo-photos, else a new demo)")
    parser.add_argument("--reuse-db", type=Path, help="copy this audited database instead of scanning and auditing")
    parser.add_argument("--db", type=Path, help="database to fill and photograph (default: a temporary file)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as workdir:
        workdir = Path(workdir)
        dataset = (args.dataset or demo_dataset(workdir)).resolve()
        db = (args.db or workdir / "screenshots.db").resolve()
        prepare_database(dataset, db, reuse_db=args.reuse_db)
        dataset_id = chosen_dataset(db, dataset_id=None, folder=dataset)[0]
        if not has_finished_run(db):
            cli("train", str(dataset), "--db", str(db), *TRAIN_OPTIONS)
        with app_in_browser(db, workdir / "streamlit.log") as (page, url):
            shots = [review_single(page, url, dataset_id, args.out), review_price(page, url, dataset_id, args.out),
                     review_grid(page, args.out),
                     home_progress(page, url, args.out), metrics_cell(page, url, args.out),
                     browse_map(page, url, args.out)]
    for path in shots:
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
