"""Review in a real browser: click-to-settled time of each keyboard action on the 5,000-listing photo demo.

Usage: python bench/review_browser.py [--dataset DIR] [--db FILE] [--reuse-db FILE] [--dataset-id N]
                                      [--url URL] [--repeat 15] [--json]

Set-up: scan the dataset and audit it (broken, duplicate, price and mislabel checks; 4 to 12
minutes on 2 cores, with the load) into --db, or copy an audited database given with --reuse-db (the copy
is changed, the original never). Then `streamlit run app.py` on that database (the E2E
recipe of tests/e2e/browser.py: the system Chromium, headless, 1440x900) opens
/Review?reviewer=bench&dataset=N, filters the queue to mislabels and times, per key press:

- next (`n`), accept the suggestion (`a`), relabel to the class in the list (`l`), undo (`u`),
  one cycle n, a, l, u per repeat on the single-item view;
- on the grid view (24 tiles): untick one tile (a click), then accept the ticked ones (`a`).

"Settled" is the first moment after the key press at which the app's script is idle again
(`stApp[data-test-script-state="notRunning"]`, no element placeholder left in the main area)
and the expected new heading and notice are shown (polled every animation frame); "+ images"
also waits until every image on the page has loaded. One warm-up cycle is not counted. The
machine's load average is sampled during the run: the machine may be shared, and wall times
grow with it; the app server's CPU time per action (user + system, from /proc, from the key
press to settled) grows far less, and tells code changes apart on a busy machine.

The dataset measured is --dataset-id, else the one whose folder is --dataset, else the only one in the
database. With --url the app already running there is measured instead (no set-up, no server of our own):
--db then names the database that server uses, and the server's CPU time is read when it runs here.
The actions decide flags, so measure a copy of a database that matters (--reuse-db).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

try:
    from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, running_app  # noqa: E402
except pytest.skip.Exception as missing:  # the module skips itself when there is no Chromium
    raise SystemExit(f"error: {missing.msg}") from None
from db.engine import make_engine, make_session_factory  # noqa: E402
from db.queries import list_datasets  # noqa: E402
from db.review import QueueFilter, data_version, queue_count  # noqa: E402

DEMO = REPO / "data" / "demo-photos"
REVIEWER = "bench"
VIEWPORT = {"width": 1440, "height": 900}
STEP_TIMEOUT_MS = 60_000
GRID_TILES = 24
LOAD_SAMPLE_S = 2.0

#: JavaScript statements: return false unless the app's script has finished its run and the main area shows
#: no placeholder (Streamlit draws a skeleton for an element whose code is still loading, for seconds on a
#: busy machine, while the script is already idle).
_UNLESS_IDLE = """
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stMain"] [data-testid="stSkeleton"]')) return false;"""
#: True once the app is idle (as above).
SCRIPT_IDLE_JS = "() => {" + _UNLESS_IDLE + "\n  return true;\n}"
#: True once the app is idle, the item heading starts with `heading` (and differs from `before`), and a
#: notice (an alert) contains `notice` when one is given.
ITEM_SETTLED_JS = "([heading, before, notice]) => {" + _UNLESS_IDLE + """
  const shown = Array.from(document.querySelectorAll('[data-testid="stMain"] h3'))
    .map(h => h.innerText.trim()).find(text => /^\\d+ of \\d+ · /.test(text));
  if (!shown || shown === before || !shown.startsWith(heading)) return false;
  if (!notice) return true;
  return Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stAlert"]'))
    .some(alert => alert.innerText.includes(notice));
}"""
#: True once the app is idle and the main area's text contains every string in `texts`.
TEXT_SETTLED_JS = "(texts) => {" + _UNLESS_IDLE + """
  const main = document.querySelector('[data-testid="stMain"]');
  return !!main && texts.every(text => main.innerText.includes(text));
}"""
#: True once every image of the main area has loaded.
IMAGES_LOADED_JS = """() => Array.from(document.querySelectorAll('[data-testid="stMain"] img'))
  .every(img => img.complete && img.naturalWidth > 0)"""
ITEM_HEADING = re.compile(r"^(\d+) of (\d+) · (\w+) · (.+)$")
GRID_CAPTION = re.compile(r"(\d+)-(\d+) of (\d+) · untick")
ACCEPT_TICKED = re.compile(r"^Accept (\d+) ticked")


# --- set-up ---------------------------------------------------------------------------------------


def cli(*arguments: str) -> None:
    """Run `listing-audit ARGUMENTS` in its own process; its output goes to this process's stderr."""
    subprocess.run([sys.executable, "-m", "cli.main", *arguments], cwd=REPO, check=True, stdout=sys.stderr)


def demo_dataset(workdir: Path) -> Path:
    """data/demo-photos when it is there, else the photo demo (about 5,000 listings) built under `workdir`."""
    if DEMO.is_dir():
        return DEMO
    out = workdir / "demo"
    cli("demo", "--out", str(out))
    return out


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite database `source` (its WAL included) at `target`."""
    if not source.is_file():
        raise SystemExit(f"error: no database at {source}")
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader, sqlite3.connect(target) as writer:
        reader.backup(writer)


def prepare_database(dataset: Path, db: Path, *, reuse_db: Optional[Path]) -> float:
    """Fill `db` with a scan and an audit of `dataset` (or a copy of the audited `reuse_db`); returns seconds."""
    started = time.perf_counter()
    db.unlink(missing_ok=True)
    if reuse_db is not None:
        copy_database(reuse_db, db)
    else:
        cli("scan", str(dataset), "--db", str(db))
        cli("audit", str(dataset), "--checks", "broken,duplicate,price,mislabel", "--db", str(db))
    return time.perf_counter() - started


# --- the browser ----------------------------------------------------------------------------------


@contextmanager
def app_in_browser(db: Path, log: Path) -> Iterator[tuple[object, str]]:
    """(page, base URL): a 1440x900 page of headless Chromium and the app running against `db`."""
    from playwright.sync_api import sync_playwright

    with running_app(db, log) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(STEP_TIMEOUT_MS)
            yield page, url
        finally:
            browser.close()


def wait_idle(page) -> None:
    page.wait_for_function(SCRIPT_IDLE_JS, polling="raf")


def focus_page(page) -> None:
    """Wait until the script is idle, then put the focus on the page (not in a text box) for a shortcut key."""
    wait_idle(page)
    page.get_by_role("heading", name="Review", exact=True).click()


def open_review(page, url: str, dataset_id: int) -> None:
    """Review of dataset `dataset_id` as REVIEWER (both from the URL), single-item view, the queue filtered to
    mislabels."""
    page.goto(f"{url}/Review?reviewer={REVIEWER}&dataset={dataset_id}")
    page.get_by_role("heading", name=re.compile(r"^\d+ of \d+ · ")).wait_for()
    wait_idle(page)
    page.get_by_test_id("stSidebar").get_by_role("combobox", name=re.compile("Kind of flag")).click()
    page.get_by_role("option", name=re.compile(r"^mislabel")).click()
    page.keyboard.press("Escape")
    page.get_by_role("heading", name=re.compile(r"^1 of \d+ · mislabel · ")).wait_for()
    wait_idle(page)


def item_heading(page) -> tuple[int, int, str, str]:
    """(position from 1, queue length, kind, path) of the item shown."""
    text = page.get_by_role("heading", name=ITEM_HEADING).inner_text().strip()
    position, total, kind, path = ITEM_HEADING.match(text).groups()
    return int(position), int(total), kind, path


@dataclass
class Timing:
    """Seconds from the key press (or click) to settled, and to settled with every image loaded; CPU seconds
    the app server used from the key press to settled (NaN where /proc cannot tell)."""

    settled: float
    images: float
    server_cpu: float


@functools.lru_cache(maxsize=None)
def app_server_pid(port: int) -> Optional[int]:
    """The process id of the `streamlit run ... --server.port PORT` serving `port` (Linux), else None."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in arguments and b"--server.port" in arguments:
            if arguments[arguments.index(b"--server.port") + 1] == str(port).encode():
                return int(cmdline.parent.name)
    return None


def cpu_seconds(pid: Optional[int]) -> float:
    """CPU seconds (user + system, every thread) that process `pid` has used so far; NaN when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(page, act, settled_js: str, arg) -> Timing:
    """Run `act()` (a key press or click) and wait until `settled_js(arg)` holds, then until the images load."""
    server = app_server_pid(urlsplit(page.url).port)
    cpu_before = cpu_seconds(server)
    started = time.perf_counter()
    act()
    page.wait_for_function(settled_js, arg=arg, polling="raf")
    settled = time.perf_counter() - started
    server_cpu = cpu_seconds(server) - cpu_before
    page.wait_for_function(IMAGES_LOADED_JS, polling="raf")
    return Timing(settled, time.perf_counter() - started, server_cpu)


def press_on_item(page, key: str, *, heading: str, notice: Optional[str] = None) -> Timing:
    """Press `key` on the single-item view; settled when the heading starts with `heading` (and `notice` shows)."""
    focus_page(page)
    before = page.get_by_role("heading", name=ITEM_HEADING).inner_text().strip()
    return timed(page, lambda: page.keyboard.press(key), ITEM_SETTLED_JS, [heading, before, notice])


def review_cycle(page) -> dict[str, Timing]:
    """n, a, l, u on the mislabel queue: one next, two decisions, and the undo of the second."""
    timings = {}
    position, total, _, _ = item_heading(page)
    timings["next (n)"] = press_on_item(page, "n", heading=f"{position + 1} of {total} · mislabel · ")
    position, total, _, accepted = item_heading(page)
    timings["accept (a)"] = press_on_item(page, "a", heading=f"{position} of {total - 1} · mislabel · ",
                                          notice=f"Relabel: {accepted} — ")
    position, total, _, relabelled = item_heading(page)
    timings["relabel (l)"] = press_on_item(page, "l", heading=f"{position} of {total - 1} · mislabel · ",
                                           notice=f"Relabel: {relabelled} — ")
    _, total, _, _ = item_heading(page)
    timings["undo (u)"] = press_on_item(page, "u", heading=f"{position} of {total + 1} · mislabel · {relabelled}",
                                        notice=f"Undid your last decision on {relabelled}")
    return timings


def grid_state(page) -> tuple[int, int]:
    """(flags in the grid's queue, tiles ticked) as the grid shows them."""
    caption = page.get_by_text(GRID_CAPTION).inner_text()
    ticked = page.get_by_role("button", name=ACCEPT_TICKED).inner_text().strip()
    return int(GRID_CAPTION.search(caption).group(3)), int(ACCEPT_TICKED.match(ticked).group(1))


def open_grid(page) -> None:
    wait_idle(page)
    page.get_by_test_id("stSidebar").get_by_text("Grid", exact=True).click()
    page.get_by_role("button", name=ACCEPT_TICKED).wait_for()
    page.wait_for_function(TEXT_SETTLED_JS, arg=["untick the wrong ones"], polling="raf")


def grid_tiles(page, *, ticked: bool):
    """The grid's tick boxes that are (or are not) ticked."""
    return (page.get_by_test_id("stMain").get_by_test_id("stCheckbox")
            .filter(has=page.locator("input:checked" if ticked else "input:not(:checked)")))


def tick_every_tile(page) -> None:
    """Tick the tiles left unticked on the page before (an unticked flag stays open and keeps its box)."""
    while grid_tiles(page, ticked=False).count():
        _, ticked = grid_state(page)
        grid_tiles(page, ticked=False).first.locator("label").click()
        page.wait_for_function(TEXT_SETTLED_JS, arg=[f"Accept {ticked + 1} ticked"], polling="raf")


def grid_cycle(page) -> dict[str, Timing]:
    """On a page of GRID_TILES ticked tiles, untick the first (a click), then accept the other ones with `a`."""
    wait_idle(page)
    tick_every_tile(page)
    _, ticked = grid_state(page)
    tile = grid_tiles(page, ticked=True).first
    untick = timed(page, lambda: tile.locator("label").click(), TEXT_SETTLED_JS, [f"Accept {ticked - 1} ticked"])
    focus_page(page)
    # the page's relabels also reach their copies in duplicate groups, whose flags leave the queue with them
    accept = timed(page, lambda: page.keyboard.press("a"), TEXT_SETTLED_JS,
                   [f"Accepted {ticked - 1} of {GRID_TILES}", "Undo reverts the whole page."])
    return {"grid: untick one (click)": untick, f"grid: accept a page of {GRID_TILES} (a)": accept}


# --- the machine ----------------------------------------------------------------------------------


@dataclass
class LoadSampler:
    """The 1-minute load average, sampled every LOAD_SAMPLE_S seconds in a thread while measuring."""

    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "LoadSampler":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(LOAD_SAMPLE_S):
                return


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def machine(browser_version: str) -> dict:
    import streamlit

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu_model(), "uptime": uptime,
            "python": platform.python_version(), "streamlit": streamlit.__version__, "chromium": browser_version}


# --- measuring ------------------------------------------------------------------------------------


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]


def summarise(samples: dict[str, list[Timing]]) -> list[dict]:
    rows = []
    for action, timings in samples.items():
        settled = [timing.settled for timing in timings]
        images = [timing.images for timing in timings]
        rows.append({"action": action, "n": len(timings), "median_s": statistics.median(settled),
                     "p90_s": p90(settled), "median_images_s": statistics.median(images),
                     "p90_images_s": p90(images),
                     "median_server_cpu_s": statistics.median(timing.server_cpu for timing in timings),
                     "samples_s": [round(value, 4) for value in settled]})
    return rows


def run_cycles(cycle, page, *, repeat: int, samples: dict[str, list[Timing]]) -> None:
    """A warm-up `cycle(page)`, then `repeat` counted ones whose timings go into `samples` (action -> timings)."""
    cycle(page)
    for _ in range(repeat):
        for action, timing in cycle(page).items():
            samples.setdefault(action, []).append(timing)


def measure(page, url: str, dataset_id: int, *, repeat: int) -> dict[str, list[Timing]]:
    """One warm-up cycle of each view, then `repeat` counted cycles of each."""
    samples: dict[str, list[Timing]] = {}
    open_review(page, url, dataset_id)
    run_cycles(review_cycle, page, repeat=repeat, samples=samples)
    open_grid(page)
    run_cycles(grid_cycle, page, repeat=repeat, samples=samples)
    return samples


def print_table(result: dict) -> None:
    host = result["machine"]
    print(f"{host['nproc']} cores ({host['cpu']}), Python {host['python']}, Streamlit {host['streamlit']}, "
          f"Chromium {host['chromium']}")
    print(f"uptime at the end: {host['uptime']}")
    load = result["load_1min"]
    print(f"1-minute load average: {load['before']:.2f} before the app started; during the run min "
          f"{load['min']:.2f}, median {load['median']:.2f}, max {load['max']:.2f} ({load['samples']} samples)")
    print(f"dataset {result['dataset_id']} ({result['dataset']}){' at ' + result['url'] if result['url'] else ''}: set-up {result['setup_s']:.0f} s, "
          f"{result['mislabels_open_at_start']} open mislabel flags at the start")
    print()
    print(f"{'action':32} {'n':>3} {'median s':>9} {'p90 s':>7} {'+ images median':>16} {'p90':>6} "
          f"{'server CPU s':>13}")
    for row in result["actions"]:
        print(f"{row['action']:32} {row['n']:>3} {row['median_s']:>9.3f} {row['p90_s']:>7.3f} "
              f"{row['median_images_s']:>16.3f} {row['p90_images_s']:>6.3f} {row['median_server_cpu_s']:>13.2f}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, help="dataset folder (default: data/demo-photos, else a new demo)")
    parser.add_argument("--db", type=Path, help="database to fill and measure on (default: a temporary file)")
    parser.add_argument("--reuse-db", type=Path, help="copy this audited database instead of scanning and auditing")
    parser.add_argument("--dataset-id", type=int, help="the database's dataset to measure (default: the one "
                        "whose folder is --dataset, else the only one)")
    parser.add_argument("--url", help="measure the app running at this address (with --db, its database)")
    parser.add_argument("--repeat", type=int, default=15, help="counted cycles of each view")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.url and not args.db:
        parser.error("--url needs --db, the database of the app running there")
    if args.url and args.reuse_db:
        parser.error("--url measures a running app: it cannot also copy --reuse-db")
    return args


def chosen_dataset(db: Path, *, dataset_id: Optional[int], folder: Optional[Path]) -> tuple[int, str]:
    """(id, folder) of the dataset to measure: `dataset_id`, else the one scanned from `folder`, else the
    only one. Exits with one line when there is no such dataset or the choice is ambiguous."""
    engine = make_engine(str(db))
    try:
        with make_session_factory(engine)() as session:
            datasets = {dataset.id: dataset.root for dataset in list_datasets(session)}
    finally:
        engine.dispose()
    if dataset_id is not None:
        if dataset_id not in datasets:
            raise SystemExit(f"error: {db} has no dataset {dataset_id}; it has {sorted(datasets) or 'none'}")
        return dataset_id, datasets[dataset_id]
    if folder is not None:
        matches = [key for key, root in datasets.items() if Path(root).resolve() == folder]
        if matches:
            return matches[0], datasets[matches[0]]
    if len(datasets) == 1:
        return next(iter(datasets.items()))
    raise SystemExit(f"error: {db} has {len(datasets)} datasets ({sorted(datasets)}); name one with --dataset-id")


def open_mislabels(db: Path, dataset_id: int) -> int:
    """Open mislabel flags of the dataset's latest audit."""
    engine = make_engine(str(db))
    try:
        with make_session_factory(engine)() as session:
            job_id = data_version(session, dataset_id)[0]
            return queue_count(session, job_id, QueueFilter(kinds=("mislabel",), state="open"))
    finally:
        engine.dispose()


def mislabels_needed(repeat: int) -> int:
    """Open mislabel flags that `repeat` counted cycles (and the warm-up) decide, and a full last grid page."""
    cycles = repeat + 1
    return cycles * 1 + cycles * (GRID_TILES - 1) + GRID_TILES


@contextmanager
def browser_on(url: str) -> Iterator[tuple[object, str]]:
    """(page, url): a 1440x900 page of headless Chromium for the app already running at `url`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(STEP_TIMEOUT_MS)
            yield page, url.rstrip("/")
        finally:
            browser.close()


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="review-browser-") as workdir:
        workdir = Path(workdir)
        if args.url:
            db, setup_s = args.db.resolve(), 0.0
            folder = args.dataset.resolve() if args.dataset else None
        else:
            folder = (args.dataset or demo_dataset(workdir)).resolve()
            db = (args.db or workdir / "review.db").resolve()
            setup_s = prepare_database(folder, db, reuse_db=args.reuse_db)
        dataset_id, dataset = chosen_dataset(db, dataset_id=args.dataset_id, folder=folder)
        mislabels = open_mislabels(db, dataset_id)
        needed = mislabels_needed(args.repeat)
        if mislabels < needed:
            raise SystemExit(f"error: {mislabels} open mislabel flags; --repeat {args.repeat} needs {needed}")
        load_before = os.getloadavg()[0]
        app = browser_on(args.url) if args.url else app_in_browser(db, workdir / "streamlit.log")
        with app as (page, url), LoadSampler() as load:
            samples = measure(page, url, dataset_id, repeat=args.repeat)
            browser_version = page.context.browser.version
    result = {
        "dataset": dataset, "dataset_id": dataset_id, "url": args.url, "setup_s": setup_s,
        "mislabels_open_at_start": mislabels, "repeat": args.repeat,
        "machine": machine(browser_version),
        "load_1min": {"before": load_before, "min": min(load.samples), "median": statistics.median(load.samples),
                      "max": max(load.samples), "samples": len(load.samples)},
        "actions": summarise(samples),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
