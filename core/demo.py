"""Build the demo dataset: marketplace listing photos with planted problems, and the answer key.

`build_demo` writes class folders of images, `listings.csv` (what a marketplace export looks like) and
`truth.csv` (which files are mislabelled, duplicated, mispriced or broken). Two styles draw the photos:
"photos" (core/demo_photos.py: colour cut-outs on tables, floors and beds), "sketches" (the same listings
drawn as pencil sketches) and "fashion" (Fashion-MNIST items on a plain background, defined here). Planting and writing are shared by both.
"""
from __future__ import annotations

import gzip
import importlib
import io
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

logger = logging.getLogger(__name__)

DEFAULT_STYLE = "photos"
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
#: Defaults of the fashion style; the photos style has its own (core.demo_photos).
DEFAULT_PER_CLASS = 500
DEFAULT_NOISE_RATE = 0.08

#: Class folder names in Fashion-MNIST label order: label 0 is "t-shirt" (T-shirt/top) ... 9 is "ankle-boot".
FASHION_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)
#: Classes people confuse. Planted label noise moves an item to another class of its own group.
CONFUSION_GROUPS = (
    frozenset({"t-shirt", "shirt", "pullover", "coat"}),
    frozenset({"sneaker", "sandal", "ankle-boot"}),
)
#: Median listing price per class, EUR. Honest prices are log-normal around it.
MEDIAN_PRICE_EUR = {
    "t-shirt": 15.0, "trouser": 35.0, "pullover": 35.0, "dress": 45.0, "coat": 90.0,
    "sandal": 25.0, "shirt": 25.0, "sneaker": 60.0, "bag": 50.0, "ankle-boot": 75.0,
}
PRICE_SIGMA = 0.35  # standard deviation of log(price)
#: Honest prices stay within this many sigmas of their median (about x/÷ 2.4 for fashion) ...
PRICE_Z_LIMIT = 2.5
#: ... and a price typo lands at least this factor away from it, so the two never overlap.
PRICE_TYPO_MIN_FACTOR = 5.0
DUPLICATE_KINDS = ("exact", "reencoded", "resized", "png")
BROKEN_KINDS = ("empty", "truncated_jpeg", "html_as_jpg", "garbled_header", "truncated_png", "text_as_png")
LISTING_COLUMNS = ["path", "listing_id", "price", "title", "seller_id"]
#: Columns of truth.csv for every style; a style may add columns after these (the photos style does).
TRUTH_COLUMNS = [
    "path", "true_label", "given_label", "is_mislabel", "is_duplicate", "duplicate_of", "duplicate_kind",
    "is_price_typo", "true_price", "is_broken", "broken_kind",
]

_IMAGE_FILES = ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")
_LABEL_FILES = ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_CONFUSABLE = {name: tuple(sorted(group - {name})) for group in CONFUSION_GROUPS for name in group}
_MAX_FLIPPED_SHARE = 0.5  # of the items of confusable classes, so every folder keeps a correct majority
_NESTED_SHARE = 0.1  # of listing photos, written one folder deeper
_NESTED_FOLDER = "batch-2"
# A handful of photos get names with spaces and non-ASCII letters: "<prefix> <listing_id>.jpg".
_ODD_NAME_PREFIXES = ("crème brûlée", "Größe M foto", "IMG 2041 (1)", "photo café", "новое фото")
_CONFLICT_SHARE = 0.25  # of duplicates, re-uploaded under a different class folder
# Kinds of copies in the order they are dealt out, then shuffled: exact copies are 1 in 7.
_DUPLICATE_CYCLE = ("reencoded", "resized", "png", "exact", "reencoded", "resized", "png")
_BROKEN_SOURCE_SHARE = 0.4  # truncated files keep this share of the real file's bytes
_SELLERS_PER_LISTING = 0.1

# Dark and mid tones, so items read as dark-on-light against the pale background.
_PALETTE = (
    ("black", (30, 30, 32)), ("charcoal", (62, 64, 68)), ("navy", (28, 40, 82)),
    ("denim blue", (52, 86, 130)), ("burgundy", (112, 28, 42)), ("olive", (92, 96, 48)),
    ("forest green", (34, 82, 54)), ("brown", (98, 62, 38)), ("camel", (172, 126, 76)),
    ("grey", (122, 122, 126)), ("red", (172, 38, 38)), ("mustard", (190, 148, 40)),
    ("dusty pink", (190, 122, 130)), ("teal", (30, 110, 116)), ("beige", (186, 166, 136)),
)
_CLOTHING_SIZES = ("size XS", "size S", "size M", "size L", "size XL")
_SHOE_SIZES = tuple(f"EU {size}" for size in range(36, 46))
# Per class: (nouns, materials, sizes) for listing titles.
_TITLE_WORDS = {
    "t-shirt": (("t-shirt", "tee", "crew-neck t-shirt", "v-neck top"),
                ("cotton", "organic cotton", "jersey", "linen-blend"), _CLOTHING_SIZES),
    "trouser": (("trousers", "chinos", "jeans", "slacks"), ("cotton", "denim", "wool-blend", "corduroy"),
                tuple(f"W{w} L{length}" for w in (28, 30, 32, 34, 36) for length in (30, 32, 34))),
    "pullover": (("pullover", "jumper", "sweater", "hoodie"), ("wool", "merino", "cotton-knit", "fleece"),
                 _CLOTHING_SIZES),
    "dress": (("dress", "midi dress", "summer dress", "wrap dress"), ("cotton", "viscose", "linen", "satin"),
              _CLOTHING_SIZES),
    "coat": (("coat", "jacket", "parka", "trench coat"), ("wool", "down", "waterproof", "quilted"),
             _CLOTHING_SIZES),
    "sandal": (("sandals", "flip-flops", "strappy sandals", "slides"), ("leather", "rubber", "suede", "cork"),
               _SHOE_SIZES),
    "shirt": (("shirt", "button-down shirt", "blouse", "flannel shirt"), ("cotton", "linen", "oxford", "silk"),
              _CLOTHING_SIZES),
    "sneaker": (("sneakers", "trainers", "running shoes", "low-top sneakers"), ("canvas", "mesh", "leather", "suede"),
                _SHOE_SIZES),
    "bag": (("bag", "handbag", "tote bag", "shoulder bag", "backpack"), ("leather", "canvas", "vegan leather", "nylon"),
            ("small", "medium", "large")),
    "ankle-boot": (("ankle boots", "Chelsea boots", "booties", "lace-up boots"), ("leather", "suede", "waxed leather"),
                   _SHOE_SIZES),
}
_BRANDS = ("Nordvik", "Maison Leroux", "Urbano", "Kestrel & Co", "Alba", "Fjordline")
_CONDITIONS = ("Like new", "Barely worn", "Good condition", "New with tags")
_TITLE_TEMPLATES = (
    "{colour} {material} {noun}, {size}",
    "{brand} {noun}, {colour}, {size}",
    "{condition}: {colour} {material} {noun} ({size})",
)
_HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><p>The requested image was not found on this server.</p></body></html>\n"
)
_XML_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\n"
)
# Bytes written over a JPEG's segments right after its FF D8 FF magic: no valid marker starts with 0x13.
_GARBLE = bytes(range(0x13, 0x13 + 61))

Progress = Callable[[float, str], None]


class DemoError(ValueError):
    """The demo dataset cannot be built as asked; the message says why and what to do."""


class DemoSourceError(DemoError):
    """The files a style draws from (Fashion-MNIST, stamps, textures) are missing or unreadable."""


class DemoOutputError(DemoError):
    """The output folder is in the way: it is a file, or a non-empty folder that may not be replaced."""


@dataclass(frozen=True)
class PhotoStyle:
    """How one Fashion-MNIST item is drawn on its listing photo.

    colour, background: RGB in 0..255; scale: the item's side as a fraction of the canvas side;
    offset: (dx, dy) pixels of the item from the canvas centre; quality: JPEG quality, 1..95.
    """

    colour: tuple[int, int, int]
    background: tuple[int, int, int]
    scale: float
    offset: tuple[int, int]
    quality: int


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


def pick_one(rng: np.random.Generator, options: tuple):
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


# --- Styles: what differs between kinds of demo ---------------------------------------------------------


class DemoStyle:
    """How a style draws its listing photos; `build_demo` does the rest (planting, file names, writing).

    A style plans one row per photo in `plan_items` with at least these columns: true_label, title,
    true_price, price_median (the reference an honest price is drawn around; price typos land at least
    PRICE_TYPO_MIN_FACTOR from it) and seller_id, plus whatever `render` needs. Every random choice is
    made there, from the Generator it is handed, so that a seed fixes the dataset.
    """

    name: str = ""
    classes: tuple[str, ...] = ()
    #: class -> classes its items are plausibly mistaken for (planted label noise goes there)
    neighbours: Mapping[str, tuple[str, ...]] = {}
    #: of planted mislabels, the share sent to any other class rather than a neighbour
    random_flip_share: float = 0.0
    default_per_class: int = DEFAULT_PER_CLASS
    default_noise_rate: float = DEFAULT_NOISE_RATE
    default_source: Path = DEFAULT_SOURCE
    source_label: str = ""
    #: columns after TRUTH_COLUMNS in truth.csv, carried from a photo to its re-uploads
    extra_truth_columns: tuple[str, ...] = ()
    #: whether photos may be rendered by several processes (each photo depends only on its row)
    parallel: bool = False

    def load(self, source_dir: Path) -> Any:
        """What `plan_items` and `render` draw from; raises DemoSourceError when it is missing."""
        raise NotImplementedError

    def check_capacity(self, source: Any, *, per_class: int, broken_count: int) -> None:
        """Raise DemoError when `source` cannot give per_class (+ broken_count spare) items per class."""

    def plan_items(self, source: Any, *, per_class: int, extra: int, rng: np.random.Generator) -> pd.DataFrame:
        """`per_class` photos of every class in class order, then `extra` more (to be broken)."""
        raise NotImplementedError

    def after_label_noise(self, photos: pd.DataFrame, rng: np.random.Generator) -> None:
        """Adjust planned photos once their given labels are known (e.g. misleading titles)."""

    def prepare(self, source: Any, rows: pd.DataFrame) -> None:
        """Load what rendering `rows` needs, once, before any photo is drawn."""

    def render(self, source: Any, row: Any) -> Image.Image:
        """The RGB photo of a planned row."""
        raise NotImplementedError

    def quality(self, row: Any) -> int:
        """The JPEG quality a planned row's photo is saved at."""
        raise NotImplementedError


class FashionStyle(DemoStyle):
    """Fashion-MNIST items, grey 28 px upscaled and painted dark-on-light on a plain square background."""

    name = "fashion"
    classes = FASHION_CLASSES
    neighbours = _CONFUSABLE
    default_source = DEFAULT_SOURCE
    source_label = "Fashion-MNIST"

    def __init__(self, *, image_size: int = 224):
        self.image_size = image_size

    def load(self, source_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        return load_fashion_mnist(source_dir)

    def check_capacity(self, source, *, per_class: int, broken_count: int) -> None:
        _, labels = source
        fewest = int(np.bincount(labels, minlength=len(FASHION_CLASSES)).min())
        if per_class + broken_count > fewest:
            raise DemoError(
                f"per_class={per_class} is too many: the smallest class has {fewest} items "
                f"and {broken_count} more may be needed for broken files"
            )

    def plan_items(self, source, *, per_class: int, extra: int, rng: np.random.Generator) -> pd.DataFrame:
        _, labels = source
        return _plan_fashion_photos(labels, per_class=per_class, extra=extra, image_size=self.image_size, rng=rng)

    def render(self, source, row) -> Image.Image:
        images, _ = source
        return render_photo(images[row.source_index], row.style, image_size=self.image_size)

    def quality(self, row) -> int:
        return row.style.quality


def _photos_style(*, classes: str, image_size: Optional[int]) -> DemoStyle:
    if image_size is not None:
        raise DemoError("image_size applies to the fashion style; the photos style draws 320-900 px photos")
    return importlib.import_module("core.demo_photos").ListingPhotosStyle(classes=classes)


def _sketches_style(*, classes: str, image_size: Optional[int]) -> DemoStyle:
    if image_size is not None:
        raise DemoError("image_size applies to the fashion style; the sketches style draws 320-900 px pictures")
    return importlib.import_module("core.demo_photos").SketchesStyle(classes=classes)


def _fashion_style(*, classes: str, image_size: Optional[int]) -> DemoStyle:
    if classes != "broad":
        raise DemoError(f"classes={classes!r} exists only for the photos style; fashion has its 10 classes")
    return FashionStyle(image_size=224 if image_size is None else image_size)


#: Style name -> factory(classes=..., image_size=...). The photos and sketches styles live in core.demo_photos.
STYLES: dict[str, Callable[..., DemoStyle]] = {"photos": _photos_style, "sketches": _sketches_style,
                                               "fashion": _fashion_style}


def make_style(name: str, *, classes: str = "broad", image_size: Optional[int] = None) -> DemoStyle:
    """The style called `name` (one of STYLES); raises DemoError for an unknown name or options it lacks."""
    if name not in STYLES:
        raise DemoError(f"unknown demo style {name!r}; choose one of {', '.join(sorted(STYLES))}")
    return STYLES[name](classes=classes, image_size=image_size)


# --- Fashion-MNIST ----------------------------------------------------------------------------------------


def load_fashion_mnist(source_dir: Path | str = DEFAULT_SOURCE) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST, train and t10k concatenated, from the four Zalando idx .gz files in `source_dir`.

    Returns images, uint8 of shape (70000, 28, 28) with a light item on black, and labels, int64 of
    shape (70000,) in 0..9, indices into FASHION_CLASSES. Raises DemoSourceError naming missing files.
    """
    source_dir = Path(source_dir)
    missing = [name for name in _IMAGE_FILES + _LABEL_FILES if not (source_dir / name).is_file()]
    if missing:
        raise DemoSourceError(
            f"Fashion-MNIST not found in {source_dir}: missing {', '.join(missing)}. "
            "Install it with `apt-get install dataset-fashion-mnist`, or point --source DIR "
            "(source_dir) at a folder holding the four idx .gz files."
        )
    images = np.concatenate([_read_idx(source_dir / name, ndim=3) for name in _IMAGE_FILES])
    labels = np.concatenate([_read_idx(source_dir / name, ndim=1) for name in _LABEL_FILES]).astype(np.int64)
    if len(images) != len(labels) or images.shape[1:] != (28, 28) or labels.max(initial=0) >= len(FASHION_CLASSES):
        raise DemoSourceError(f"{source_dir} does not hold Fashion-MNIST: images {images.shape}, labels {labels.shape}")
    return images, labels


def _read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """The uint8 array of shape (d1, ..., d_ndim) stored in a gzipped idx file."""
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DemoSourceError(f"cannot read {path}: {error}") from error
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes([0, 0, 0x08, ndim]):
        raise DemoSourceError(f"{path} is not an idx file of {ndim}-d unsigned bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise DemoSourceError(f"{path} is truncated: header says {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def render_photo(item: np.ndarray, style: PhotoStyle, *, image_size: int) -> Image.Image:
    """Draw a (28, 28) uint8 Fashion-MNIST item as an RGB product photo of `image_size` square pixels.

    The item's intensity is used as opacity: the item is painted in `style.colour` over a pale
    background (dark-on-light, the inverse of Fashion-MNIST), with a soft shadow below it.
    """
    side = round(image_size * style.scale)
    mask = Image.fromarray(item, mode="L").resize((side, side), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (image_size, image_size), style.background)
    left = (image_size - side) // 2 + style.offset[0]
    top = (image_size - side) // 2 + style.offset[1]
    shadow = mask.filter(ImageFilter.GaussianBlur(side / 40)).point(lambda value: value * 0.3)
    shadow_colour = tuple(int(channel * 0.75) for channel in style.background)
    drop = max(1, side // 60)
    canvas.paste(shadow_colour, (left + drop, top + 2 * drop), shadow)
    canvas.paste(style.colour, (left, top), mask)
    return canvas


def _draw_style(rng: np.random.Generator, *, image_size: int) -> tuple[str, PhotoStyle]:
    """A random colour name and the photo style that uses it."""
    colour_name, colour = pick_one(rng, _PALETTE)
    colour = tuple(int(np.clip(c + jitter, 0, 255)) for c, jitter in zip(colour, rng.integers(-12, 13, 3)))
    grey = int(rng.integers(226, 249))
    background = tuple(grey + int(cast) for cast in rng.integers(-4, 5, 3))
    scale = float(rng.uniform(0.6, 0.85))
    margin = (image_size - round(image_size * scale)) // 2
    offset = tuple(int(v) for v in rng.integers(-(margin // 2), margin // 2 + 1, 2))
    return colour_name, PhotoStyle(colour, background, scale, offset, int(rng.integers(85, 96)))


def _draw_title(label: str, colour_name: str, rng: np.random.Generator) -> str:
    """A listing title for an item of class `label`, e.g. "Navy cotton t-shirt, size M"."""
    nouns, materials, sizes = _TITLE_WORDS[label]
    title = pick_one(rng, _TITLE_TEMPLATES).format(
        colour=colour_name, material=pick_one(rng, materials), noun=pick_one(rng, nouns), size=pick_one(rng, sizes),
        brand=pick_one(rng, _BRANDS), condition=pick_one(rng, _CONDITIONS),
    )
    return title[0].upper() + title[1:]


def draw_prices(medians: np.ndarray, rng: np.random.Generator, *, sigma: float) -> np.ndarray:
    """Honest prices, shape (N,): log-normal around `medians`, within PRICE_Z_LIMIT sigmas, before rounding."""
    z = np.clip(rng.standard_normal(len(medians)), -PRICE_Z_LIMIT, PRICE_Z_LIMIT)
    return medians * np.exp(sigma * z)


def _sample_items(labels: np.ndarray, *, per_class: int, extra: int, rng: np.random.Generator) -> np.ndarray:
    """Source indices, shape (per_class * K + extra,): `per_class` items of every class in class order,
    then `extra` further items of random classes, all distinct."""
    pools = [rng.permutation(np.flatnonzero(labels == k)) for k in range(len(FASHION_CLASSES))]
    taken = [per_class] * len(pools)
    extras = []
    for k in rng.integers(0, len(pools), size=extra):
        extras.append(pools[k][taken[k]])
        taken[k] += 1
    return np.concatenate([pool[:per_class] for pool in pools] + [np.array(extras, dtype=np.int64)])


def draw_sellers(count: int, rng: np.random.Generator) -> list[str]:
    """Seller ids "S00042", one per listing, about one seller per ten listings."""
    sellers = rng.integers(0, max(1, round(count * _SELLERS_PER_LISTING)), size=count)
    return [f"S{seller:05d}" for seller in sellers]


def _plan_fashion_photos(labels: np.ndarray, *, per_class: int, extra: int, image_size: int,
                         rng: np.random.Generator) -> pd.DataFrame:
    """One row per photo to render (listing photos, then `extra` to be broken): its source item,
    style, true class, title, honest price and seller."""
    source = _sample_items(labels, per_class=per_class, extra=extra, rng=rng)
    true_labels = np.array(FASHION_CLASSES, dtype=object)[labels[source]]
    styles = [_draw_style(rng, image_size=image_size) for _ in source]
    titles = [_draw_title(label, colour, rng) for label, (colour, _) in zip(true_labels, styles)]
    medians = np.array([MEDIAN_PRICE_EUR[label] for label in true_labels], dtype=float)
    prices = np.round(draw_prices(medians, rng, sigma=PRICE_SIGMA), 2)
    return pd.DataFrame({
        "source_index": source, "style": [style for _, style in styles],
        "true_label": true_labels, "given_label": true_labels, "title": titles,
        "true_price": prices, "price": prices, "price_median": medians, "is_price_typo": False,
        "seller_id": draw_sellers(len(source), rng),
    })


# --- Shared encoding of files ---------------------------------------------------------------------------


def _encode(image: Image.Image, image_format: str, *, quality: int = 90) -> bytes:
    """The bytes of `image` saved as "JPEG" (at `quality`) or "PNG"."""
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, image_format)
    return buffer.getvalue()


def _copy_bytes(original: bytes, kind: str, *, quality: int, scale: float) -> bytes:
    """A re-upload of an image file: byte-identical ("exact"), re-encoded, resized by `scale`, or as PNG.

    Never cropped or flipped: perceptual hashes of copies match their original's.
    """
    if kind == "exact":
        return original
    with Image.open(io.BytesIO(original)) as opened:
        image = opened.convert("RGB")
    if kind == "resized":
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return _encode(image, "PNG" if kind == "png" else "JPEG", quality=quality)


def _broken_bytes(kind: str, photo: Image.Image) -> bytes:
    """The contents of an unreadable file of `kind` (one of BROKEN_KINDS), made from a real photo."""
    if kind == "empty":
        return b""
    if kind == "html_as_jpg":
        return _HTML_ERROR_PAGE
    if kind == "text_as_png":
        return _XML_ACCESS_DENIED
    data = _encode(photo, "PNG" if kind == "truncated_png" else "JPEG", quality=90)
    if kind == "garbled_header":
        return data[:3] + _GARBLE + data[3 + len(_GARBLE):]
    return data[: int(len(data) * _BROKEN_SOURCE_SHARE)]


_BROKEN_EXTENSIONS = {kind: ".png" if kind.endswith("png") else ".jpg" for kind in BROKEN_KINDS}


# --- Planting: every random choice, made up front from one Generator --------------------------------------


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


@dataclass(frozen=True)
class _Plan:
    """Everything to write, one row per file: listing photos, their re-uploaded copies, broken files."""

    photos: pd.DataFrame
    copies: pd.DataFrame
    broken: pd.DataFrame


def _plan_demo(style: DemoStyle, source: Any, *, per_class: int, noise_rate: float, duplicate_rate: float,
               price_typo_rate: float, broken_count: int, rng: np.random.Generator) -> _Plan:
    """Every random choice of the demo, in a fixed order, so that a seed fixes the whole dataset."""
    drawn = style.plan_items(source, per_class=per_class, extra=broken_count, rng=rng)
    photos = drawn.iloc[: per_class * len(style.classes)].reset_index(drop=True)
    broken = drawn.iloc[len(photos):].reset_index(drop=True)
    photos["given_label"] = _plant_label_noise(photos["true_label"].to_numpy(), style, rate=noise_rate, rng=rng)
    style.after_label_noise(photos, rng)
    _plant_price_typos(photos, rate=price_typo_rate, rng=rng)
    _choose_file_names(photos, rng)
    copies = _plan_copies(photos, style, rate=duplicate_rate, rng=rng)
    broken["broken_kind"] = [BROKEN_KINDS[i % len(BROKEN_KINDS)] for i in range(len(broken))]
    _assign_paths(photos, copies, broken, rng)
    return _Plan(photos, copies, broken)


# --- Writing ----------------------------------------------------------------------------------------------


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


_PARALLEL_MIN_PHOTOS = 200  # below this, starting processes costs more than it saves
_PARALLEL_CHUNK = 25  # photos per task handed to a worker process
# What forked workers render: (style, source, photos, root), set by the parent just before it forks.
_fork_job: Optional[tuple[DemoStyle, Any, pd.DataFrame, Path]] = None


def _worker_count(style: DemoStyle, photos: int) -> int:
    """Processes to render with: one, or up to four where the style allows it and fork is available."""
    if not style.parallel or photos < _PARALLEL_MIN_PHOTOS or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _write_photo(style: DemoStyle, source: Any, root: Path, row: Any) -> None:
    _save(root / row.path, _encode(style.render(source, row), "JPEG", quality=style.quality(row)))


def _write_chunk(bounds: tuple[int, int]) -> int:
    """In a forked worker: render and save photos[start:stop] of the parent's job; returns how many."""
    style, source, photos, root = _fork_job
    for row in photos.iloc[bounds[0]: bounds[1]].itertuples():
        _write_photo(style, source, root, row)
    return bounds[1] - bounds[0]


def _write_photos(photos: pd.DataFrame, style: DemoStyle, source: Any, root: Path, *,
                  progress: Progress, span: tuple[float, float]) -> None:
    """Render and save every listing photo as JPEG, reporting progress from span[0] to span[1].

    Styles that allow it render in forked processes; every photo depends only on its planned row, so the
    files are the same either way.
    """
    global _fork_job
    workers = _worker_count(style, len(photos))
    if workers == 1:
        step = max(1, len(photos) // 200)
        for done, row in enumerate(photos.itertuples(), start=1):
            _write_photo(style, source, root, row)
            if done % step == 0 or done == len(photos):
                progress(span[0] + (span[1] - span[0]) * done / len(photos), f"photo {done}/{len(photos)}")
        return
    chunks = [(start, min(start + _PARALLEL_CHUNK, len(photos))) for start in range(0, len(photos), _PARALLEL_CHUNK)]
    _fork_job = (style, source, photos, root)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            done = 0
            for count in pool.imap_unordered(_write_chunk, chunks):
                done += count
                progress(span[0] + (span[1] - span[0]) * done / len(photos), f"photo {done}/{len(photos)}")
    finally:
        _fork_job = None


def _write_copies(copies: pd.DataFrame, root: Path) -> None:
    """Save every re-upload, made from its original's file bytes."""
    for row in copies.itertuples():
        original = (root / row.duplicate_of).read_bytes()
        _save(root / row.path, _copy_bytes(original, row.duplicate_kind, quality=row.quality, scale=row.scale))


def _write_broken(broken: pd.DataFrame, style: DemoStyle, source: Any, root: Path) -> None:
    """Save every unreadable file, made from a freshly rendered photo where its kind needs one."""
    for row in broken.itertuples():
        _save(root / row.path, _broken_bytes(row.broken_kind, style.render(source, row)))


#: Titles written from the category the seller picked (`label_titles`), the folder name in `{label}`.
LABEL_TITLE_TEMPLATES = ("{label} for sale", "{Label}, good condition", "Selling my {label}", "{Label}",
                         "{label} - must go", "Used {label}, offers welcome")


def label_title(given_label: str, listing_id: str) -> str:
    """A title that only repeats the folder's class, e.g. "Selling my home garden"; the template is fixed by
    the listing id, so the same demo gets the same titles."""
    label = given_label.replace("-", " ")
    template = LABEL_TITLE_TEMPLATES[zlib.crc32(listing_id.encode()) % len(LABEL_TITLE_TEMPLATES)]
    return template.format(label=label, Label=label[0].upper() + label[1:])


def _tables(plan: _Plan, style: DemoStyle, *, titles: bool, prices: bool,
            label_titles: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """listings.csv (sorted by listing id) and truth.csv (sorted by path), one row per file each.

    Without `titles` every title is empty; with `label_titles` every title only repeats the given folder's
    class (`label_title`, truth's title_kind "label"); without `prices` every price is empty and nothing
    counts as a price typo (the photos and labels are the same as with them).
    """
    files = pd.concat([plan.photos, plan.copies, plan.broken], ignore_index=True)
    for column in ("duplicate_of", "duplicate_kind", "broken_kind"):
        files[column] = files[column].fillna("")
    files["is_mislabel"] = files["given_label"] != files["true_label"]
    files["is_duplicate"] = files["duplicate_kind"] != ""
    files["is_broken"] = files["broken_kind"] != ""
    if not titles:
        files["title"] = ""
        if "title_kind" in files.columns:
            files["title_kind"] = "none"
    elif label_titles:
        files["title"] = [label_title(label, listing) for label, listing in zip(files["given_label"], files["listing_id"])]
        if "title_kind" in files.columns:
            files["title_kind"] = "label"
    if not prices:
        files[["price", "true_price"]] = np.nan
        files["is_price_typo"] = False
    flags = ["is_mislabel", "is_duplicate", "is_price_typo", "is_broken"]
    files[flags] = files[flags].astype(bool).astype(int)
    listings = files.sort_values("listing_id")[LISTING_COLUMNS]
    truth = files.sort_values("path")[TRUTH_COLUMNS + list(style.extra_truth_columns)]
    return listings, truth


def _write_tables(plan: _Plan, style: DemoStyle, root: Path, *, titles: bool, prices: bool,
                  label_titles: bool = False) -> pd.DataFrame:
    """Write listings.csv and truth.csv into `root`; returns the truth table."""
    listings, truth = _tables(plan, style, titles=titles, prices=prices, label_titles=label_titles)
    listings.to_csv(root / "listings.csv", index=False, float_format="%.2f", lineterminator="\n")
    truth.to_csv(root / "truth.csv", index=False, float_format="%.2f", lineterminator="\n")
    return truth


# --- Output folder ----------------------------------------------------------------------------------------


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


# --- Entry point ------------------------------------------------------------------------------------------


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


def _summarize(plan: _Plan, truth: pd.DataFrame, style: DemoStyle, out_dir: Path, seconds: float) -> DemoReport:
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
    overwrite: bool = False,
    progress: Optional[Progress] = None,
) -> DemoReport:
    """Write the demo dataset to `out_dir`: one folder per class, listings.csv and truth.csv.

    `style` "photos" (default; core.demo_photos) draws colour cut-outs on tables, floors and beds,
    320-900 px; `classes` "broad" (9 classes) or "fine" (24 sub-classes). "fashion" draws Fashion-MNIST
    items as `image_size`-pixel squares (default 224) and has only its 10 classes. `per_class`,
    `noise_rate` and `source_dir` default to the style's (about 5,000 photos; noise 0.10 photos,
    0.08 fashion; the stamps or the Fashion-MNIST folder).

    Planted: `noise_rate` x N photos in a plausible wrong class's folder (keeping their true item's
    price and, mostly, title), `duplicate_rate` x N re-uploaded copies (a quarter in another class's
    folder), `price_typo_rate` x N price typos, and `broken_count` unreadable files; N = K x per_class.
    `titles=False` / `prices=False` leave those columns of listings.csv empty (same photos and labels);
    `label_titles=True` makes every title repeat the given folder's class, as sellers write titles from the
    category they picked ("coat for sale").
    The same options and seed give the same files.

    The build happens in a hidden sibling folder renamed into place at the end, so `out_dir` never holds a
    half-built demo. Raises DemoOutputError if `out_dir` is not empty, unless `overwrite` is set and it is
    a previous demo (it has truth.csv); DemoSourceError if the style's source files are missing; DemoError
    for an unknown style or an option out of range. `progress(fraction, message)` gets fraction in [0, 1].
    """
    demo_style = make_style(style, classes=classes, image_size=image_size)
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
                      price_typo_rate=price_typo_rate, broken_count=broken_count, rng=np.random.default_rng(seed))
    demo_style.prepare(source, pd.concat([plan.photos, plan.broken], ignore_index=True))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        _write_photos(plan.photos, demo_style, source, staging, progress=progress, span=(0.05, 0.93))
        progress(0.93, "writing duplicates and broken files")
        _write_copies(plan.copies, staging)
        _write_broken(plan.broken, demo_style, source, staging)
        progress(0.97, "writing listings.csv and truth.csv")
        truth = _write_tables(plan, demo_style, staging, titles=titles, prices=prices, label_titles=label_titles)
        _move_into_place(staging, out_dir, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report = _summarize(plan, truth, demo_style, out_dir, time.monotonic() - started)
    progress(1.0, "done")
    logger.info("built demo dataset in %s: %d files in %.1f s", out_dir, report.files, report.seconds)
    return report
