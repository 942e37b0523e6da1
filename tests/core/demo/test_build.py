"""Tests of core/demo/build.py's fashion style and `listing-audit demo --style fashion`, on the real Fashion-MNIST
files at small sizes. The photos style (the default) is tested in test_demo_photos.py."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import imagehash
import pandas as pd
import pytest
from PIL import Image

from cli.main import main
from core.demo.build import BROKEN_KINDS, DUPLICATE_KINDS, PRICE_TYPO_MIN_FACTOR, build_demo
from core.demo.fashion import CONFUSION_GROUPS, FASHION_CLASSES, MEDIAN_PRICE_EUR, load_fashion_mnist
from core.demo.styles import DEFAULT_SOURCE, DemoOutputError, DemoSourceError
from core.demo.write import LISTING_COLUMNS, TRUTH_COLUMNS

PER_CLASS = 8
# Higher rates than the defaults, so that 80 photos still get every kind of planted problem.
SMALL = dict(style="fashion", per_class=PER_CLASS, image_size=64, noise_rate=0.2, duplicate_rate=0.1,
             price_typo_rate=0.1)
# sha256 of listings.csv and truth.csv of build_demo(seed=1, **SMALL) before the photos style existed:
# the fashion style must keep building the same dataset.
FASHION_TABLES_SHA256 = {
    "listings.csv": "f97221f366b61286afad5b7eebf7f803cb7e7664ffb00d66ba62653860931a18",
    "truth.csv": "c2a06c3a3dbac9d077e4ec8135cf40097fcac24f859f5f76bb6217ae5b9ef929",
}


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


def files_on_disk(root: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file under `root`."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file()
    }


def decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo built once for the module: (report, root, truth DataFrame)."""
    root = tmp_path_factory.mktemp("demo") / "demo"
    report = build_demo(root, seed=1, **SMALL)
    return report, root, read_csv(root / "truth.csv")


def test_load_fashion_mnist_gives_all_70000_items():
    images, labels = load_fashion_mnist(DEFAULT_SOURCE)
    assert images.shape == (70000, 28, 28) and images.dtype.name == "uint8"
    assert labels.shape == (70000,) and set(labels.tolist()) == set(range(len(FASHION_CLASSES)))


def test_every_class_folder_holds_its_photos(demo):
    report, root, truth = demo
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(FASHION_CLASSES)
    photos = truth[(truth.is_duplicate == 0) & (truth.is_broken == 0)]
    assert len(photos) == report.photos == PER_CLASS * len(FASHION_CLASSES)
    assert photos.true_label.value_counts().to_dict() == {name: PER_CLASS for name in FASHION_CLASSES}
    for row in truth.itertuples():
        assert row.path.split("/")[0] == row.given_label


def test_every_file_has_one_listing_and_one_truth_row(demo):
    report, root, truth = demo
    listings = read_csv(root / "listings.csv")
    assert list(listings.columns) == LISTING_COLUMNS
    assert list(truth.columns) == TRUTH_COLUMNS
    images = set(files_on_disk(root)) - {"listings.csv", "truth.csv"}
    assert set(listings.path) == set(truth.path) == images
    assert len(listings) == len(truth) == report.files == len(images)
    assert listings.listing_id.is_unique and listings.listing_id.str.fullmatch(r"L\d{6}").all()
    assert (listings.price > 0).all() and listings.title.str.len().gt(0).all()


def test_some_photos_are_nested_or_have_unusual_names(demo):
    _, _, truth = demo
    assert any(path.count("/") == 2 for path in truth.path)
    assert any(" " in path and not path.isascii() for path in truth.path)


def test_mislabels_stay_within_a_confusion_group(demo):
    report, _, truth = demo
    planted = truth[(truth.is_mislabel == 1) & (truth.is_duplicate == 0)]
    assert len(planted) == report.planted_mislabels == round(SMALL["noise_rate"] * report.photos)
    for row in planted.itertuples():
        assert row.given_label != row.true_label
        assert any({row.given_label, row.true_label} <= group for group in CONFUSION_GROUPS)
    assert ((truth.is_mislabel == 1) == (truth.given_label != truth.true_label)).all()


def test_duplicates_are_reencodes_of_existing_files(demo):
    report, root, truth = demo
    by_path = truth.set_index("path")
    copies = truth[truth.is_duplicate == 1]
    assert len(copies) == report.duplicates == round(SMALL["duplicate_rate"] * report.photos)
    assert set(copies.duplicate_kind) == set(DUPLICATE_KINDS)
    for row in copies.itertuples():
        original = by_path.loc[row.duplicate_of]
        assert original.is_duplicate == 0 and original.is_broken == 0
        assert row.true_label == original.true_label
        copy_bytes, original_bytes = (root / row.path).read_bytes(), (root / row.duplicate_of).read_bytes()
        assert (copy_bytes == original_bytes) == (row.duplicate_kind == "exact")
        assert row.path.endswith(".png") == (row.duplicate_kind == "png")
        with Image.open(root / row.path) as copy, Image.open(root / row.duplicate_of) as source:
            assert (copy.size < source.size) == (row.duplicate_kind == "resized")
            assert imagehash.phash(copy) - imagehash.phash(source) <= 4
    conflicts = sum(row.given_label != by_path.loc[row.duplicate_of].given_label for row in copies.itertuples())
    assert conflicts == report.label_conflicts == round(0.25 * len(copies))


def test_broken_files_do_not_decode_and_the_rest_do(demo):
    _, root, truth = demo
    broken = truth[truth.is_broken == 1]
    assert sorted(broken.broken_kind) == sorted(BROKEN_KINDS)
    assert all(path.endswith((".jpg", ".png")) for path in broken.path)
    for row in truth.itertuples():
        assert decodes(root / row.path) == (row.is_broken == 0), row.path


def test_price_typos_are_far_from_their_class_and_honest_prices_are_not(demo):
    report, root, truth = demo
    prices = read_csv(root / "listings.csv").set_index("path").price
    truth = truth.assign(price=truth.path.map(prices), median=truth.true_label.map(MEDIAN_PRICE_EUR))
    distance = (truth.price / truth["median"]).map(math.log).abs()
    typos = truth.is_price_typo == 1
    assert typos.sum() == report.price_typos == round(SMALL["price_typo_rate"] * report.photos)
    assert (distance[typos] >= math.log(PRICE_TYPO_MIN_FACTOR) - 0.01).all()
    assert (distance[~typos] < math.log(3.0)).all()
    assert (truth.price[~typos] == truth.true_price[~typos]).all()


def test_tables_are_the_same_as_before_the_photos_style(demo):
    _, root, _ = demo
    for name, digest in FASHION_TABLES_SHA256.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


def test_same_seed_builds_the_same_files_and_another_seed_does_not(demo, tmp_path):
    _, root, _ = demo
    again = build_demo(tmp_path / "again", seed=1, **SMALL).path
    other = build_demo(tmp_path / "other", seed=2, **SMALL).path
    assert files_on_disk(again) == files_on_disk(root)
    assert files_on_disk(other) != files_on_disk(root)
    assert (other / "truth.csv").read_bytes() != (root / "truth.csv").read_bytes()


def test_refuses_a_non_empty_folder_and_overwrites_only_a_previous_demo(tmp_path):
    tiny = dict(style="fashion", per_class=1, image_size=32, broken_count=1)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(DemoOutputError, match="not empty"):
        build_demo(tmp_path / "notes", **tiny)
    with pytest.raises(DemoOutputError, match="not a demo"):
        build_demo(tmp_path / "notes", overwrite=True, **tiny)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    build_demo(tmp_path / "demo", seed=1, **tiny)
    build_demo(tmp_path / "demo", seed=2, overwrite=True, **tiny)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "notes"]


def test_missing_source_names_the_files_and_the_fix(tmp_path):
    with pytest.raises(DemoSourceError, match="train-images-idx3-ubyte.gz") as error:
        build_demo(tmp_path / "demo", style="fashion", source_dir=tmp_path / "empty")
    assert "apt-get install dataset-fashion-mnist" in str(error.value) and "--source" in str(error.value)
    assert not (tmp_path / "demo").exists()


def test_an_interrupted_build_leaves_nothing_behind(tmp_path):
    def interrupt_halfway(fraction: float, message: str) -> None:
        if fraction > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_demo(tmp_path / "demo", style="fashion", per_class=4, image_size=32, progress=interrupt_halfway)
    assert list(tmp_path.iterdir()) == []


def test_cli_demo_builds_then_refuses_to_build_over_it(tmp_path, capsys):
    out = tmp_path / "demo"
    fashion = ["--style", "fashion"]
    assert main(["demo", *fashion, "--out", str(out), "--per-class", "2", "--seed", "3", "--noise-rate", "0.1"]) == 0
    printed = capsys.readouterr().out
    assert "Built demo dataset" in printed and "price typos" in printed
    assert len(read_csv(out / "truth.csv")) == len(read_csv(out / "listings.csv")) > 20

    assert main(["demo", *fashion, "--out", str(out), "--per-class", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["demo", *fashion, "--out", str(out), "--per-class", "2", "--overwrite"]) == 0

    assert main(["demo", *fashion, "--out", str(tmp_path / "x"), "--source", str(tmp_path / "empty")]) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
