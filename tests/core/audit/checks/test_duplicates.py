"""The duplicate check on real re-uploads: exact copies, re-encoded, resized and PNG copies, label conflicts."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import core.audit.checks.duplicates as duplicates
from core.audit.run import run_audit
from core.audit.checks.duplicates import (DuplicateCheck, brightness_bands, near_pairs_by_band, pixel_thumbnails,
                                          read_thumbnails)
from core.scan.copies import exact_pairs, group_components
from core.scan.hashindex import near_pairs
from tests.core.audit.checks.photos import photo, save


@pytest.fixture
def reuploads(tmp_path):
    """A dataset folder with three groups of copies, six distinct photos, a colour-swapped photo, broken twins."""
    original = save(photo(0), tmp_path / "a/p0.jpg")
    (tmp_path / "a/p0-copy.jpg").write_bytes(original.read_bytes())
    save(photo(1), tmp_path / "a/p1.jpg")
    save(photo(1), tmp_path / "b/p1-reencoded.jpg", quality=60)
    save(photo(2), tmp_path / "a/p2.jpg")
    save(photo(2).resize((112, 84), Image.Resampling.LANCZOS), tmp_path / "a/p2-resized.jpg")
    save(photo(2), tmp_path / "b/p2.png")
    for seed in range(3, 9):
        save(photo(seed), tmp_path / f"b/p{seed}.jpg")
    swapped = np.asarray(photo(1)).copy()
    swapped[:, :, [0, 1]] = swapped[:, :, [1, 0]]
    save(Image.fromarray(swapped), tmp_path / "b/p1-swapped.jpg")
    (tmp_path / "b/broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "b/broken-copy.jpg").write_bytes(b"not a jpeg")
    return tmp_path


def groups_by_path(result, context) -> set[frozenset[str]]:
    flagged = result.flagged()
    paths = context.samples["path"]
    return {frozenset(paths[members.index]) for _, members in flagged.groupby("group")}


def test_copies_are_grouped_and_distinct_photos_are_not(reuploads, scanned_context):
    context = scanned_context(reuploads)
    result = run_audit(context, ["duplicate"]).results["duplicate"]
    assert groups_by_path(result, context) == {
        frozenset({"a/p0.jpg", "a/p0-copy.jpg"}),
        frozenset({"a/p1.jpg", "b/p1-reencoded.jpg"}),
        frozenset({"a/p2.jpg", "a/p2-resized.jpg", "b/p2.png"}),
    }
    assert result.summary["groups"] == 3 and result.summary["label_conflict_groups"] == 2
    assert result.summary["exact_pairs"] == 1


def test_evidence_scores_and_suggested_labels(reuploads, scanned_context):
    context = scanned_context(reuploads)
    issues = run_audit(context, ["duplicate"]).results["duplicate"].issues
    by_path = issues.set_index(context.samples.loc[issues.index, "path"])
    exact = by_path.loc["a/p0-copy.jpg"]
    assert exact["evidence"]["exact"] and exact["evidence"]["phash_distance"] == 0
    assert exact["duplicate_score"] == 0.0 and exact["suggested_label"] is None  # certain: byte-identical
    assert "exact copy of 1 other file" in exact["reason"]
    # a two-member conflict has no majority: no suggestion, but the conflict is stated
    tie = by_path.loc["b/p1-reencoded.jpg"]
    assert tie["evidence"]["label_conflict"] and tie["evidence"]["majority_label"] is None
    assert tie["suggested_label"] is None and tie["duplicate_score"] < 0.25
    assert "labels disagree (a x1, b x1)" in tie["reason"]
    # in a group of three the majority label is suggested to the odd one out only
    assert by_path.loc["b/p2.png", "suggested_label"] == "a"
    assert by_path.loc["a/p2.jpg", "suggested_label"] is None
    evidence = by_path.loc["b/p2.png", "evidence"]
    assert {m["path"] for m in evidence["members"]} == {"a/p2.jpg", "a/p2-resized.jpg", "b/p2.png"}
    assert evidence["labels"] == {"a": 2, "b": 1} and evidence["size"] == 3
    assert evidence["keep"] in {int(i) for i in context.samples.index[context.samples["path"].isin(["a/p2.jpg", "b/p2.png"])]}
    assert by_path.loc["b/p3.jpg", "duplicate_score"] == 1.0 and not by_path.loc["b/p3.jpg", "is_duplicate_issue"]


def test_pixels_confirm_what_phash_suggests(reuploads, scanned_context):
    context = scanned_context(reuploads)
    context = replace(context, samples=context.samples[context.samples["readable"]])
    checked = DuplicateCheck(max_distance=8).find_issues(context)
    assert frozenset({"a/p1.jpg", "b/p1-reencoded.jpg"}) in groups_by_path(checked, context)
    unchecked = DuplicateCheck(max_distance=8, max_pixel_difference=None).find_issues(context)
    assert frozenset({"a/p1.jpg", "b/p1-reencoded.jpg", "b/p1-swapped.jpg"}) in groups_by_path(unchecked, context)


def test_exact_pairs_chain_each_content_hash_and_skip_missing_ones():
    a, b = exact_pairs(pd.Series(["x", None, "y", "x", None, "x"]))
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 3), (3, 5)]


def test_group_components_number_groups_by_first_member():
    group = group_components(7, np.array([5, 1, 2]), np.array([6, 2, 4]))
    assert group.tolist() == [0, 1, 1, 0, 1, 2, 2]
    assert group_components(3, np.array([], dtype=int), np.array([], dtype=int)).tolist() == [0, 0, 0]


def test_the_search_by_brightness_band_finds_exactly_the_pairs_in_adjacent_bands():
    rng = np.random.default_rng(4)
    hashes = rng.integers(0, 2**63, size=600, dtype=np.uint64)
    hashes[300:] = hashes[:300] ^ np.uint64(0b101)  # 300 planted near pairs
    brightness = rng.uniform(0.0, 1.0, size=600)
    brightness[::50] = np.nan
    bands = brightness_bands(brightness)
    everything = near_pairs(hashes, max_distance=4)
    adjacent = (bands[everything.i] >= 0) & (bands[everything.j] >= 0) & (np.abs(bands[everything.i] - bands[everything.j]) <= 1)
    by_band = near_pairs_by_band(hashes, bands, max_distance=4)
    assert np.array_equal(by_band.i, everything.i[adjacent]) and np.array_equal(by_band.j, everything.j[adjacent])
    assert np.array_equal(by_band.distance, everything.distance[adjacent])
    assert 0 < len(by_band) < len(everything)


def test_brightnesses_within_the_tolerance_are_never_two_bands_apart():
    low = np.linspace(0.0, 0.98, 4901)
    bands = brightness_bands(np.concatenate([low, low + duplicates.STATS_TOLERANCE]))
    assert (bands[len(low):] - bands[:len(low)]).max() <= 1
    assert brightness_bands(np.array([np.nan, 0.5])).tolist() == [-1, 24]


def test_thumbnails_read_by_processes_are_the_ones_read_here(reuploads, monkeypatch):
    paths = sorted(str(path) for path in reuploads.rglob("*.*"))
    here = pixel_thumbnails(paths)
    monkeypatch.setattr(duplicates, "THUMBNAIL_CHUNK", 3)
    monkeypatch.setattr(duplicates, "MIN_FILES_FOR_POOL", 2)
    monkeypatch.setattr(duplicates, "THUMBNAIL_WORKERS", 2)
    done = []
    by_processes = read_thumbnails(paths, done.append)
    assert done == list(range(3, len(paths), 3)) + [len(paths)]
    assert [None if t is None else t.tolist() for t in by_processes] == [None if t is None else t.tolist() for t in here]
    assert sum(t is None for t in here) == 2 and all(t.shape == (32, 32, 3) and t.dtype == np.uint8 for t in here if t is not None)
