"""near_pairs finds exactly the pairs a brute-force comparison finds, whatever the chunking."""
from __future__ import annotations

import numpy as np
import pytest

import core.scan.hashindex as hashindex
from core.scan.hashindex import choose_chunks, hex_to_uint64, near_pairs, popcount64, sorted_unique


def random_hashes(n: int, *, planted: int, max_flips: int, seed: int = 0) -> np.ndarray:
    """n random 64-bit hashes; `planted` of them replaced by copies of others with 0..max_flips bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    sources = rng.choice(n, size=planted, replace=False)
    targets = rng.choice(np.setdiff1d(np.arange(n), sources), size=planted, replace=False)
    for source, target in zip(sources, targets):
        bits = rng.choice(64, size=int(rng.integers(0, max_flips + 1)), replace=False)
        hashes[target] = hashes[source] ^ np.uint64(sum(1 << int(bit) for bit in bits))
    return hashes


def brute_force(hashes: np.ndarray, max_distance: int) -> set[tuple[int, int]]:
    distance = popcount64(hashes[:, None] ^ hashes[None, :])
    i, j = np.nonzero(np.triu(distance <= max_distance, k=1))
    return set(zip(i.tolist(), j.tolist()))


def as_set(pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.i.tolist(), pairs.j.tolist()))


@pytest.mark.parametrize("search", ["indexed", "pair by pair"])
@pytest.mark.parametrize("n, max_distance", [(1500, 0), (1500, 1), (1500, 3), (2000, 8), (800, 12), (300, 24)])
def test_all_pairs_within_the_distance_are_found_and_nothing_else(n, max_distance, search, monkeypatch):
    monkeypatch.setattr(hashindex, "BRUTE_FORCE_MAX_HASHES", 0 if search == "indexed" else n)
    hashes = random_hashes(n, planted=n // 5, max_flips=max_distance + 2, seed=max_distance)
    pairs = near_pairs(hashes, max_distance=max_distance)
    expected = brute_force(hashes, max_distance)
    assert as_set(pairs) == expected and len(pairs) == len(expected)
    assert (pairs.i < pairs.j).all()
    assert np.array_equal(pairs.distance, popcount64(hashes[pairs.i] ^ hashes[pairs.j]))
    assert (pairs.distance <= max_distance).all()
    order = np.lexsort((pairs.j, pairs.i))
    assert np.array_equal(order, np.arange(len(pairs)))


@pytest.mark.parametrize("widths, radii", [
    ([55, 9], [0, 7]), ([8] * 8, [1, 0, 0, 0, 0, 0, 0, 0]), ([16, 16, 16, 16], [2, 1, 1, 1]),
])
def test_any_valid_chunking_gives_the_same_pairs(widths, radii):
    hashes = random_hashes(600, planted=150, max_flips=10, seed=3)
    assert as_set(near_pairs(hashes, max_distance=8, chunk_widths=widths, chunk_radii=radii)) == brute_force(hashes, 8)


def test_identical_hashes_in_big_buckets_are_all_paired(monkeypatch):
    monkeypatch.setattr(hashindex, "BRUTE_FORCE_MAX_HASHES", 0)
    monkeypatch.setattr(hashindex, "BLOCK_CANDIDATES", 7)  # many small verification blocks
    hashes = np.concatenate([np.full(40, 0xDEADBEEF, dtype=np.uint64), random_hashes(200, planted=20, max_flips=4)])
    pairs = near_pairs(hashes, max_distance=4)
    assert as_set(pairs) == brute_force(hashes, 4)
    assert sum(1 for i, j in as_set(pairs) if i < 40 and j < 40) == 40 * 39 // 2


def test_small_inputs_and_bad_options():
    assert len(near_pairs(np.array([], dtype=np.uint64), max_distance=8)) == 0
    assert len(near_pairs(np.array([7], dtype=np.uint64), max_distance=8)) == 0
    with pytest.raises(ValueError, match="max_distance"):
        near_pairs(np.zeros(3, dtype=np.uint64), max_distance=65)
    with pytest.raises(ValueError, match="sum to 64"):
        near_pairs(np.zeros(3, dtype=np.uint64), max_distance=8, chunk_widths=[32, 16], chunk_radii=[4, 3])
    with pytest.raises(ValueError, match="radii must sum"):
        near_pairs(np.zeros(3, dtype=np.uint64), max_distance=8, chunk_widths=[32, 32], chunk_radii=[1, 1])
    with pytest.raises(ValueError, match="flip masks"):
        near_pairs(np.zeros(3, dtype=np.uint64), max_distance=8, chunk_widths=[64], chunk_radii=[8])
    with pytest.raises(ValueError, match="both"):
        near_pairs(np.zeros(3, dtype=np.uint64), max_distance=8, chunk_widths=[64])


def test_chunk_choice_follows_the_pigeonhole_rule():
    for n in (10, 5_000, 1_000_000):
        for max_distance in (0, 2, 8, 20):
            widths, radii = choose_chunks(n, max_distance)
            assert sum(widths) == 64 and sum(radii) == max_distance - len(widths) + 1
    assert choose_chunks(1_000_000, 8) == ([22, 21, 21], [2, 2, 2])


def test_hex_hashes_and_the_popcount_fallback(monkeypatch):
    hashes = hex_to_uint64(["ffffffffffffffff", "0000000000000001", "8000000000000000"])
    assert hashes.tolist() == [2**64 - 1, 1, 2**63]
    expected = popcount64(hashes).tolist()
    monkeypatch.delattr(np, "bitwise_count")
    assert popcount64(hashes).tolist() == expected == [64, 1, 1]


def test_few_hashes_are_compared_pair_by_pair_in_blocks_of_rows(monkeypatch):
    monkeypatch.setattr(hashindex, "BRUTE_FORCE_ROWS", 7)  # rows split mid-way through the planted copies
    hashes = random_hashes(100, planted=40, max_flips=6, seed=5)
    pairs = near_pairs(hashes, max_distance=6)
    assert as_set(pairs) == brute_force(hashes, 6)
    assert np.array_equal(np.lexsort((pairs.j, pairs.i)), np.arange(len(pairs)))
    assert pairs.i.dtype == np.int64 and pairs.distance.dtype == np.uint8


@pytest.mark.parametrize("size", [0, 1, 2, 1000])
def test_sorted_unique_is_numpy_unique(size):
    values = np.random.default_rng(size).integers(0, 50, size=size)
    assert np.array_equal(sorted_unique(values), np.unique(values))
