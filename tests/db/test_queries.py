"""Tests of db/queries.py on a real SQLite file: datasets, class order, the samples frame, rescan helpers."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from sqlalchemy import select

from db.corrections import decide
from db.models import Dataset, Sample
from db.queries import (
    SAMPLE_COLUMNS, apply_listings, correction_counts, dataset_classes, get_dataset, get_or_create_dataset,
    known_files, list_datasets, mark_missing, samples_frame, store_dataset_scan,
)
from tests.db.many_samples import add_many_samples

CLASSES = ["bags", "hats", "shoes"]


def add_samples(session, dataset_id: int, paths: list[str]) -> dict[str, int]:
    """Samples as a scan would record them (label = top folder); returns path -> id."""
    samples = [
        Sample(dataset_id=dataset_id, path=path, label=path.split("/")[0], file_size=100 + index,
               mtime_ns=1_000 + index, content_hash=f"{index:064x}", phash=f"{index:016x}",
               width=32, height=24, mode="RGB", readable=not path.endswith("broken.jpg"),
               error="truncated image" if path.endswith("broken.jpg") else None, brightness=0.5)
        for index, path in enumerate(paths)
    ]
    session.add_all(samples)
    session.flush()
    return {sample.path: sample.id for sample in samples}


@pytest.fixture
def dataset(factory, tmp_path):
    """A dataset of five samples in three classes; returns (dataset id, path -> sample id)."""
    with factory.begin() as session:
        dataset = get_or_create_dataset(session, tmp_path / "shop")
        ids = add_samples(session, dataset.id, [
            "shoes/b.jpg", "shoes/a.jpg", "bags/x.jpg", "bags/broken.jpg", "hats/sub/h.png",
        ])
        return dataset.id, ids


def test_get_or_create_dataset_resolves_the_root_once(factory, tmp_path):
    (tmp_path / "shop").mkdir()
    with factory.begin() as session:
        first = get_or_create_dataset(session, tmp_path / "shop")
        again = get_or_create_dataset(session, f"{tmp_path}/other/../shop/")
        assert first.id == again.id and first.root == str((tmp_path / "shop").resolve())
        assert first.name == "shop"
        assert get_dataset(session, tmp_path / "shop").id == first.id
        assert get_dataset(session, tmp_path / "elsewhere") is None


def test_list_datasets_by_name(factory, tmp_path):
    with factory.begin() as session:
        for name in ["zeta", "alpha", "mid"]:
            get_or_create_dataset(session, tmp_path / name)
    with factory() as session:
        assert [d.name for d in list_datasets(session)] == ["alpha", "mid", "zeta"]


def test_dataset_classes_are_sorted_and_include_empty_folders_from_the_last_scan(factory, dataset):
    dataset_id, ids = dataset
    with factory.begin() as session:
        assert dataset_classes(session, dataset_id) == CLASSES
        store_dataset_scan(session, session.get(Dataset, dataset_id), {"classes": {"bags": 2, "empty": 0}})
    with factory.begin() as session:
        assert dataset_classes(session, dataset_id) == ["bags", "empty", "hats", "shoes"]
        mark_missing(session, dataset_id, {"shoes/a.jpg", "shoes/b.jpg", "bags/x.jpg", "bags/broken.jpg"})
    with factory() as session:
        assert dataset_classes(session, dataset_id) == ["bags", "empty", "shoes"]


def test_samples_frame_columns_order_and_types(factory, dataset):
    dataset_id, ids = dataset
    with factory() as session:
        frame = samples_frame(session, dataset_id)
    assert list(frame.columns) == SAMPLE_COLUMNS
    assert frame["path"].tolist() == sorted(ids)
    assert frame["deleted"].dtype == bool and frame["readable"].dtype == bool and frame["missing"].dtype == bool
    assert frame["price"].dtype == float
    row = frame.set_index("path").loc["hats/sub/h.png"]
    assert (row["label"], row["current_label"], row["deleted"], row["last_correction_id"]) == ("hats", "hats", False, 0)
    assert not frame.set_index("path").loc["bags/broken.jpg", "readable"]


def test_samples_frame_shows_the_state_after_the_latest_correction(factory, dataset):
    dataset_id, ids = dataset
    with factory.begin() as session:
        relabel = decide(session, session.get(Sample, ids["shoes/a.jpg"]), "relabel", classes=CLASSES, new_label="bags")
        decide(session, session.get(Sample, ids["bags/x.jpg"]), "delete", classes=CLASSES)
        decide(session, session.get(Sample, ids["bags/x.jpg"]), "restore", classes=CLASSES)
        deleted = decide(session, session.get(Sample, ids["hats/sub/h.png"]), "delete", classes=CLASSES)
    with factory() as session:
        frame = samples_frame(session, dataset_id).set_index("path")
        assert correction_counts(session, dataset_id) == 4
    assert (frame.loc["shoes/a.jpg", "label"], frame.loc["shoes/a.jpg", "current_label"]) == ("shoes", "bags")
    assert frame.loc["shoes/a.jpg", "last_correction_id"] == relabel.id
    assert not frame.loc["bags/x.jpg", "deleted"] and frame.loc["bags/x.jpg", "current_label"] == "bags"
    assert frame.loc["hats/sub/h.png", "deleted"] and frame.loc["hats/sub/h.png", "last_correction_id"] == deleted.id
    assert frame.loc["shoes/b.jpg", "last_correction_id"] == 0


def test_samples_frame_filters(factory, dataset):
    dataset_id, ids = dataset
    with factory.begin() as session:
        mark_missing(session, dataset_id, set(ids) - {"shoes/b.jpg"})
    with factory() as session:
        assert "shoes/b.jpg" not in samples_frame(session, dataset_id)["path"].tolist()
        everything = samples_frame(session, dataset_id, include_missing=True).set_index("path")
        assert everything.loc["shoes/b.jpg", "missing"] and len(everything) == 5
        chosen = samples_frame(session, dataset_id, sample_ids=[ids["bags/x.jpg"], ids["shoes/a.jpg"]])
        assert chosen["path"].tolist() == ["bags/x.jpg", "shoes/a.jpg"]
        assert samples_frame(session, dataset_id, sample_ids=[]).empty
        assert list(samples_frame(session, dataset_id + 1).columns) == SAMPLE_COLUMNS


def test_known_files_and_mark_missing_round_trip(factory, dataset):
    dataset_id, ids = dataset
    with factory.begin() as session:
        known = known_files(session, dataset_id)
        assert known["shoes/a.jpg"] == (ids["shoes/a.jpg"], 101, 1_001)
        assert mark_missing(session, dataset_id, set(ids) - {"bags/x.jpg", "shoes/a.jpg"}) == 2
        assert mark_missing(session, dataset_id, set(ids) - {"bags/x.jpg", "shoes/a.jpg"}) == 2
        assert mark_missing(session, dataset_id, set(ids) - {"bags/x.jpg"}) == 1
    with factory() as session:
        missing = {s.path for s in session.scalars(select(Sample).where(Sample.missing.is_(True)))}
        assert missing == {"bags/x.jpg"}
        assert len(known_files(session, dataset_id)) == 5  # missing ones included


def test_apply_listings_sets_and_clears(factory, dataset):
    dataset_id, ids = dataset
    table = pd.DataFrame({
        "path": ["shoes/a.jpg", "bags/x.jpg", "nowhere.jpg"],
        "listing_id": ["L1", None, "L9"],
        "price": [12.5, math.nan, 3.0],
        "title": ["Red", None, "x"],
        "extra": [{"seller": "ann"}, {}, {}],
    })
    with factory.begin() as session:
        apply_listings(session, dataset_id, table)
    with factory() as session:
        a = session.get(Sample, ids["shoes/a.jpg"])
        assert (a.listing_id, a.price, a.title, json.loads(a.listing_json)) == ("L1", 12.5, "Red", {"seller": "ann"})
        x = session.get(Sample, ids["bags/x.jpg"])
        assert (x.listing_id, x.price, x.title, x.listing_json) == (None, None, None, None)
        frame = samples_frame(session, dataset_id).set_index("path")
        assert frame.loc["shoes/a.jpg", "price"] == 12.5 and math.isnan(frame.loc["shoes/b.jpg", "price"])
    with factory.begin() as session:
        apply_listings(session, dataset_id, table.iloc[1:])
    with factory() as session:
        a = session.get(Sample, ids["shoes/a.jpg"])
        assert (a.listing_id, a.price, a.title, a.listing_json) == (None, None, None, None)


def test_store_dataset_scan_keeps_the_summary(factory, dataset):
    dataset_id, _ = dataset
    with factory.begin() as session:
        store_dataset_scan(session, session.get(Dataset, dataset_id), {"images": 5, "classes": {"bags": 2}})
    with factory() as session:
        stored = session.get(Dataset, dataset_id)
        assert json.loads(stored.last_scan_json) == {"images": 5, "classes": {"bags": 2}}
        assert stored.scanned_at is not None


def test_forty_thousand_files_vanishing_at_once_are_marked_missing_and_back(factory, tmp_path):
    """One IN list of their ids would bind 40,000 parameters: past SQLite's default limit (set here) and
    close to PostgreSQL's 65,535."""
    count = 40_000
    with factory.begin() as session:
        dataset_id = add_many_samples(session, tmp_path / "big", ["bags"] * count)
        assert mark_missing(session, dataset_id, set()) == count
        assert mark_missing(session, dataset_id, {f"bags/{i}.jpg" for i in range(count)}) == 0
        assert not any(session.scalars(select(Sample.missing).where(Sample.dataset_id == dataset_id)))
