"""The "fashion" demo style: Fashion-MNIST items (Debian package dataset-fashion-mnist) recoloured on a plain
background, with titles, sizes and prices drawn per item.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from core.demo.styles import DEFAULT_SOURCE, DemoError, DemoSourceError, DemoStyle, draw_prices, draw_sellers, pick_one

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

_IMAGE_FILES = ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")
_LABEL_FILES = ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_CONFUSABLE = {name: tuple(sorted(group - {name})) for group in CONFUSION_GROUPS for name in group}

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
        return plan_fashion_photos(labels, per_class=per_class, extra=extra, image_size=self.image_size, rng=rng)

    def render(self, source, row) -> Image.Image:
        images, _ = source
        return render_photo(images[row.source_index], row.style, image_size=self.image_size)

    def quality(self, row) -> int:
        return row.style.quality


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


def plan_fashion_photos(labels: np.ndarray, *, per_class: int, extra: int, image_size: int,
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
