"""Many small synthetic listing photos, fast: N JPEGs in K class folders, a listings.csv and a truth.csv.

Each class is one shape (triangle, square, disc, star, ...) in its own band of hues, drawn at a random
place, size and angle on a crop of one of a bank of smooth colour textures, then JPEG-encoded at a
random quality. Planted problems: listings filed under the wrong class, exact copies (the same bytes,
some under another class), near copies (the same picture re-encoded at another quality), broken files
(truncated JPEGs, text saved as .jpg) and price outliers (a decimal slip: the price times 100).
Written by several processes; 100,000 photos of 96 px take about half a minute on two cores.
"""
from __future__ import annotations

import colorsys
import csv
import io
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

#: Class name -> (number of corners, ratio of inner to outer radius for stars, 1 for plain polygons).
#: 0 corners draws an ellipse; a ratio below 1 alternates outer and inner corners (a star or a cross).
SHAPES: dict[str, tuple[int, float]] = {
    "triangle": (3, 1.0), "square": (4, 1.0), "pentagon": (5, 1.0), "hexagon": (6, 1.0), "disc": (0, 1.0),
    "star": (5, 0.45), "cross": (4, 0.3), "gear": (10, 0.75), "sparkle": (4, 0.2), "octagon": (8, 1.0),
}
#: Words a seller uses for an item of each class, and for its condition.
NOUNS = {name: (f"{name} lamp", f"{name} badge", f"{name} tile") for name in SHAPES}
CONDITIONS = ("as new", "used", "good condition", "barely used", "needs a clean", "")
COLOUR_NAMES = ((0.05, "red"), (0.12, "orange"), (0.2, "yellow"), (0.42, "green"), (0.55, "teal"),
                (0.7, "blue"), (0.8, "purple"), (0.92, "pink"), (1.01, "red"))
TEXTURES = 48
TEXTURE_SIDE = 256
#: Lowest and highest JPEG quality of an original photo; a near copy is saved at another quality in range.
QUALITY_RANGE = (72, 93)
NEAR_QUALITY_STEP = 10
CHUNK = 500  # photos per task
CSV_COLUMNS = ["path", "listing_id", "price", "title"]
TRUTH_COLUMNS = ["path", "true_label", "folder_label", "kind", "source", "price_outlier"]


@dataclass(frozen=True)
class ScaleOptions:
    """What to write. Rates are shares of `images`; copies and broken files are part of the count."""

    images: int = 100_000
    classes: int = 10
    size: int = 96  # pixels, the side of every photo
    mislabel_rate: float = 0.02
    exact_copy_rate: float = 0.005
    near_copy_rate: float = 0.005
    broken_rate: float = 0.001
    price_outlier_rate: float = 0.003
    seed: int = 0

    def validate(self) -> None:
        if self.images < 1:
            raise ValueError(f"images must be at least 1, got {self.images}")
        if not 2 <= self.classes <= len(SHAPES):
            raise ValueError(f"classes must be between 2 and {len(SHAPES)}, got {self.classes}")
        if not 32 <= self.size <= 1024:
            raise ValueError(f"size must be between 32 and 1024 pixels, got {self.size}")
        rates = (self.mislabel_rate, self.exact_copy_rate, self.near_copy_rate, self.broken_rate,
                 self.price_outlier_rate)
        if min(rates) < 0 or self.exact_copy_rate + self.near_copy_rate + self.broken_rate > 0.5:
            raise ValueError("rates must be non-negative, and copies plus broken files at most half the images")


@dataclass
class Plan:
    """One row per file, arrays of shape (N,): index, true and folder class (indices into `classes`), kind
    ("photo", "exact", "near", "broken"), source (the photo a copy or broken file is made from, else
    itself), hue in [0, 1), price (EUR) and whether it was made an outlier, title."""

    classes: list[str]
    true_label: np.ndarray
    folder_label: np.ndarray
    kind: np.ndarray
    source: np.ndarray
    hue: np.ndarray
    price: np.ndarray
    price_outlier: np.ndarray
    title: list[str]

    def path(self, index: int) -> str:
        return f"{self.classes[self.folder_label[index]]}/{index:07d}.jpg"


def colour_name(hue: float) -> str:
    return next(name for limit, name in COLOUR_NAMES if hue < limit)


def make_plan(options: ScaleOptions) -> Plan:
    """Decide every file's class, kind, colour, price and title (no pixels yet)."""
    options.validate()
    rng = np.random.default_rng(options.seed)
    n, k = options.images, options.classes
    classes = sorted(list(SHAPES)[:k])
    true_label = rng.integers(0, k, size=n)
    kind = np.full(n, "photo", dtype=object)
    roles = rng.permutation(n)
    counts = [int(round(n * rate)) for rate in (options.exact_copy_rate, options.near_copy_rate, options.broken_rate)]
    bounds = np.cumsum([0, *counts])
    for name, start, end in zip(("exact", "near", "broken"), bounds[:-1], bounds[1:]):
        kind[roles[start:end]] = name
    originals = np.flatnonzero(kind == "photo")
    source = np.arange(n)
    derived = np.flatnonzero(kind != "photo")
    if len(originals):
        source[derived] = rng.choice(originals, size=len(derived))
    true_label[derived] = true_label[source[derived]]
    folder_label = true_label.copy()
    mislabelled = rng.random(n) < options.mislabel_rate
    folder_label[mislabelled] = (true_label[mislabelled] + rng.integers(1, k, size=int(mislabelled.sum()))) % k
    # a class's hues: a band of 1/k around its own colour, so classes differ in colour as well as shape
    hue = (true_label / k + rng.normal(0.0, 0.25 / k, size=n)) % 1.0
    hue[derived] = hue[source[derived]]
    median = np.exp(rng.uniform(np.log(5), np.log(2000), size=k))
    price = np.round(median[true_label] * np.exp(rng.normal(0.0, 0.3, size=n)), 2)
    price[derived] = price[source[derived]]
    price_outlier = rng.random(n) < options.price_outlier_rate
    price[price_outlier] = np.round(price[price_outlier] * 100, 2)
    nouns = [NOUNS[name] for name in classes]
    title = [f"{colour_name(h)} {nouns[t][i % 3]}, {CONDITIONS[i % len(CONDITIONS)]}".rstrip(", ")
             for i, (h, t) in enumerate(zip(hue, true_label))]
    return Plan(classes, true_label, folder_label, kind, source, hue, price, price_outlier, title)


def texture_bank(seed: int) -> np.ndarray:
    """TEXTURES smooth colour fields with grain, shape (TEXTURES, TEXTURE_SIDE, TEXTURE_SIDE, 3) uint8."""
    rng = np.random.default_rng([seed, 1])
    bank = np.empty((TEXTURES, TEXTURE_SIDE, TEXTURE_SIDE, 3), dtype=np.uint8)
    for index in range(TEXTURES):
        cells = int(rng.integers(2, 9))
        coarse = rng.integers(40, 230, size=(cells, cells, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((TEXTURE_SIDE, TEXTURE_SIDE), Image.Resampling.BICUBIC),
                            dtype=np.int16)
        grain = rng.integers(-10, 11, size=smooth.shape, dtype=np.int16)
        bank[index] = np.clip(smooth + grain, 0, 255).astype(np.uint8)
    return bank


def shape_points(corners: int, inner: float, centre: tuple[float, float], radius: float,
                 angle: float) -> list[tuple[float, float]]:
    """Corners of a regular polygon (inner == 1) or a star (inner < 1: every other corner at inner * radius)."""
    count = corners * (1 if inner >= 1 else 2)
    turns = angle + np.arange(count) * 2 * np.pi / count
    radii = np.where(np.arange(count) % 2 == 1, radius * inner, radius) if inner < 1 else np.full(count, radius)
    return list(zip(centre[0] + radii * np.cos(turns), centre[1] + radii * np.sin(turns)))


def render(plan: Plan, index: int, bank: np.ndarray, *, size: int, seed: int) -> Image.Image:
    """The photo of plan row `index`: its true class's shape in its hue on a texture crop. Deterministic."""
    rng = np.random.default_rng([seed, 2, index])
    texture = bank[int(rng.integers(len(bank)))]
    top, left = rng.integers(0, TEXTURE_SIDE - size + 1, size=2)
    image = Image.fromarray(texture[top:top + size, left:left + size])
    corners, inner = SHAPES[plan.classes[plan.true_label[index]]]
    radius = size * rng.uniform(0.22, 0.4)
    centre = tuple(rng.uniform(radius, size - radius, size=2))
    colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(plan.hue[index], rng.uniform(0.6, 1.0),
                                                             rng.uniform(0.55, 1.0)))
    draw = ImageDraw.Draw(image)
    if corners == 0:
        squash = rng.uniform(0.75, 1.0)
        draw.ellipse((centre[0] - radius, centre[1] - radius * squash, centre[0] + radius, centre[1] + radius * squash),
                     fill=colour)
    else:
        draw.polygon(shape_points(corners, inner, centre, radius, rng.uniform(0, 2 * np.pi)), fill=colour)
    return image


def encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def file_bytes(plan: Plan, index: int, bank: np.ndarray, *, size: int, seed: int) -> bytes:
    """The bytes of file `index`: its photo, or a copy or broken version of its source photo."""
    source = int(plan.source[index])
    quality = QUALITY_RANGE[0] + int(np.random.default_rng([seed, 3, source]).integers(
        0, QUALITY_RANGE[1] - QUALITY_RANGE[0] + 1))
    kind = plan.kind[index]
    if kind == "near":  # another quality, NEAR_QUALITY_STEP away
        quality += NEAR_QUALITY_STEP if quality + NEAR_QUALITY_STEP <= QUALITY_RANGE[1] else -NEAR_QUALITY_STEP
    data = encode(render(plan, source, bank, size=size, seed=seed), quality)
    if kind == "broken":
        return data[: len(data) // 2] if index % 2 == 0 else b"this listing photo failed to upload\n"
    return data


_WORKER: dict = {}


def _start_worker(plan: Plan, root: str, size: int, seed: int) -> None:
    _WORKER.update(plan=plan, root=root, size=size, seed=seed, bank=texture_bank(seed))


def _write_range(bounds: tuple[int, int]) -> int:
    plan, root = _WORKER["plan"], _WORKER["root"]
    for index in range(*bounds):
        data = file_bytes(plan, index, _WORKER["bank"], size=_WORKER["size"], seed=_WORKER["seed"])
        with open(os.path.join(root, plan.path(index)), "wb") as handle:
            handle.write(data)
    return bounds[1] - bounds[0]


def write_tables(plan: Plan, root: Path) -> None:
    """listings.csv (path, listing_id, price, title) and truth.csv (what was planted where)."""
    with open(root / "listings.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows((plan.path(i), f"L{i:07d}", f"{plan.price[i]:.2f}", plan.title[i])
                         for i in range(len(plan.kind)))
    with open(root / "truth.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRUTH_COLUMNS)
        writer.writerows((plan.path(i), plan.classes[plan.true_label[i]], plan.classes[plan.folder_label[i]],
                          plan.kind[i], plan.path(int(plan.source[i])), int(plan.price_outlier[i]))
                         for i in range(len(plan.kind)))


def write_dataset(root: str | os.PathLike, options: ScaleOptions = ScaleOptions(), *,
                  workers: Optional[int] = None) -> Plan:
    """Write the dataset of `options` into the empty or missing folder `root` with `workers` processes
    (default: all cores); returns its plan. Raises FileExistsError when `root` holds anything."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; give a new or empty folder")
    plan = make_plan(options)
    for name in plan.classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    ranges = [(start, min(start + CHUNK, options.images)) for start in range(0, options.images, CHUNK)]
    workers = workers or len(os.sched_getaffinity(0))
    initargs = (plan, str(root), options.size, options.seed)
    if workers == 1 or len(ranges) == 1:
        _start_worker(*initargs)
        for bounds in ranges:
            _write_range(bounds)
    else:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker, initargs=initargs) as pool:
            for _ in pool.imap_unordered(_write_range, ranges):
                pass
    write_tables(plan, root)
    return plan
