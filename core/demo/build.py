"""Build a demo dataset: marketplace listing photos with planted problems, and the answer key.

`build_demo` writes class folders of images, `listings.csv` (what a marketplace export looks like) and
`truth.csv` (which files are mislabelled, duplicated, mispriced or broken). Three styles draw the photos:
"photos" (core.demo.photos: colour cut-outs on tables, floors and beds), "sketches" (the same listings drawn
as pencil sketches) and "fashion" (core.demo.fashion: Fashion-MNIST items on a plain background). Planting
the problems (here) and writing the files (core.demo.write) are shared by all three.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from core.demo.fashion import FashionStyle
from core.demo.photos import ListingPhotosStyle, SketchesStyle
from core.demo.styles import DEFAULT_STYLE, DemoError, DemoOutputError, DemoStyle, Progress, pick_one
from core.demo.write import DemoPlan, write_broken, write_copies, write_photos, write_tables

logger = logging.getLogger(__name__)
#: ... and a price typo lands at least this factor away from it, so the two never overlap.
PRICE_TYPO_MIN_FACTOR = 5.0
DUPLICATE_KINDS = ("exact", "reencoded", "resized", "png")
BROKEN_KINDS = ("empty", "truncated_jpeg", "html_as_jpg", "garbled_header", "truncated_png", "text_as_png")
_MAX_FLIPPED_SHARE = 0.5  # of the items of confusable classes, so every folder keeps a correct majority
#: With misfiled items: the share of each chosen kind of item's listings put in its one wrong folder.
_MISFILED_ITEM_SHARE = 0.7
_NESTED_SHARE = 0.1  # of listing photos, written one folder deeper
_NESTED_FOLDER = "batch-2"
# A handful of photos get names with spaces and non-ASCII letters: "<prefix> <listing_id>.jpg".
_ODD_NAME_PREFIXES = ("crème brûlée", "Größe M foto", "IMG 2041 (1)", "photo café", "новое фото")
_CONFLICT_SHARE = 0.25  # of duplicates, re-uploaded under a different class folder
# Kinds of copies in the order they are dealt out, then shuffled: exact copies are 1 in 7.
_DUPLICATE_CYCLE = ("reencoded", "resized", "png", "exact", "reencoded", "resized", "png")


@dataclass(frozen=True)
class DemoReport:
    """What `build_demo` wrote and planted. Counts are numbers of files."""

    path: Path
    classes: tuple[str, ...]
    photos: int  # listing photos rendered by the style (excludes copies and broken files)
    mislabelled: int  # files in the folder of a class other than their true class (copies included)
    planted_mislabels: int  # listing photos moved into another class's folder
    duplicates: int
    duplicate_kinds: dict[str, int] = field(default_factory=dict)
    label_conflicts: int = 0  # duplicates in a different class folder than their original
    price_typos: int = 0
    broken: int = 0
    files: int = 0  # all files written, = rows of listings.csv and of truth.csv
    seconds: float = 0.0
    style: str = DEFAULT_STYLE


def _ignore_progress(fraction: float, message: str) -> None:
    """Default progress callback: does nothing."""


def _photos_style(*, classes: str, image_size: Optional[int]) -> DemoStyle:
    if image_size is not None:
        raise DemoError("image_size applies to the fashion style; the photos style draws 320-900 px photos")
    return ListingPhotosStyle(classes=classes)


def _sketches_style(*, classes: str, image_size: Optional[int]) -> DemoStyle:
    if image_size is not None:
        raise DemoError("image_size applies to the fashion style; the sketches style draws 320-900 px pictures")
    return SketchesStyle(classes=classes)


def _fashion_style(*, classes: str, image_size: Optional[int]) -> DemoStyle:
    if classes != "broad":
        raise DemoError(f"classes={classes!r} exists only for the photos style; fashion has its 10 classes")
    return FashionStyle(image_size=224 if image_size is None else image_size)


#: Style name -> factory(classes=..., image_size=...).
STYLES: dict[str, Callable[..., DemoStyle]] = {"photos": _photos_style, "sketches": _sketches_style,
                                               "fashion": _fashion_style}


def make_style(name: str, *, classes: str = "broad", image_size: Optional[int] = None) -> DemoStyle:
    """The style called `name` (one of STYLES); raises DemoError for an unknown name or options it lacks."""
    if name not in STYLES:
        raise DemoError(f"unknown demo style {name!r}; choose one of {', '.join(sorted(STYLES))}")
    return STYLES[name](classes=classes, image_size=image_size)


_BROKEN_EXTENSIONS = {kind: ".png" if kind.endswith("png") else ".jpg" for kind in BROKEN_KINDS}


def _plant_label_noise(true_labels: np.ndarray, style: DemoStyle, *, rate: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Given labels, shape (N,): round(rate * N) items moved to a class their class is confused with
    (style.neighbours), or, for style.random_flip_share of them, to any other class. Only items of
    classes with neighbours can move, at most half of those items, so each folder keeps a correct majority."""
    given = true_labels.copy()
    candidates = np.flatnonzero([label in style.neighbours for label in true_labels])
    wanted = round(rate * len(true_labels))
    count = min(wanted, int(len(candidates) * _MAX_FLIPPED_SHARE))
    if count < wanted:
        logger.warning("label noise capped at %d of %d wanted mislabels (half the confusable items)", count, wanted)
    for i in rng.choice(candidates, size=count, replace=False):
        label = true_labels[i]
        if style.random_flip_share > 0 and rng.random() < style.random_flip_share:
            given[i] = pick_one(rng, tuple(c for c in style.classes if c != label))
        else:
            given[i] = pick_one(rng, style.neighbours[label])
    return given


def _plant_item_noise(photos: pd.DataFrame, style: DemoStyle, *, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Given labels, shape (N,), where sellers misfile kinds of item, not single listings: kinds (the `item`
    column) of classes with confusable neighbours are taken in random order, and _MISFILED_ITEM_SHARE of each
    kind's listings moved to one wrong class chosen for that kind, until round(rate * N) listings are moved
    (at most half of the confusable classes' listings). The copies of a misfiled kind vouch for each other's
    wrong label, as a seller's habit does."""
    true_labels = photos["true_label"].to_numpy()
    given = true_labels.copy()
    confusable = np.array([label in style.neighbours for label in true_labels])
    wanted = min(round(rate * len(photos)), int(confusable.sum() * _MAX_FLIPPED_SHARE))
    kinds = photos[confusable].groupby("item").indices
    moved = 0
    for kind in rng.permutation(sorted(kinds)):
        if moved >= wanted:
            break
        positions = np.flatnonzero(confusable)[kinds[kind]]
        count = min(max(1, round(_MISFILED_ITEM_SHARE * len(positions))), wanted - moved)
        chosen = rng.choice(positions, size=count, replace=False)
        given[chosen] = pick_one(rng, style.neighbours[true_labels[positions[0]]])
        moved += count
    return given


def _plant_price_typos(photos: pd.DataFrame, *, rate: float, rng: np.random.Generator) -> None:
    """Give round(rate * N) listings a typo'd price: x100 (lost decimal point), /100 or x10 (extra zero).

    A factor that would leave the price within PRICE_TYPO_MIN_FACTOR of its median (column price_median)
    is replaced by x100 or /100, whichever moves it away from the median.
    """
    rows = rng.choice(len(photos), size=round(rate * len(photos)), replace=False)
    factors = rng.choice([100.0, 0.01, 10.0], size=len(rows))
    true_prices = photos["true_price"].to_numpy()[rows]
    medians = photos["price_median"].to_numpy()[rows]
    near = np.abs(np.log(true_prices * factors / medians)) < np.log(PRICE_TYPO_MIN_FACTOR)
    factors = np.where(near, np.where(true_prices >= medians, 100.0, 0.01), factors)
    photos.loc[rows, "price"] = np.maximum(np.round(true_prices * factors, 2), 0.01)
    photos.loc[rows, "is_price_typo"] = True


def _choose_file_names(photos: pd.DataFrame, rng: np.random.Generator) -> None:
    """Put about 10% of photos in a nested folder and give a handful names with spaces and non-ASCII."""
    photos["subfolder"] = ""
    nested = rng.choice(len(photos), size=round(_NESTED_SHARE * len(photos)), replace=False)
    photos.loc[nested, "subfolder"] = _NESTED_FOLDER
    photos["name_prefix"] = ""
    odd = rng.choice(len(photos), size=min(len(_ODD_NAME_PREFIXES), len(photos)), replace=False)
    photos.loc[odd, "name_prefix"] = [f"{prefix} " for prefix in _ODD_NAME_PREFIXES[: len(odd)]]


def _plan_copies(photos: pd.DataFrame, style: DemoStyle, *, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    """One row per re-upload of a listing photo, round(rate * N) in all: kind, JPEG quality and scale
    of the copy; a quarter of them in another class's folder; a price within 8% of the original's."""
    count = round(rate * len(photos))
    originals = rng.choice(len(photos), size=count, replace=False)
    carried = ["true_label", "given_label", "title", "seller_id", "true_price", *style.extra_truth_columns]
    copies = photos.loc[originals, carried].reset_index(drop=True)
    copies["original"] = originals
    copies["duplicate_kind"] = rng.permutation(np.resize(np.array(_DUPLICATE_CYCLE, dtype=object), count))
    conflicts = rng.choice(count, size=round(_CONFLICT_SHARE * count), replace=False)
    copies.loc[conflicts, "given_label"] = [
        pick_one(rng, tuple(c for c in style.classes if c != label)) for label in copies.loc[conflicts, "given_label"]
    ]
    copies["true_price"] = np.round(copies["true_price"].to_numpy() * rng.uniform(0.92, 1.08, count), 2)
    copies["price"] = copies["true_price"]
    copies["is_price_typo"] = False
    copies["quality"] = rng.integers(60, 81, count)  # below the originals' (85..95 fashion, 82..95 photos)
    copies["scale"] = rng.uniform(0.6, 0.9, count)
    return copies


def _assign_paths(photos: pd.DataFrame, copies: pd.DataFrame, broken: pd.DataFrame,
                  rng: np.random.Generator) -> None:
    """Give every file a listing id (L000001.., in random order) and its relative POSIX path."""
    ids = [f"L{number:06d}" for number in rng.permutation(len(photos) + len(copies) + len(broken)) + 1]
    for frame, start in ((photos, 0), (copies, len(photos)), (broken, len(photos) + len(copies))):
        frame["listing_id"] = ids[start: start + len(frame)]
    photos["path"] = [
        "/".join(part for part in (row.given_label, row.subfolder, f"{row.name_prefix}{row.listing_id}.jpg") if part)
        for row in photos.itertuples()
    ]
    copies["path"] = [
        f"{label}/{listing_id}{'.png' if kind == 'png' else '.jpg'}"
        for label, listing_id, kind in zip(copies["given_label"], copies["listing_id"], copies["duplicate_kind"])
    ]
    copies["duplicate_of"] = photos["path"].to_numpy()[copies["original"].to_numpy()]
    broken["path"] = [
        f"{label}/{listing_id}{_BROKEN_EXTENSIONS[kind]}"
        for label, listing_id, kind in zip(broken["given_label"], broken["listing_id"], broken["broken_kind"])
    ]


def _plan_demo(style: DemoStyle, source: Any, *, per_class: int, noise_rate: float, duplicate_rate: float,
               price_typo_rate: float, broken_count: int, rng: np.random.Generator,
               misfiled_items: bool = False) -> DemoPlan:
    """Every random choice of the demo, in a fixed order, so that a seed fixes the whole dataset."""
    drawn = style.plan_items(source, per_class=per_class, extra=broken_count, rng=rng)
    photos = drawn.iloc[: per_class * len(style.classes)].reset_index(drop=True)
    broken = drawn.iloc[len(photos):].reset_index(drop=True)
    if misfiled_items:
        photos["given_label"] = _plant_item_noise(photos, style, rate=noise_rate, rng=rng)
    else:
        photos["given_label"] = _plant_label_noise(photos["true_label"].to_numpy(), style, rate=noise_rate, rng=rng)
    style.after_label_noise(photos, rng)
    _plant_price_typos(photos, rate=price_typo_rate, rng=rng)
    _choose_file_names(photos, rng)
    copies = _plan_copies(photos, style, rate=duplicate_rate, rng=rng)
    broken["broken_kind"] = [BROKEN_KINDS[i % len(BROKEN_KINDS)] for i in range(len(broken))]
    _assign_paths(photos, copies, broken, rng)
    return DemoPlan(photos, copies, broken)


def _check_out_dir(out_dir: Path, *, overwrite: bool) -> None:
    """Raise DemoOutputError unless `out_dir` is absent, empty, or (with `overwrite`) a previous demo."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DemoOutputError(f"{out_dir} exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise DemoOutputError(
            f"{out_dir} is not empty; choose another folder, or pass --overwrite (overwrite=True) to replace it"
        )
    if not (out_dir / "truth.csv").is_file():
        raise DemoOutputError(
            f"{out_dir} is not empty and is not a demo dataset (it has no truth.csv); refusing to replace it"
        )


def _move_into_place(staging: Path, out_dir: Path, *, overwrite: bool) -> None:
    """Rename the finished `staging` folder to `out_dir`, replacing what `_check_out_dir` allows."""
    _check_out_dir(out_dir, overwrite=overwrite)  # again: something may have appeared while building
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = staging.with_name(staging.name + ".old")
    out_dir.rename(retired)
    staging.rename(out_dir)
    shutil.rmtree(retired)


def _validate_options(*, per_class: int, noise_rate: float, duplicate_rate: float, price_typo_rate: float,
                      broken_count: int, image_size: Optional[int]) -> None:
    """Raise DemoError for an option out of range."""
    if per_class < 1:
        raise DemoError(f"per_class must be at least 1, got {per_class}")
    for name, rate in (("noise_rate", noise_rate), ("duplicate_rate", duplicate_rate),
                       ("price_typo_rate", price_typo_rate)):
        if not 0.0 <= rate <= 1.0:
            raise DemoError(f"{name} must be in [0, 1], got {rate}")
    if broken_count < 0:
        raise DemoError(f"broken_count must be at least 0, got {broken_count}")
    if image_size is not None and image_size < 32:
        raise DemoError(f"image_size must be at least 32 pixels, got {image_size}")


def _summarize(plan: DemoPlan, truth: pd.DataFrame, style: DemoStyle, out_dir: Path, seconds: float) -> DemoReport:
    """The report of a finished build."""
    copies = plan.copies
    return DemoReport(
        path=out_dir,
        classes=style.classes,
        photos=len(plan.photos),
        mislabelled=int(truth["is_mislabel"].sum()),
        planted_mislabels=int((plan.photos["given_label"] != plan.photos["true_label"]).sum()),
        duplicates=len(copies),
        duplicate_kinds={kind: int((copies["duplicate_kind"] == kind).sum()) for kind in DUPLICATE_KINDS},
        label_conflicts=int((copies["given_label"] != plan.photos["given_label"].to_numpy()[copies["original"]]).sum()),
        price_typos=int(truth["is_price_typo"].sum()),
        broken=len(plan.broken),
        files=len(truth),
        seconds=seconds,
        style=style.name,
    )


def build_demo(
    out_dir: Path | str,
    *,
    style: str = DEFAULT_STYLE,
    classes: str = "broad",
    source_dir: Path | str | None = None,
    per_class: Optional[int] = None,
    seed: int = 0,
    noise_rate: Optional[float] = None,
    duplicate_rate: float = 0.03,
    price_typo_rate: float = 0.02,
    broken_count: int = 6,
    image_size: Optional[int] = None,
    titles: bool = True,
    label_titles: bool = False,
    prices: bool = True,
    misfiled_items: bool = False,
    overwrite: bool = False,
    progress: Optional[Progress] = None,
) -> DemoReport:
    """Write the demo dataset to `out_dir`: one folder per class, listings.csv and truth.csv.

    `style` "photos" (default; core.demo.photos) draws colour cut-outs on tables, floors and beds,
    320-900 px; `classes` "broad" (9 classes) or "fine" (24 sub-classes). "fashion" draws Fashion-MNIST
    items as `image_size`-pixel squares (default 224) and has only its 10 classes. `per_class`,
    `noise_rate` and `source_dir` default to the style's (about 5,000 photos; noise 0.10 photos,
    0.08 fashion; the stamps or the Fashion-MNIST folder).

    Planted: `noise_rate` x N photos in a plausible wrong class's folder (keeping their true item's
    price and, mostly, title), `duplicate_rate` x N re-uploaded copies (a quarter in another class's
    folder), `price_typo_rate` x N price typos, and `broken_count` unreadable files; N = K x per_class.
    `titles=False` / `prices=False` leave those columns of listings.csv empty (same photos and labels);
    `label_titles=True` makes every title repeat the given folder's class, as sellers write titles from the
    category they picked ("coat for sale"). `misfiled_items=True` plants the mislabels as whole kinds of item
    misfiled together (most of one kind's listings in one wrong folder), as a seller's habit does, instead of
    one listing at a time (styles with kinds of item: photos, sketches).
    The same options and seed give the same files.

    The build happens in a hidden sibling folder renamed into place at the end, so `out_dir` never holds a
    half-built demo. Raises DemoOutputError if `out_dir` is not empty, unless `overwrite` is set and it is
    a previous demo (it has truth.csv); DemoSourceError if the style's source files are missing; DemoError
    for an unknown style or an option out of range. `progress(fraction, message)` gets fraction in [0, 1].
    """
    demo_style = make_style(style, classes=classes, image_size=image_size)
    if misfiled_items and "item" not in demo_style.extra_truth_columns:
        raise DemoError(f"misfiled items need a style with kinds of item (photos, sketches), not {style!r}")
    per_class = demo_style.default_per_class if per_class is None else per_class
    noise_rate = demo_style.default_noise_rate if noise_rate is None else noise_rate
    _validate_options(per_class=per_class, noise_rate=noise_rate, duplicate_rate=duplicate_rate,
                      price_typo_rate=price_typo_rate, broken_count=broken_count, image_size=image_size)
    out_dir = Path(out_dir).resolve()
    _check_out_dir(out_dir, overwrite=overwrite)
    progress = progress or _ignore_progress
    started = time.monotonic()
    progress(0.0, f"loading {demo_style.source_label}")
    source = demo_style.load(Path(source_dir) if source_dir is not None else demo_style.default_source)
    demo_style.check_capacity(source, per_class=per_class, broken_count=broken_count)
    plan = _plan_demo(demo_style, source, per_class=per_class, noise_rate=noise_rate, duplicate_rate=duplicate_rate,
                      price_typo_rate=price_typo_rate, broken_count=broken_count, rng=np.random.default_rng(seed),
                      misfiled_items=misfiled_items)
    demo_style.prepare(source, pd.concat([plan.photos, plan.broken], ignore_index=True))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        write_photos(plan.photos, demo_style, source, staging, progress=progress, span=(0.05, 0.93))
        progress(0.93, "writing duplicates and broken files")
        write_copies(plan.copies, staging)
        write_broken(plan.broken, demo_style, source, staging)
        progress(0.97, "writing listings.csv and truth.csv")
        truth = write_tables(plan, demo_style, staging, titles=titles, prices=prices, label_titles=label_titles)
        _move_into_place(staging, out_dir, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report = _summarize(plan, truth, demo_style, out_dir, time.monotonic() - started)
    progress(1.0, "done")
    logger.info("built demo dataset in %s: %d files in %.1f s", out_dir, report.files, report.seconds)
    return report
