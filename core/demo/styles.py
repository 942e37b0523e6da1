"""What every demo style shares: the style interface, the demo's errors, and the draws of prices and sellers.

A style (`DemoStyle`) plans the listings of a demo (classes, items, titles, prices) and renders each photo;
core.demo.build plants the problems and writes the files.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from PIL import Image

DEFAULT_STYLE = "photos"
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
#: Defaults of the fashion style; the photos style has its own (core.demo.photos).
DEFAULT_PER_CLASS = 500
DEFAULT_NOISE_RATE = 0.08
#: Honest prices stay within this many sigmas of their median (about x/÷ 2.4 for fashion) ...
PRICE_Z_LIMIT = 2.5
_SELLERS_PER_LISTING = 0.1

Progress = Callable[[float, str], None]


class DemoError(ValueError):
    """The demo dataset cannot be built as asked; the message says why and what to do."""


class DemoSourceError(DemoError):
    """The files a style draws from (Fashion-MNIST, stamps, textures) are missing or unreadable."""


class DemoOutputError(DemoError):
    """The output folder is in the way: it is a file, or a non-empty folder that may not be replaced."""


def pick_one(rng: np.random.Generator, options: tuple):
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


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


def draw_prices(medians: np.ndarray, rng: np.random.Generator, *, sigma: float) -> np.ndarray:
    """Honest prices, shape (N,): log-normal around `medians`, within PRICE_Z_LIMIT sigmas, before rounding."""
    z = np.clip(rng.standard_normal(len(medians)), -PRICE_Z_LIMIT, PRICE_Z_LIMIT)
    return medians * np.exp(sigma * z)


def draw_sellers(count: int, rng: np.random.Generator) -> list[str]:
    """Seller ids "S00042", one per listing, about one seller per ten listings."""
    sellers = rng.integers(0, max(1, round(count * _SELLERS_PER_LISTING)), size=count)
    return [f"S{seller:05d}" for seller in sellers]


#: Titles written from the category the seller picked (`label_titles`), the folder name in `{label}`.
LABEL_TITLE_TEMPLATES = ("{label} for sale", "{Label}, good condition", "Selling my {label}", "{Label}",
                         "{label} - must go", "Used {label}, offers welcome")


def label_title(given_label: str, listing_id: str) -> str:
    """A title that only repeats the folder's class, e.g. "Selling my home garden"; the template is fixed by
    the listing id, so the same demo gets the same titles."""
    label = given_label.replace("-", " ")
    template = LABEL_TITLE_TEMPLATES[zlib.crc32(listing_id.encode()) % len(LABEL_TITLE_TEMPLATES)]
    return template.format(label=label, Label=label[0].upper() + label[1:])
