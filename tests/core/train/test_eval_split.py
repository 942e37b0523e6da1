"""The evaluation split: drawn once from file contents, stratified by folder class, copies together, and extended
without moving anything."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from core.train.eval_split import assign_evaluation, split_position


def hashes(count: int, prefix: str = "file") -> list[str]:
    return [hashlib.sha256(f"{prefix}{i}".encode()).hexdigest() for i in range(count)]


def test_the_first_draw_takes_a_fifth_of_every_class_and_depends_only_on_contents():
    content = hashes(150)
    strata = ["bag"] * 100 + ["shoe"] * 45 + ["hat"] * 5
    groups = np.arange(150)
    sides = assign_evaluation(content, strata, groups, [None] * 150, fraction=0.2)
    assert (sides[:100].sum(), sides[100:145].sum(), sides[145:].sum()) == (20, 9, 1)
    order = np.random.default_rng(0).permutation(150)
    shuffled = assign_evaluation([content[i] for i in order], [strata[i] for i in order], groups, [None] * 150)
    assert np.array_equal(shuffled, sides[order])


def test_copies_of_one_photo_share_a_side():
    content = hashes(40)
    groups = np.arange(40)
    groups[[3, 17, 29]] = 3
    for seed in range(5):
        strata = list(np.random.default_rng(seed).choice(["a", "b"], 40))
        sides = assign_evaluation(content, strata, groups, [None] * 40)
        assert len(set(sides[[3, 17, 29]])) == 1


def test_stored_sides_never_move_and_new_files_join_by_their_hash_or_their_group():
    content = hashes(60)
    groups = np.arange(60)
    stored = [True] * 10 + [False] * 40 + [None] * 10
    groups[55] = 2  # a new copy of a stored evaluation listing
    groups[56] = 20  # a new copy of a stored training listing
    sides = assign_evaluation(content, ["a"] * 60, groups, stored, fraction=0.2)
    assert sides[:10].all() and not sides[10:50].any()
    assert sides[55] and not sides[56]
    for i in (50, 51, 52, 53, 54, 57, 58, 59):
        assert sides[i] == (split_position(content[i]) < 0.2)


def test_a_fraction_outside_zero_and_one_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        assign_evaluation(hashes(3), ["a"] * 3, np.arange(3), [None] * 3, fraction=1.0)
