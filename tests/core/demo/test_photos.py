"""Tests of the photos demo style (core/demo/photos.py through core.demo.build.build_demo and `listing-audit demo`),
on the real Tux Paint stamps and GIMP patterns at small sizes. Nothing is skipped: scripts/setup.sh installs
tuxpaint-stamps-default, gimp-data and librsvg2-bin, and these tests fail without them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cli.main import main
from core.demo.write import LISTING_COLUMNS, TRUTH_COLUMNS
from core.demo.styles import DemoError, DemoSourceError
from core.demo.build import build_demo
from core.demo.catalogue import BROAD_CLASSES, BROAD_NEIGHBOURS, CATALOGUE, FINE_CLASSES
from core.demo.photos import MAX_SIDE, MIN_SIDE, ListingPhotosStyle, round_price
from core.demo.titles import TITLE_KINDS
from core.demo.sources import load_sources, read_gimp_pattern
from tests.core.demo.test_build import files_on_disk, read_csv

PER_CLASS = 6
# Higher rates than the defaults, so that 54 photos still get every kind of planted problem.
SMALL = dict(per_class=PER_CLASS, noise_rate=0.3, duplicate_rate=0.15, price_typo_rate=0.1, seed=1)
EXTRA_COLUMNS = ["item", "title_kind", "surface", "second_item"]
STAMPS = {stamp.path: stamp for stamp in CATALOGUE}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small photos demo built once for the module: (report, root, truth, listings)."""
    root = tmp_path_factory.mktemp("photos") / "demo"
    report = build_demo(root, **SMALL)
    return report, root, read_csv(root / "truth.csv"), read_csv(root / "listings.csv")


def listing_photos(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[(truth.is_duplicate == 0) & (truth.is_broken == 0)]


def test_catalogue_classes_have_enough_distinct_stamps():
    assert len(BROAD_CLASSES) == 9 and 15 <= len(FINE_CLASSES) <= 25
    assert len(STAMPS) == len(CATALOGUE)  # no stamp twice
    for name in BROAD_CLASSES:
        assert sum(stamp.broad == name for stamp in CATALOGUE) >= 12, name
    for name in FINE_CLASSES:
        assert sum(stamp.fine == name for stamp in CATALOGUE) >= 6, name
    assert all(name in BROAD_NEIGHBOURS and name not in BROAD_NEIGHBOURS[name] for name in BROAD_CLASSES)


def test_every_stamp_and_pattern_is_installed():
    sources = load_sources()
    for path in ("clothes/t_tshirt", "household/electronics/laptop"):  # a PNG and an SVG stamp
        cutout = sources.cutout(path)
        assert cutout.image.mode == "RGBA" and min(cutout.image.size) > 10
        assert cutout.image.getchannel("A").getextrema() == (0, 255)
    assert sources.cutout("clothes/t_tshirt").tintable
    wood = read_gimp_pattern(sources.patterns_dir / "Wood/pine.pat")
    assert wood.dtype.name == "uint8" and wood.ndim == 3 and wood.shape[2] == 3


def test_folders_are_the_given_labels_and_mislabels_are_marked(demo):
    report, root, truth, _ = demo
    assert report.style == "photos" and report.classes == BROAD_CLASSES
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(BROAD_CLASSES)
    assert list(truth.columns) == TRUTH_COLUMNS + EXTRA_COLUMNS
    for row in truth.itertuples():
        assert row.path.split("/")[0] == row.given_label
    assert ((truth.is_mislabel == 1) == (truth.given_label != truth.true_label)).all()
    photos = listing_photos(truth)
    assert len(photos) == report.photos == PER_CLASS * len(BROAD_CLASSES)
    assert photos.true_label.value_counts().to_dict() == {name: PER_CLASS for name in BROAD_CLASSES}
    assert all(STAMPS[item].broad == label for item, label in zip(truth.item, truth.true_label))


def test_planted_mislabels_go_mostly_to_confusable_classes(demo):
    report, _, truth, _ = demo
    planted = listing_photos(truth)[lambda t: t.is_mislabel == 1]
    assert len(planted) == report.planted_mislabels == round(SMALL["noise_rate"] * report.photos)
    confusable = [given in BROAD_NEIGHBOURS[true] for given, true in zip(planted.given_label, planted.true_label)]
    assert sum(confusable) >= len(planted) / 2


def test_listings_join_every_file(demo):
    report, root, truth, listings = demo
    assert list(listings.columns) == LISTING_COLUMNS
    images = set(files_on_disk(root)) - {"listings.csv", "truth.csv"}
    assert set(listings.path) == set(truth.path) == images
    assert len(listings) == len(truth) == report.files == len(images)
    assert listings.listing_id.is_unique and (listings.price > 0).all()
    assert any(path.count("/") == 2 for path in truth.path)  # nested folders
    assert any(" " in path and not path.isascii() for path in truth.path)  # odd names


def test_titles_of_every_kind(demo):
    _, _, truth, listings = demo
    table = truth.merge(listings[["path", "title"]], on="path")
    assert set(table.title_kind) == set(TITLE_KINDS)
    assert (table.title[table.title_kind == "none"] == "").all()
    assert (table.title[table.title_kind != "none"] != "").all()
    assert (table.is_mislabel[table.title_kind == "misleading"] == 1).all()
    described = table[table.title_kind == "describing"]
    assert all(STAMPS[item].name.lower() in title.lower() for item, title in zip(described.item, described.title))


def test_photos_are_jpegs_of_varied_sizes_between_320_and_900(demo):
    _, root, truth, _ = demo
    sizes = []
    for path in listing_photos(truth).path:
        with Image.open(root / path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            sizes.append(image.size)
    assert all(MIN_SIDE <= side <= MAX_SIDE for size in sizes for side in size)
    assert any(w > h for w, h in sizes) and any(w < h for w, h in sizes)
    assert len(set(sizes)) > len(sizes) / 2


def test_surfaces_and_second_items_vary(demo):
    _, _, truth, _ = demo
    photos = listing_photos(truth)
    assert photos.surface.str.split("/").str[0].nunique() >= 4 and "plain" in set(photos.surface)
    seconds = photos[photos.second_item != ""]
    assert 0 < len(seconds) < len(photos) / 2
    assert all(STAMPS[a].broad != STAMPS[b].broad for a, b in zip(seconds.item, seconds.second_item))


def test_prices_follow_the_item_and_typos_are_far_from_it(demo):
    report, _, truth, listings = demo
    table = truth.merge(listings[["path", "price"]], on="path")
    table["median"] = table.item.map(lambda item: STAMPS[item].price)
    distance = (table.price / table["median"]).map(math.log).abs()
    typos = table.is_price_typo == 1
    assert typos.sum() == report.price_typos == round(SMALL["price_typo_rate"] * report.photos)
    assert (distance[typos] >= math.log(5.0) - 0.01).all()
    honest = table[~typos & (table.is_duplicate == 0)]
    assert ((honest.price / honest["median"]).map(math.log).abs() < math.log(3.0)).all()
    assert round_price(0.73) == 0.7 and round_price(4.26) == 4.5 and round_price(37.4) == 37
    assert round_price(4512) == 4500


def test_same_seed_builds_the_same_files_and_another_seed_does_not(demo, tmp_path):
    _, root, _, _ = demo
    again = build_demo(tmp_path / "again", **SMALL).path
    other = build_demo(tmp_path / "other", **{**SMALL, "seed": 2}).path
    assert files_on_disk(again) == files_on_disk(root)
    assert files_on_disk(other) != files_on_disk(root)


def test_without_titles_and_prices_the_photos_and_labels_stay(demo, tmp_path):
    _, root, truth, _ = demo
    bare = build_demo(tmp_path / "bare", titles=False, prices=False, **SMALL).path
    images = {path: digest for path, digest in files_on_disk(root).items() if not path.endswith(".csv")}
    assert {path: digest for path, digest in files_on_disk(bare).items() if not path.endswith(".csv")} == images
    listings, bare_truth = read_csv(bare / "listings.csv"), read_csv(bare / "truth.csv")
    assert (listings.title == "").all() and (listings.price == "").all()
    assert (bare_truth.title_kind == "none").all() and (bare_truth.is_price_typo == 0).all()
    assert (bare_truth.given_label == truth.given_label).all() and (bare_truth.true_label == truth.true_label).all()


def test_fine_classes(tmp_path):
    report = build_demo(tmp_path / "fine", classes="fine", per_class=1, noise_rate=0.0, broken_count=1,
                        duplicate_rate=0.0)
    truth = read_csv(report.path / "truth.csv")
    assert report.classes == FINE_CLASSES
    assert sorted(p.name for p in report.path.iterdir() if p.is_dir()) == sorted(FINE_CLASSES)
    assert all(STAMPS[item].fine == label for item, label in zip(truth.item, truth.true_label))
    assert ListingPhotosStyle(classes="fine").default_per_class * len(FINE_CLASSES) == pytest.approx(5000, abs=30)
    assert ListingPhotosStyle().default_per_class * len(BROAD_CLASSES) == pytest.approx(5000, abs=30)


def test_bad_options_and_missing_stamps_say_what_to_do(tmp_path):
    with pytest.raises(DemoError, match="unknown demo style"):
        build_demo(tmp_path / "a", style="watercolours")
    with pytest.raises(DemoError, match="image_size"):
        build_demo(tmp_path / "b", image_size=64)
    with pytest.raises(DemoError, match="photos style"):
        build_demo(tmp_path / "c", style="fashion", classes="fine")
    with pytest.raises(DemoSourceError, match="apt-get install tuxpaint-stamps-default"):
        build_demo(tmp_path / "d", source_dir=tmp_path / "empty")
    with pytest.raises(DemoError, match="misfiled items need a style with kinds of item"):
        build_demo(tmp_path / "e", style="fashion", misfiled_items=True)
    assert list(tmp_path.iterdir()) == []


def test_misfiled_items_put_most_of_a_kind_in_one_wrong_folder():
    """As a seller's habit: the listings of a misfiled kind of item share one wrong folder, so they vouch
    for each other's wrong label; the rest of the kind stays where it belongs."""
    from core.demo.build import _MISFILED_ITEM_SHARE, _plant_item_noise, make_style

    style = make_style("photos")
    photos = pd.DataFrame([{"true_label": label, "item": f"{label}/kind{kind}"}
                           for label in style.classes for kind in range(8) for _ in range(5)])
    given = _plant_item_noise(photos, style, rate=0.1, rng=np.random.default_rng(0))
    moved = photos.assign(given=given)[given != photos["true_label"].to_numpy()]
    assert len(moved) == round(0.1 * len(photos))
    per_kind = moved.groupby("item")["given"].agg(["nunique", "size"])
    assert (per_kind["nunique"] == 1).all()  # one wrong folder per kind
    sizes = sorted(per_kind["size"], reverse=True)  # every kind but the last one moved is 70% moved
    assert sizes[:-1] == [round(_MISFILED_ITEM_SHARE * 5)] * (len(sizes) - 1) and sizes[-1] <= sizes[0]
    assert all(given in BROAD_NEIGHBOURS[label] for label, given in zip(moved["true_label"], moved["given"]))


def test_cli_builds_photos_by_default_and_fine_without_titles_or_prices(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--per-class", "1", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "Built demo dataset" in printed and "(photos) in 9 class folders" in printed
    fine = tmp_path / "fine"
    assert main(["demo", "--out", str(fine), "--classes", "fine", "--no-titles", "--no-prices", "--per-class", "1",
                 "--seed", "2"]) == 0
    listings = read_csv(fine / "listings.csv")
    assert (listings.title == "").all() and (listings.price == "").all()
    assert main(["demo", "--out", str(tmp_path / "x"), "--source", str(tmp_path / "empty")]) == 2
    assert "apt-get install tuxpaint-stamps-default" in capsys.readouterr().err


def test_sketches_are_grey_pencil_drawings_of_the_same_listings_and_label_titles_repeat_the_folder(tmp_path):
    photos = build_demo(tmp_path / "photos", per_class=2, seed=4, broken_count=0, duplicate_rate=0.0)
    sketches = build_demo(tmp_path / "sketches", style="sketches", per_class=2, seed=4, broken_count=0,
                          duplicate_rate=0.0, label_titles=True)
    truth_photos, truth_sketches = read_csv(photos.path / "truth.csv"), read_csv(sketches.path / "truth.csv")
    assert list(truth_photos.path) == list(truth_sketches.path) and list(truth_photos.item) == list(truth_sketches.item)
    with Image.open(sketches.path / truth_sketches.path[0]) as picture:
        pixels = np.asarray(picture.convert("RGB"), dtype=int)
    assert np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max() <= 12  # grey, up to JPEG's colour noise
    assert np.median(pixels) > 200  # mostly paper
    listings = read_csv(sketches.path / "listings.csv").set_index("path")
    for path, given in zip(truth_sketches.path, truth_sketches.given_label):
        assert given.replace("-", " ") in listings.loc[path, "title"].lower()
    assert set(truth_sketches.title_kind) == {"label"}
