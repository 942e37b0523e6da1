"""Tests of db/browse.py on a real scanned tiny dataset: paging, filters by current label, overview, detail, history."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from db.browse import (
    BrowseFilter, browse_page, class_counts, correction_history, count_samples, dataset_overview,
    dataset_version, price_bounds, sample_detail,
)
from db.corrections import decide
from db.models import Sample
from db.queries import dataset_classes, get_or_create_dataset
from jobs.scan import scan_dataset
from tests.pages.tiny_dataset import BROKEN_PATH, CLASSES, IMAGES_PER_CLASS, build_tiny_dataset


@pytest.fixture
def scanned(factory, tmp_path):
    """(factory, dataset id) of the tiny dataset, scanned."""
    summary = scan_dataset(factory, build_tiny_dataset(tmp_path / "shop"), workers=1)
    return factory, summary["dataset_id"]


def _sample(session, dataset_id, path) -> Sample:
    return session.scalars(select(Sample).where(Sample.dataset_id == dataset_id, Sample.path == path)).one()


def _relabel(factory, dataset_id, path, new_label, **options):
    with factory.begin() as session:
        classes = dataset_classes(session, dataset_id)
        decide(session, _sample(session, dataset_id, path), "relabel", classes=classes, new_label=new_label, **options)


def _delete(factory, dataset_id, path):
    with factory.begin() as session:
        classes = dataset_classes(session, dataset_id)
        decide(session, _sample(session, dataset_id, path), "delete", classes=classes)


def test_pages_cover_every_sample_once_in_path_order(scanned):
    factory, dataset_id = scanned
    with factory() as session:
        total = count_samples(session, dataset_id, BrowseFilter())
        pages = [browse_page(session, dataset_id, BrowseFilter(), page=p, per_page=5) for p in (1, 2, 3, 4)]
    assert total == len(CLASSES) * IMAGES_PER_CLASS + 1
    assert [len(p) for p in pages] == [5, 5, 3, 0]
    paths = [path for page in pages for path in page["path"]]
    assert paths == sorted(paths) and len(set(paths)) == total


def test_class_filter_uses_the_current_label(scanned):
    factory, dataset_id = scanned
    _relabel(factory, dataset_id, "bag/bag-0.png", "shoe")
    with factory() as session:
        bags = browse_page(session, dataset_id, BrowseFilter(label="bag"), page=1, per_page=50)
        shoes = browse_page(session, dataset_id, BrowseFilter(label="shoe"), page=1, per_page=50)
        assert count_samples(session, dataset_id, BrowseFilter(label="shoe")) == IMAGES_PER_CLASS + 2
    assert "bag/bag-0.png" not in set(bags["path"])
    moved = shoes.set_index("path").loc["bag/bag-0.png"]
    assert (moved["label"], moved["current_label"]) == ("bag", "shoe")


def test_deleted_samples_are_hidden_unless_asked_for(scanned):
    factory, dataset_id = scanned
    _delete(factory, dataset_id, "phone/phone-1.png")
    with factory() as session:
        hidden = browse_page(session, dataset_id, BrowseFilter(label="phone"), page=1, per_page=50)
        shown = browse_page(session, dataset_id, BrowseFilter(label="phone", include_deleted=True), page=1, per_page=50)
    assert "phone/phone-1.png" not in set(hidden["path"])
    assert shown.set_index("path").loc["phone/phone-1.png", "deleted"]


def test_readability_and_price_filters(scanned):
    factory, dataset_id = scanned
    with factory() as session:
        unreadable = browse_page(session, dataset_id, BrowseFilter(readable="unreadable"), page=1, per_page=50)
        readable = count_samples(session, dataset_id, BrowseFilter(readable="readable"))
        cheap = browse_page(session, dataset_id, BrowseFilter(price_range=(40.0, 55.0)), page=1, per_page=50)
        bounds = price_bounds(session, dataset_id)
    assert list(unreadable["path"]) == [BROKEN_PATH]
    assert unreadable["error"].iloc[0].startswith("not an image")
    assert readable == len(CLASSES) * IMAGES_PER_CLASS
    assert list(cheap["path"]) == ["bag/bag-0.png", "bag/bag-1.png"]
    assert bounds == (40.0, 330.0)


def test_invalid_filters_are_refused():
    with pytest.raises(ValueError, match="readability"):
        BrowseFilter(readable="broken")
    with pytest.raises(ValueError, match="low > high"):
        BrowseFilter(price_range=(10.0, 1.0))


def test_overview_counts_classes_unreadable_prices_and_listing_problems(scanned):
    factory, dataset_id = scanned
    _relabel(factory, dataset_id, "bag/bag-0.png", "shoe")
    _delete(factory, dataset_id, "phone/phone-1.png")
    with factory() as session:
        overview = dataset_overview(session, dataset_id)
    assert (overview.images, overview.readable, overview.unreadable) == (13, 12, 1)
    assert (overview.deleted, overview.relabelled, overview.corrections) == (1, 1, 2)
    assert overview.counts.classes == list(CLASSES)
    assert overview.counts.given == [4, 4, 5]
    assert overview.counts.current == [3, 3, 6]
    assert list(overview.unreadable_files["path"]) == [BROKEN_PATH]
    assert overview.priced == 12  # bag-3 has a non-numeric price
    assert len(overview.prices) == 11  # the deleted phone is left out
    assert overview.prices.groupby("label").size().to_dict() == {"bag": 2, "phone": 3, "shoe": 6}
    assert overview.scan_summary["unmatched_listings"] == 1
    assert any("non-numeric price" in problem for problem in overview.scan_summary["listings_problems"])


def test_class_counts_of_an_unscanned_dataset_are_empty(factory, tmp_path):
    with factory.begin() as session:
        dataset_id = get_or_create_dataset(session, tmp_path).id
    with factory() as session:
        counts = class_counts(session, dataset_id)
        overview = dataset_overview(session, dataset_id)
    assert counts.classes == [] and overview.images == 0 and overview.scan_summary == {}


def test_version_changes_with_each_correction(scanned):
    factory, dataset_id = scanned
    with factory() as session:
        before = dataset_version(session, dataset_id)
    _relabel(factory, dataset_id, "bag/bag-1.png", "phone")
    with factory() as session:
        assert dataset_version(session, dataset_id) != before


def test_detail_and_history_of_a_corrected_sample(scanned):
    factory, dataset_id = scanned
    _relabel(factory, dataset_id, "bag/bag-2.png", "phone", reviewer="ana", note="it is a phone case")
    with factory() as session:
        sample_id = _sample(session, dataset_id, "bag/bag-2.png").id
        detail = sample_detail(session, sample_id)
        history = correction_history(session, sample_id)
        assert sample_detail(session, 10_000) is None
    assert (detail.label, detail.current_label, detail.deleted) == ("bag", "phone", False)
    assert detail.absolute_path.endswith("shop/bag/bag-2.png")
    assert (detail.listing_id, detail.price, detail.title) == ("L-bag-2", 60.0, "A used bag number 2")
    assert (detail.width, detail.height) == (32, 32) and len(detail.content_hash) == 64
    assert detail.last_correction_id == history["id"].iloc[-1]
    assert history[["reviewer", "action", "change", "note"]].to_dict("records") == [
        {"reviewer": "ana", "action": "relabel", "change": "bag -> phone", "note": "it is a phone case"}
    ]
