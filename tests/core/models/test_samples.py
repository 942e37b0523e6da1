"""Tests of core.models.samples: the split is stratified, stable under relabels, and keeps copies together.
"""
from __future__ import annotations

import numpy as np

from core.models.samples import select_samples, stratified_split
from tests.training_data import CLASSES, one_torch_thread, tiny

__all__ = ["one_torch_thread", "tiny"]  # fixtures used by name


def test_split_is_stratified_seeded_and_keeps_singletons_for_training():
    ids = np.arange(1, 23)
    strata = ["a"] * 10 + ["b"] * 11 + ["c"]
    is_val = stratified_split(ids, strata, val_fraction=0.2, seed=0)
    assert is_val[:10].sum() == 2 and is_val[10:21].sum() == 2 and not is_val[21]
    assert np.array_equal(is_val, stratified_split(ids, strata, val_fraction=0.2, seed=0))
    assert not np.array_equal(is_val, stratified_split(ids, strata, val_fraction=0.2, seed=1))


def test_a_sample_keeps_its_side_of_the_split_when_others_are_relabelled_or_deleted(tiny):
    _, table = tiny
    before = select_samples(table, CLASSES, val_fraction=0.34, seed=0)
    changed = table.copy()
    changed.loc[changed["path"] == "bag/bag-0.jpg", "current_label"] = "shoe"
    changed.loc[changed["path"] == "dress/dress-1.jpg", "deleted"] = True
    after = select_samples(changed, CLASSES, val_fraction=0.34, seed=0)
    dress_1 = int(table.loc[table["path"] == "dress/dress-1.jpg", "id"].iloc[0])
    assert set(after.split()["val"]) == set(before.split()["val"]) - {dress_1}
    bag_0 = after.paths.index("bag/bag-0.jpg")
    assert after.classes[after.labels[bag_0]] == "shoe"
    assert "shoe/broken.jpg" not in after.paths


def test_copies_of_one_photo_land_on_one_side_of_the_split(tiny):
    _, table = tiny
    table = table.copy()
    before = select_samples(table, CLASSES, val_fraction=0.34, seed=0)
    val_path = next(p for p, i in zip(before.paths, before.sample_ids) if i in set(before.split()["val"]))
    train_path = next(p for p, i in zip(before.paths, before.sample_ids) if i in set(before.split()["train"])
                      and p.split("/")[0] != val_path.split("/")[0])
    # the validation photo re-uploaded under another class: same bytes as a training photo
    copy_hash = table.loc[table["path"] == train_path, "content_hash"].iloc[0]
    table.loc[table["path"] == val_path, "content_hash"] = copy_hash
    after = select_samples(table, CLASSES, val_fraction=0.34, seed=0)
    side = {p: i in set(after.split()["val"]) for p, i in zip(after.paths, after.sample_ids)}
    assert side[val_path] == side[train_path]


def test_the_left_out_images_are_counted_by_reason():
    from core.models.samples import skipped_text

    assert skipped_text({}) == "none left out"
    reasons = {1: "changed since the scan (rescan the dataset)", 2: "OSError: truncated", 3: "ValueError: bad"}
    assert skipped_text(reasons) == "3 left out: 1 changed since the scan (rescan the dataset), 2 could not be decoded"
