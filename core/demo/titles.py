"""Listing titles of the photos demo style: describing the item, generic, or misleading (written from the
class the seller picked).
"""
from __future__ import annotations

import numpy as np

from core.demo.catalogue import Stamp
from core.demo.styles import pick_one

TITLE_KINDS = ("describing", "generic", "misleading", "none")


# Per broad class (or fine class, which wins): brand-like words (producer words for food) and details.
_TITLE_VOCABULARY = {
    "clothing": (("Nordvik", "Maison Leroux", "Urbano", "Alba", "Fjordline", "Kestrel & Co"),
                 ("size S", "size M", "size L", "size XL", "EU 38", "EU 42", "one size", "kids age 8",
                  "worn twice", "from a smoke-free home")),
    "electronics": (("Voltra", "Kenmark", "Sonex", "Pixelon", "Hartwell", "Zentro"),
                    ("with charger", "in original box", "fully working", "tested and working", "with cables",
                     "2 years old", "A+ energy rating", "minor scratches")),
    "home-garden": (("Hagberg", "Casa Lina", "Greenfield", "Ironwood", "Porcel", "Hearth & Co"),
                    ("set of 4", "large", "small", "for indoor and outdoor", "in pot", "with case",
                     "barely used", "collection only")),
    "vehicles": (("Veloce", "Kraftmann", "Nordstar", "Ryder", "Baltic", "Corsa"),
                 ("2012, 148,000 km", "2018, 61,000 km", "MOT until May", "one owner", "new tyres",
                  "full service history", "spares or repairs", "low mileage")),
    "music": (("Marlow", "Stradella", "Bluenote", "Tamberg", "Harlan"),
              ("with case", "full size", "3/4 size", "new strings", "with stand", "great for beginners",
               "gig bag included")),
    "sports": (("Apex", "Sprintex", "Kinetik", "Fieldmaster", "Velo"),
               ("size 5", "official size", "adult", "junior", "with bag", "hardly used", "match quality")),
    "food": (("homegrown", "organic", "farm fresh", "allotment", "local"),
             ("1 kg", "per box", "5 kg bag", "freshly picked", "per bag", "collect today")),
    "bakery-sweets": (("Mill Lane", "home-made", "Bakehouse", "homemade"),  # a fine class: overrides "food"
                      ("baked today", "per dozen", "box of 6", "made to order", "collect today")),
    "toys": (("Tinker & Co", "Playwell", "Brixo", "Hoppla", "Wunderbox"),
             ("age 3+", "complete", "with box", "from a smoke-free home", "all parts included",
              "collector's item")),
    "pets": ((), ("3 months old", "vaccinated", "2 years old", "pair", "with cage", "very friendly",
                  "to a good home", "hand-reared", "from a small breeder")),
}
# Per broad class: how a seller who files an item there talks about it without naming it.
_CATEGORY_PHRASES = {
    "clothing": ("clothes bundle", "women's clothing", "men's clothing", "kids' clothes", "fashion accessory"),
    "electronics": ("electronics", "gadget", "tech bundle", "electrical item", "device, works"),
    "home-garden": ("home decor", "kitchen stuff", "household item", "garden bits", "DIY bits"),
    "vehicles": ("car part", "vehicle", "spare part", "for your car", "motor, runs well"),
    "music": ("music gear", "instrument", "band equipment", "for musicians", "studio gear"),
    "sports": ("sports equipment", "gym gear", "outdoor gear", "training kit", "fitness stuff"),
    "food": ("homemade food", "fresh produce", "treats", "snacks", "from the allotment"),
    "toys": ("toys", "kids' toy", "toy bundle", "game", "collectible"),
    "pets": ("pet", "animal", "pet supplies", "for your pet", "needs a new home"),
}
_ADJECTIVES = ("vintage", "lovely", "classic", "retro", "sturdy", "beautiful", "genuine", "compact",
               "quality", "cute", "large", "small", "nice")
_ADJECTIVES_BY_CLASS = {
    "pets": ("lovely", "friendly", "beautiful", "young", "tame", "cute", "healthy"),
    "food": ("fresh", "sweet", "ripe", "tasty", "homegrown", "juicy", "delicious"),
}
_CONDITIONS = ("like new", "barely used", "good condition", "used", "new", "brand new", "needs some love",
               "excellent condition", "some wear")
# Where "like new" would read oddly: what sellers say instead.
_CONDITIONS_BY_CLASS = {
    "pets": ("healthy", "well socialised", "lovely temperament", "ready now", "vet checked", "calm",
             "used to children"),
    "food": ("fresh", "this season's", "local", "ready to collect", "great value", "today only"),
    "vehicles": ("runs well", "good condition", "some rust", "drives perfectly", "needs work",
                 "clean inside and out", "well maintained", "like new"),
}
_DESCRIBING_TEMPLATES = (
    "{adjective} {item}, {condition}",
    "{item} - {detail}",
    "{brand} {item}, {detail}",
    "{condition}: {item} ({detail})",
    "{item} for sale",
    "{brand} {item} {detail}, {condition}",
    "{item}",
)
_GENERIC_TITLES = (
    "Must go", "Moving sale, everything cheap", "See photo", "Make me an offer", "Clearing out the garage",
    "Good price!!", "Pick up only", "As pictured", "Bargain", "Quick sale", "Everything must go this weekend",
    "Open to offers", "Spring cleaning", "Decluttering", "Read description", "Sold as seen", "Cheap",
    "Need gone asap", "Job lot", "Selling up, all offers considered",
)
_SUFFIXES = (" !!", " - cheap", " (pick up only)", " ono", " obo", " - quick sale")
TITLE_KIND_WEIGHTS = {"describing": 0.75, "generic": 0.17, "none": 0.08}  # before misleading titles


def _finish_title(title: str, rng: np.random.Generator) -> str:
    """Casing and punctuation as sellers type them: mostly capitalised, some lower or upper case."""
    if rng.random() < 0.1:
        title += pick_one(rng, _SUFFIXES)
    style = rng.random()
    if style < 0.12:
        return title.lower()
    if style < 0.16:
        return title.upper()
    return title[0].upper() + title[1:]


def describing_title(stamp: Stamp, colour: str, rng: np.random.Generator) -> str:
    """A title that names the item, e.g. "Hagberg red mug, set of 4" or "Like new: cello (with case)"."""
    brands, details = _TITLE_VOCABULARY.get(stamp.fine) or _TITLE_VOCABULARY[stamp.broad]
    item = f"{colour} {stamp.name}" if colour else stamp.name
    template = pick_one(rng, _DESCRIBING_TEMPLATES)
    adjectives = _ADJECTIVES_BY_CLASS.get(stamp.broad, _ADJECTIVES)
    brand = pick_one(rng, brands) if brands else pick_one(rng, adjectives)
    conditions = _CONDITIONS_BY_CLASS.get(stamp.broad, _CONDITIONS)
    title = template.format(adjective=pick_one(rng, adjectives), item=item, condition=pick_one(rng, conditions),
                            detail=pick_one(rng, details), brand=brand)
    return _finish_title(title, rng)


def generic_title(rng: np.random.Generator) -> str:
    """A title that says nothing about the item."""
    return _finish_title(pick_one(rng, _GENERIC_TITLES), rng)


def misleading_title(given_label: str, stamps_by_class: dict[str, tuple[Stamp, ...]], broad_of: dict[str, str],
                     rng: np.random.Generator) -> str:
    """A title in the words of class `given_label`, as written by a seller who filed the item there:
    half the time the category's words ("Sports equipment, barely used"), else an item of that class."""
    if rng.random() < 0.5:
        broad = broad_of[given_label]
        phrase = pick_one(rng, _CATEGORY_PHRASES[broad])
        return _finish_title(f"{phrase}, {pick_one(rng, _CONDITIONS_BY_CLASS.get(broad, _CONDITIONS))}", rng)
    return describing_title(pick_one(rng, stamps_by_class[given_label]), "", rng)
