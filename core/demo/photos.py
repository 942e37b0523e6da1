"""The "photos" and "sketches" demo styles: colour cut-outs of items photographed on tables, floors, beds and
sheets, and the same listings drawn as pencil sketches.

`ListingPhotosStyle` plans the listings (items from core.demo.catalogue, titles from core.demo.titles, prices)
and renders each photo from the cut-outs and surfaces of core.demo.sources, for core.demo.build.build_demo.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageFilter, ImageOps

from core.demo.catalogue import BROAD_CLASSES, BROAD_NEIGHBOURS, CATALOGUE, FINE_CLASSES, FINE_NEIGHBOURS, Stamp
from core.demo.sources import (PATTERNS_DIR, STAMPS_DIR, SURFACE_WEIGHTS, SURFACES, TEXTURES_BY_KIND, Cutout,
                               PhotoSources, load_sources, surface, texture_name)
from core.demo.styles import DemoStyle, draw_prices, draw_sellers, pick_one
from core.demo.titles import TITLE_KIND_WEIGHTS, describing_title, generic_title, misleading_title

#: The default demo has about this many listing photos, whatever the number of classes.
MIN_SIDE, MAX_SIDE = 320, 900  # photo sides, pixels
DEFAULT_PHOTOS = 5000
DEFAULT_NOISE_RATE = 0.10
PRICE_SIGMA = 0.4  # standard deviation of log(price) around an item's median
SECOND_ITEM_SHARE = 0.15  # of photos, with a smaller item of another class in a corner
RANDOM_FLIP_SHARE = 0.2  # of planted mislabels, sent to any class rather than a confusable one
MISLEADING_TITLE_SHARE = 0.4  # of mislabelled listings, titled in the words of the wrong class

# Colours of items whose stamp is "tintable" (drawn in white or grey for Tux Paint to colour).
_ITEM_COLOURS = (
    ("black", (38, 38, 42)), ("white", (240, 240, 236)), ("grey", (130, 130, 134)), ("navy", (32, 44, 92)),
    ("blue", (48, 92, 172)), ("red", (182, 36, 42)), ("burgundy", (112, 30, 46)), ("green", (42, 122, 62)),
    ("olive", (102, 106, 52)), ("yellow", (226, 190, 52)), ("orange", (230, 122, 42)), ("pink", (232, 142, 172)),
    ("beige", (202, 182, 150)), ("brown", (112, 72, 42)), ("purple", (112, 62, 142)), ("teal", (32, 122, 128)),
)
_COLOUR_RGB = dict(_ITEM_COLOURS)


def round_price(price: float) -> float:
    """A price as sellers set it: to 0.10 below 2, 0.50 below 10, whole euros below 100, fives below 1,000,
    else fifties."""
    for limit, step in ((2, 0.1), (10, 0.5), (100, 1.0), (1000, 5.0)):
        if price < limit:
            return round(max(step, round(price / step) * step), 2)
    return round(price / 50.0) * 50.0



_NOISE_SEED = 7
_MAX_ENLARGE = 6.0  # a stamp is drawn at most this many times its own size
_GRAIN_LEVELS = (1.0, 2.0, 3.0, 4.5)  # standard deviations of sensor grain, in 0..255 steps


@functools.lru_cache(maxsize=None)
def _sensor_noise(level: int) -> Image.Image:
    """Gaussian grain of _GRAIN_LEVELS[level] around 128, independent per channel, RGB of MAX_SIDE square;
    cropped per photo and added with offset -128."""
    noise = np.random.default_rng([_NOISE_SEED, level]).standard_normal((MAX_SIDE, MAX_SIDE, 3), dtype=np.float32)
    return Image.fromarray(np.clip(128 + _GRAIN_LEVELS[level] * noise, 0, 255).astype(np.uint8))


_LUMA = np.array([0.299, 0.587, 0.114])


def _colour_matrix(tint: str, rng: np.random.Generator) -> tuple[float, ...]:
    """The 12-number RGB matrix (with offsets) that Pillow's convert applies: tint to colour `tint` (a name
    of _ITEM_COLOURS; "" keeps the colours), then a small hue turn, saturation and brightness change."""
    if tint:  # luminance mapped onto the colour: white parts take the colour, dark lines stay dark
        colour = np.asarray(_COLOUR_RGB[tint], dtype=float) / 255
        matrix = np.outer(colour * 0.86, _LUMA)
        offset = colour * 0.22 * 255
    else:
        matrix, offset = np.eye(3), np.zeros(3)
    angle = np.deg2rad(rng.uniform(-8, 8))  # hue turn about the grey axis (Rodrigues' rotation)
    axis = np.ones(3) / np.sqrt(3)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    turn = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(axis, axis)
    saturation = rng.uniform(0.8, 1.2)  # towards or away from the pixel's grey
    saturate = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), _LUMA)
    adjust = rng.uniform(0.88, 1.08) * saturate @ turn
    matrix, offset = adjust @ matrix, adjust @ offset
    return tuple(float(v) for row, extra in zip(matrix, offset) for v in (*row, extra))


def _restyle(image: Image.Image, tint: str, rng: np.random.Generator) -> Image.Image:
    """An RGBA stamp recoloured for one photo (see _colour_matrix); one pass of Pillow's convert."""
    out = image.convert("RGB").convert("RGB", _colour_matrix(tint, rng))
    out.putalpha(image.getchannel("A"))
    return out


def _posed(cutout: Cutout, colour: str, longest: int, rng: np.random.Generator, *, rotate: float) -> Image.Image:
    """The stamp recoloured (`colour` for tintable stamps), scaled to `longest` pixels on its longer side,
    maybe mirrored, rotated by up to `rotate` degrees. RGBA; resampled premultiplied so edges stay clean,
    and at the smaller of the stamp's and the photo's sizes, which is faster."""
    image = cutout.image
    scale = longest / max(image.size)
    mirror = cutout.mirror and rng.random() < 0.5
    angle = float(np.clip(rng.normal(0, rotate / 2.5), -rotate, rotate))
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.convert("RGBa").resize(size, Image.Resampling.BICUBIC).convert("RGBA")
    image = _restyle(image, colour if cutout.tintable else "", rng).convert("RGBa")
    if mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if abs(angle) > 0.5:
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    if scale > 1:  # enlarging: bilinear is as good here and twice as fast as bicubic
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return image.convert("RGBA")


def _drop_shadow(canvas: Image.Image, item: Image.Image, position: tuple[int, int], *, offset: tuple[int, int],
                 softness: float, opacity: float) -> None:
    """Darken `canvas` under and beside `item` (placed at `position`) with a blurred copy of its outline."""
    scale = 4  # blur at a quarter of the size: the same look, much faster
    alpha = item.getchannel("A")
    small = alpha.resize((max(1, alpha.width // scale), max(1, alpha.height // scale)), Image.Resampling.BILINEAR)
    pad = max(2, round(softness / scale * 2))
    padded = Image.new("L", (small.width + 2 * pad, small.height + 2 * pad))
    padded.paste(small, (pad, pad))
    padded = padded.filter(ImageFilter.GaussianBlur(max(0.5, softness / scale)))
    mask = padded.resize((padded.width * scale, padded.height * scale), Image.Resampling.BILINEAR)
    mask = mask.point(lambda value: int(value * opacity))
    corner = (position[0] - pad * scale + offset[0], position[1] - pad * scale + offset[1])
    canvas.paste((12, 10, 8), corner, mask)


def _place(size: tuple[int, int], item_size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner for an item in a photo: anywhere it fits, more often near the middle."""
    left_room, top_room = max(0, size[0] - item_size[0]), max(0, size[1] - item_size[1])
    u, v = rng.random(2) * 0.5 + rng.random(2) * 0.5  # sum of two uniforms: peaks in the middle
    return int(u * left_room), int(v * top_room)


def render_listing_photo(sources: PhotoSources, row: Any) -> Image.Image:
    """Draw one planned listing photo (a row of `ListingPhotosStyle.plan_items`): surface, maybe a second
    item in a corner, the item with its shadow, then light, white balance, grain and focus. RGB."""
    rng = np.random.default_rng(row.render_seed)
    size = (int(row.width), int(row.height))
    canvas = surface(sources, row.texture, size, rng)
    light = rng.uniform(0, 2 * np.pi)  # shadows fall away from the light
    shadow_dir = np.array([np.cos(light), np.sin(light)])

    cutout = sources.cutout(row.item)
    # The item spans 45-88% of the photo in the direction it is tightest in, unless that would enlarge
    # a small stamp more than _MAX_ENLARGE times.
    stamp_w, stamp_h = cutout.image.size
    fill = min(size[0] / stamp_w, size[1] / stamp_h) * rng.uniform(0.45, 0.88)
    longest = int(max(stamp_w, stamp_h) * min(fill, _MAX_ENLARGE))
    item = _posed(cutout, row.colour, longest, rng, rotate=22.0)
    fit = min(1.0, 0.94 * size[0] / item.width, 0.94 * size[1] / item.height)
    if fit < 1.0:
        fitted = (max(1, int(item.width * fit)), max(1, int(item.height * fit)))
        item = item.convert("RGBa").resize(fitted, Image.Resampling.BICUBIC).convert("RGBA")
    position = _place(size, item.size, rng)

    if row.second_item:
        second = _posed(sources.cutout(row.second_item), "", int(longest * rng.uniform(0.3, 0.5)), rng, rotate=30.0)
        corner = int(rng.integers(4))
        x = size[0] - second.width * rng.uniform(0.6, 1.0) if corner % 2 else -second.width * rng.uniform(0.0, 0.4)
        y = size[1] - second.height * rng.uniform(0.6, 1.0) if corner // 2 else -second.height * rng.uniform(0.0, 0.4)
        defocus = ImageFilter.GaussianBlur(rng.uniform(0.5, 1.8))  # out of focus, behind the item
        second = second.convert("RGBa").filter(defocus).convert("RGBA")
        spot = (int(x), int(y))
        _drop_shadow(canvas, second, spot, offset=tuple((shadow_dir * second.width * 0.04).astype(int)),
                     softness=second.width * 0.05, opacity=0.35)
        canvas.paste(second, spot, second)

    reach = max(item.size) * rng.uniform(0.015, 0.06)
    _drop_shadow(canvas, item, position, offset=tuple((shadow_dir * reach).astype(int)),
                 softness=max(item.size) * rng.uniform(0.02, 0.06), opacity=rng.uniform(0.3, 0.6))
    canvas.paste(item, position, item)
    return _light(canvas, rng)


def _light(canvas: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Exposure and white balance, a light fall-off across the frame, vignette, sensor grain, maybe soft
    focus. Done with Pillow's lookup tables and blends, which are much faster than float arrays."""
    width, height = canvas.size
    exposure = rng.uniform(0.82, 1.12)
    balance = 1 + rng.normal(0, 0.05, 3)  # white balance: warm, cool or green casts
    shaded = rng.random() < 0.6
    if shaded:  # light falling off across the frame, and a vignette
        ys = np.linspace(-1, 1, max(2, height // 16), dtype=np.float32)[:, None]
        xs = np.linspace(-1, 1, max(2, width // 16), dtype=np.float32)[None, :]
        angle = rng.uniform(0, 2 * np.pi)
        shade = (1 + rng.uniform(0.05, 0.25) * (np.cos(angle) * xs + np.sin(angle) * ys))
        shade = shade * (1 - rng.uniform(0, 0.3) * (xs * xs + ys * ys) / 2)
        exposure *= float(shade.max())
    lut = np.minimum(255, np.outer(exposure * balance, np.arange(256)) + 0.5).astype(int).ravel().tolist()
    photo = canvas.point(lut)
    if shaded:
        mask = Image.fromarray(np.round(shade / shade.max() * 255).astype(np.uint8))
        mask = mask.resize(canvas.size, Image.Resampling.BILINEAR)
        photo = Image.composite(photo, Image.new("RGB", canvas.size), mask)  # photo * mask / 255
    level = int(rng.integers(len(_GRAIN_LEVELS)))
    top, left = int(rng.integers(0, MAX_SIDE - height + 1)), int(rng.integers(0, MAX_SIDE - width + 1))
    grain = _sensor_noise(level).crop((left, top, left + width, top + height))
    photo = ImageChops.add(photo, grain, scale=1.0, offset=-128)
    if rng.random() < 0.12:  # out of focus: halved and enlarged again, cheaper than a blur filter
        photo = photo.reduce(2).resize(photo.size, Image.Resampling.BILINEAR)
    return photo


def _photo_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) of a phone photo: landscape, portrait or square, sides in MIN_SIDE..MAX_SIDE."""
    ratio = pick_one(rng, (4 / 3, 4 / 3, 3 / 4, 3 / 4, 1.0, 16 / 9, 9 / 16))
    long_ratio = max(ratio, 1 / ratio)
    longest = int(rng.integers(max(MIN_SIDE, int(np.ceil(MIN_SIDE * long_ratio))), MAX_SIDE + 1))
    shortest = max(MIN_SIDE, round(longest / long_ratio))
    return (longest, shortest) if ratio >= 1 else (shortest, longest)


class ListingPhotosStyle(DemoStyle):
    """Tux Paint stamps photographed on varied surfaces, 320-900 px, with titles and prices per item."""

    name = "photos"
    parallel = True
    random_flip_share = RANDOM_FLIP_SHARE
    default_noise_rate = DEFAULT_NOISE_RATE
    default_source = STAMPS_DIR
    source_label = "Tux Paint stamps"
    extra_truth_columns = ("item", "title_kind", "surface", "second_item")

    def __init__(self, *, classes: str = "broad"):
        levels = {"broad": (BROAD_CLASSES, BROAD_NEIGHBOURS), "fine": (FINE_CLASSES, FINE_NEIGHBOURS)}
        if classes not in levels:
            raise ValueError(f"unknown classes {classes!r}; choose one of {', '.join(levels)}")
        self.level = classes
        self.classes, self.neighbours = levels[classes]
        self.default_per_class = round(DEFAULT_PHOTOS / len(self.classes))
        self.stamps_by_class = {name: tuple(s for s in CATALOGUE if self._class_of(s) == name) for name in self.classes}
        self.broad_of = {self._class_of(s): s.broad for s in CATALOGUE}
        self._stamps = {s.path: s for s in CATALOGUE}

    def _class_of(self, stamp: Stamp) -> str:
        return stamp.broad if self.level == "broad" else stamp.fine

    def load(self, source_dir: Path) -> PhotoSources:
        return load_sources(source_dir, PATTERNS_DIR)

    def plan_items(self, source, *, per_class: int, extra: int, rng: np.random.Generator) -> pd.DataFrame:
        labels = list(np.repeat(np.arange(len(self.classes)), per_class)) + list(
            rng.integers(0, len(self.classes), size=extra))
        stamps: list[Stamp] = []
        for k, name in enumerate(self.classes):  # every stamp of a class about equally often
            pool = self.stamps_by_class[name]
            stamps += [pool[i] for i in rng.permutation(np.resize(rng.permutation(len(pool)), per_class))]
        stamps += [pick_one(rng, self.stamps_by_class[self.classes[k]]) for k in labels[len(stamps):]]
        rows = [self._plan_photo(stamp, source, rng) for stamp in stamps]
        medians = np.array([stamp.price for stamp in stamps], dtype=float)
        prices = np.array([round_price(p) for p in draw_prices(medians, rng, sigma=PRICE_SIGMA)])
        frame = pd.DataFrame(rows)
        frame["true_label"] = frame["given_label"] = [self._class_of(stamp) for stamp in stamps]
        frame["true_price"] = frame["price"] = prices
        frame["price_median"] = medians
        frame["is_price_typo"] = False
        frame["seller_id"] = draw_sellers(len(stamps), rng)
        return frame

    def _plan_photo(self, stamp: Stamp, source: PhotoSources, rng: np.random.Generator) -> dict:
        """Everything about one photo but its labels and price: size, surface, colour, second item, title."""
        width, height = _photo_size(rng)
        surface = SURFACES[int(rng.choice(len(SURFACES), p=list(SURFACE_WEIGHTS.values())))]
        texture = pick_one(rng, TEXTURES_BY_KIND[surface]) if surface != "plain" else -1
        colour = pick_one(rng, _ITEM_COLOURS)[0] if source.tintable(stamp.path) else ""
        second = ""
        if rng.random() < SECOND_ITEM_SHARE:
            others = tuple(s for s in CATALOGUE if s.broad != stamp.broad)
            second = pick_one(rng, others).path
        kinds = tuple(TITLE_KIND_WEIGHTS)
        kind = kinds[int(rng.choice(len(kinds), p=list(TITLE_KIND_WEIGHTS.values())))]
        title = {"describing": lambda: describing_title(stamp, colour, rng), "generic": lambda: generic_title(rng),
                 "none": lambda: ""}[kind]()
        return {"item": stamp.path, "colour": colour, "width": width, "height": height,
                "surface": surface if texture < 0 else f"{surface}/{texture_name(texture)}", "texture": texture,
                "second_item": second, "title": title, "title_kind": kind,
                "quality": int(rng.integers(82, 96)), "render_seed": int(rng.integers(2 ** 63))}

    def after_label_noise(self, photos: pd.DataFrame, rng: np.random.Generator) -> None:
        """Give MISLEADING_TITLE_SHARE of mislabelled listings a title in the words of their given class."""
        moved = np.flatnonzero((photos["given_label"] != photos["true_label"]).to_numpy())
        chosen = moved[rng.random(len(moved)) < MISLEADING_TITLE_SHARE]
        photos.loc[chosen, "title"] = [
            misleading_title(label, self.stamps_by_class, self.broad_of, rng)
            for label in photos.loc[chosen, "given_label"]
        ]
        photos.loc[chosen, "title_kind"] = "misleading"

    def prepare(self, source: PhotoSources, rows: pd.DataFrame) -> None:
        """Load the stamps and make the textures the planned photos use, before rendering them."""
        stamps = set(rows["item"]) | set(rows["second_item"]) - {""}
        source.preload(stamps, set(rows["texture"]) - {-1})

    def render(self, source, row) -> Image.Image:
        return render_listing_photo(source, row)

    def quality(self, row) -> int:
        return int(row.quality)


def pencil_sketch(photo: Image.Image) -> Image.Image:
    """A listing photo redrawn as a pencil sketch on paper (grey, RGB): the colour dodge of the grey image
    by its blurred negative keeps outlines and a little shading and drops colour and texture, a picture
    style whose ImageNet features are much weaker than a photo's."""
    grey = np.asarray(photo.convert("L"), dtype=np.float32)
    blurred = np.asarray(ImageOps.invert(photo.convert("L")).filter(ImageFilter.GaussianBlur(6)), dtype=np.float32)
    dodged = np.clip(grey * 255.0 / np.maximum(255.0 - blurred, 1.0), 0, 255)
    paper = Image.fromarray(dodged.astype(np.uint8)).filter(ImageFilter.SMOOTH)
    return paper.convert("RGB")


class SketchesStyle(ListingPhotosStyle):
    """The photos style's listings drawn as pencil sketches: same items, titles and prices, another visual
    domain (drawings) where a network trained on ImageNet photos sees far less."""

    name = "sketches"
    source_label = "Tux Paint stamps, sketched"

    def render(self, source, row) -> Image.Image:
        return pencil_sketch(render_listing_photo(source, row))
