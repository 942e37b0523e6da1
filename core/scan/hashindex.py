"""Find every pair of 64-bit hashes within a Hamming distance, without comparing all pairs.

Multi-index hashing with the generalised pigeonhole principle: split the 64 bits
into m chunks and give chunk k a radius r_k with sum(r_k) = d - m + 1. If two
hashes differ in at most d bits, some chunk k differs in at most r_k bits
(otherwise they would differ in at least sum(r_k + 1) = d + 1 bits). So every
pair within d is found by looking, for each chunk, at the buckets whose chunk
values differ by a flip mask of at most r_k bits; candidates are then verified
on the full 64 bits with a vectorised popcount. Everything runs on numpy arrays:
buckets come from one sort per chunk, neighbouring buckets from a direct-address
table, and candidate pairs are expanded and verified in bounded blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Optional, Sequence

import numpy as np

HASH_BITS = 64
#: Chunks up to this many bits are looked up in direct-address tables (2^bits int32 codes and uint64
#: hashes: 48 MiB per chunk at 22 bits); wider ones by binary search.
DIRECT_TABLE_MAX_BITS = 22
#: Candidate pairs expanded and verified at once (bounds the memory of one step to about 100 MB).
BLOCK_CANDIDATES = 4_000_000
#: Table lookups per block of the fused search (keys x flips): about 2 MB of intermediate arrays.
FUSED_BLOCK = 1 << 18
#: A chunking that needs more flip masks than this would take hours: refused with a clear error.
MAX_FLIP_MASKS = 2_000_000
#: Up to this many hashes (and no chunking asked for) every pair is compared, BRUTE_FORCE_ROWS hashes
#: against the rest at a time (about 10 MB): faster than building the chunk indexes (65 ms against
#: 99 ms for 4,096 pHashes of similar photos, 5 ms against 37 ms for 1,024).
BRUTE_FORCE_MAX_HASHES = 4096
BRUTE_FORCE_ROWS = 256


@dataclass(frozen=True)
class NearPairs:
    """Pairs of hash indices i < j with their Hamming distance, sorted by (i, j). All arrays have shape (P,)."""

    i: np.ndarray  # int64
    j: np.ndarray  # int64
    distance: np.ndarray  # uint8

    def __len__(self) -> int:
        return len(self.i)


def hex_to_uint64(hex_hashes: Sequence[str]) -> np.ndarray:
    """16-hex-digit hashes (as stored for pHash) to a uint64 array of shape (N,)."""
    return np.array([int(text, 16) for text in hex_hashes], dtype=np.uint64)


def popcount64(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64, as uint8, same shape."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    as_bytes = values.astype(np.uint64).view(np.uint8).reshape(values.shape + (8,))
    return _BYTE_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.uint8)


_BYTE_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def _even_chunks(chunks: int, max_distance: int) -> tuple[list[int], list[int]]:
    """64 bits split into `chunks` near-equal widths; radii summing to max_distance - chunks + 1,
    the larger ones on the wider chunks (whose buckets are emptier)."""
    widths = [HASH_BITS // chunks + (1 if k < HASH_BITS % chunks else 0) for k in range(chunks)]
    spare = max_distance - chunks + 1
    radii = [spare // chunks + (1 if k < spare % chunks else 0) for k in range(chunks)]
    return widths, radii


def _flip_mask_count(width: int, radius: int) -> int:
    return sum(math.comb(width, flipped) for flipped in range(min(radius, width) + 1))


def estimated_cost(n_hashes: int, widths: Sequence[int], radii: Sequence[int]) -> float:
    """Relative work of a chunking, per hash: each flip mask costs a lookup (4x without a direct table)
    plus about two candidate checks per hash expected in the bucket found (N / 2^width)."""
    cost = 0.0
    for width, radius in zip(widths, radii):
        lookup = 1.0 if width <= DIRECT_TABLE_MAX_BITS else 4.0
        cost += _flip_mask_count(width, radius) * (lookup + 2.0 * n_hashes / 2.0 ** width)
    return cost


def choose_chunks(n_hashes: int, max_distance: int) -> tuple[list[int], list[int]]:
    """Chunk widths (bits, summing to 64) and radii (summing to max_distance - m + 1) for N hashes.

    Tries every number of chunks m from 1 to max_distance + 1 (even splits) and keeps
    the cheapest by estimated_cost: for random hashes that is about 64 / log2(N)
    chunks (Norouzi et al.'s rule for multi-index hashing) when max_distance allows
    it, e.g. 3 chunks of 21-22 bits with radius 2 for 1,000,000 hashes within 8.
    """
    options = [_even_chunks(chunks, max_distance) for chunks in range(1, min(max_distance + 1, HASH_BITS) + 1)]
    feasible = [option for option in options
                if sum(_flip_mask_count(w, r) for w, r in zip(*option)) <= MAX_FLIP_MASKS] or options[-1:]
    return min(feasible, key=lambda option: estimated_cost(n_hashes, *option))


def near_pairs(hashes: np.ndarray, *, max_distance: int,
               chunk_widths: Optional[Sequence[int]] = None,
               chunk_radii: Optional[Sequence[int]] = None) -> NearPairs:
    """All pairs (i < j) of `hashes` (uint64, shape (N,)) with Hamming distance <= max_distance.

    chunk_widths / chunk_radii override `choose_chunks` (both or neither); they must
    satisfy sum(widths) == 64 and sum(radii) == max_distance - len(widths) + 1. Without
    them, up to BRUTE_FORCE_MAX_HASHES hashes are compared pair by pair.
    Identical hashes are pairs at distance 0. Time grows with N times the number
    of flip masks (sum of C(width, <= radius)) plus the number of candidates; memory
    with the size of one chunk's index (about 200 MB for 1,000,000 hashes).
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64).ravel()
    if not 0 <= max_distance <= HASH_BITS:
        raise ValueError(f"max_distance must be in [0, 64], got {max_distance}")
    if (chunk_widths is None) != (chunk_radii is None):
        raise ValueError("give both chunk_widths and chunk_radii, or neither")
    chosen_here = chunk_widths is None
    if chosen_here:
        chunk_widths, chunk_radii = choose_chunks(len(hashes), max_distance)
    _check_chunks(list(chunk_widths), list(chunk_radii), max_distance)
    if len(hashes) < 2:
        return _empty_pairs()
    if chosen_here and len(hashes) <= BRUTE_FORCE_MAX_HASHES:
        return _all_pairs_within(hashes, max_distance)
    found = []
    shift = 0
    for width, radius in zip(chunk_widths, chunk_radii):
        index = _ChunkIndex(hashes, width=width, shift=shift, radius=radius, max_distance=max_distance)
        found.append(index.same_bucket_pairs())
        for masks in index.mask_groups():
            found.extend(index.pairs_at_masks(masks))
        shift += width
    return _unique_pairs(hashes, found)


def _all_pairs_within(hashes: np.ndarray, max_distance: int) -> NearPairs:
    """near_pairs by comparing every pair (for few hashes: see BRUTE_FORCE_MAX_HASHES), BRUTE_FORCE_ROWS
    hashes against all later ones at a time; row-major order keeps the pairs sorted by (i, j)."""
    found_i, found_j, found_distance = [], [], []
    for start in range(0, len(hashes) - 1, BRUTE_FORCE_ROWS):
        rows = hashes[start:start + BRUTE_FORCE_ROWS]
        distance = popcount64(rows[:, None] ^ hashes[None, start + 1:])
        row, column = np.nonzero(distance <= max_distance)
        later = column >= row  # column c is hash start + 1 + c: later than row r when c >= r
        found_i.append(row[later] + start)
        found_j.append(column[later] + start + 1)
        found_distance.append(distance[row[later], column[later]])
    return NearPairs(np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64),
                     np.concatenate(found_distance))


def _check_chunks(widths: list[int], radii: list[int], max_distance: int) -> None:
    if len(widths) != len(radii) or not widths or min(widths) < 1 or min(radii) < 0:
        raise ValueError("chunk widths must be positive and radii non-negative, one radius per chunk")
    if sum(widths) != HASH_BITS:
        raise ValueError(f"chunk widths must sum to 64, got {sum(widths)}")
    if sum(radii) != max_distance - len(widths) + 1:
        raise ValueError(
            f"chunk radii must sum to max_distance - chunks + 1 = {max_distance - len(widths) + 1}, got {sum(radii)}"
        )
    masks = sum(_flip_mask_count(width, radius) for width, radius in zip(widths, radii))
    if masks > MAX_FLIP_MASKS:
        raise ValueError(f"this chunking needs {masks:,} flip masks (at most {MAX_FLIP_MASKS:,}): use more chunks; "
                         "max_distance this large is closer to comparing all pairs")


def _empty_pairs() -> NearPairs:
    return NearPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))


#: Lookup code for a chunk value that no hash has (see _ChunkIndex.codes).
_EMPTY = -1
#: Positions of verified pairs, in the chunk's bucket order (see _ChunkIndex).
Found = tuple[np.ndarray, np.ndarray]


def flip_masks(width: int, radius: int) -> list[int]:
    """Every `width`-bit mask with 1..radius bits set (the non-zero flips within the radius)."""
    return [sum(1 << bit for bit in bits)
            for flipped in range(1, min(radius, width) + 1)
            for bits in combinations(range(width), flipped)]


class _ChunkIndex:
    """The hashes bucketed by one chunk's value, and the search for pairs through that chunk.

    Positions are indices into the hashes sorted by chunk value: `order[p]` is the hash
    index at position p and `hashes[p]` its hash. Bucket b holds positions start[b] ..
    start[b] + count[b] - 1 and has chunk value key[b].

    Most buckets hold one hash when chunks are ~log2(N) bits ("singles"). Pairs with a
    single go through a fused table: the hash of the single with a given chunk value,
    or a stand-in whose chunk bits are the complement of the value (so never within
    max_distance: that needs width - radius > max_distance), and are verified without
    expanding candidates: each single and each member of a bucket of several looks up
    the single at its flipped value. Pairs of two buckets of several are expanded and
    verified. Each unordered pair of buckets at flip f is looked at once: singles with
    singles, and several with several, from the side whose value has f's top bit clear.
    Without a fused table (wide chunks, or radius too close to the chunk width), singles
    look up codes and buckets of several are paired from their own side.
    """

    def __init__(self, all_hashes: np.ndarray, *, width: int, shift: int, radius: int, max_distance: int):
        self.width, self.radius, self.max_distance = width, radius, max_distance
        # Chunk values as the narrowest unsigned type that holds them (less memory traffic per flip mask).
        self.key_type = np.uint32 if width <= 32 else np.uint64
        keys = ((all_hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(self.key_type)
        self.order = np.argsort(keys, kind="stable")
        self.hashes = all_hashes[self.order]
        sorted_keys = keys[self.order]
        self.start = np.concatenate(([0], np.flatnonzero(np.diff(sorted_keys)) + 1)).astype(np.int64)
        self.count = np.diff(np.concatenate((self.start, [len(keys)])))
        self.key = sorted_keys[self.start]
        single = self.count == 1
        self.single = np.flatnonzero(single)
        self.several = np.flatnonzero(~single)
        # codes: a single's position (>= 0), -2 - bucket index for several, _EMPTY for none
        self.code_of_bucket = np.where(single, self.start, -2 - np.arange(len(self.key)))
        self.code_table = self.hash_table = None
        if width <= DIRECT_TABLE_MAX_BITS:
            self.code_table = np.full(1 << width, _EMPTY, dtype=np.int32)
            self.code_table[self.key] = self.code_of_bucket
            if width - radius > max_distance:
                values = np.arange(1 << width, dtype=np.uint64)
                self.hash_table = (~values & np.uint64((1 << width) - 1)) << np.uint64(shift)
                self.hash_table[self.key[single]] = self.hashes[self.start[single]]
                # every hash in a bucket of several, with its chunk value
                self.member_positions = np.flatnonzero(np.repeat(~single, self.count))
                self.member_keys = sorted_keys[self.member_positions]
                self.member_hashes = self.hashes[self.member_positions]

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Lookup codes (int64) of chunk values."""
        if self.code_table is not None:
            return self.code_table[values].astype(np.int64)
        position = np.searchsorted(self.key, values)
        position[position == len(self.key)] = 0
        return np.where(self.key[position] == values, self.code_of_bucket[position], _EMPTY)

    def mask_groups(self) -> list[list[int]]:
        """The flip masks within the radius, grouped by their top bit."""
        groups: dict[int, list[int]] = {}
        for mask in flip_masks(self.width, self.radius):
            groups.setdefault(mask.bit_length() - 1, []).append(mask)
        return list(groups.values())

    def same_bucket_pairs(self) -> Found:
        """Verified pairs inside buckets (as hash indices)."""
        return self._as_indices([self._verify_units(*_same_bucket_units(self.start, self.count))])

    def pairs_at_masks(self, masks: list[int]) -> list[Found]:
        """Verified pairs (as hash indices) of buckets whose values differ by one of `masks`,
        which share their top bit."""
        top_bit = masks[0].bit_length() - 1
        top_clear = (self.key >> self.key_type(top_bit)) & self.key_type(1) == 0
        left = self.single[top_clear[self.single]]
        left_keys, left_positions = self.key[left], self.start[left]
        left_hashes = self.hashes[left_positions]
        several = self.several if self.hash_table is None else self.several[top_clear[self.several]]
        several_keys, several_top_clear = self.key[several], top_clear[several]
        found = []
        if self.hash_table is not None:
            flips = np.array(masks, dtype=self.key_type)
            found.append(self._fused(left_keys, left_positions, left_hashes, flips))
            found.append(self._fused(self.member_keys, self.member_positions, self.member_hashes, flips))
            code = self.codes((several_keys[:, None] ^ flips[None, :]).ravel())
            with_several = np.flatnonzero(code < _EMPTY)
            found.append(self._verify_units(*_cross_bucket_units(
                self.start, self.count, several[with_several // len(flips)], -2 - code[with_several])))
            return [self._as_indices(found)]
        for mask in masks:
            flip = self.key_type(mask)
            code = self.codes(left_keys ^ flip)
            hit = np.flatnonzero(code >= 0)
            found.append(self._verify(left_positions[hit], code[hit]))
            found.extend(self._several_pairs(self.codes(several_keys ^ flip), several_top_clear))
        return [self._as_indices(found)]

    def _fused(self, keys: np.ndarray, positions: np.ndarray, hashes: np.ndarray, flips: np.ndarray) -> Found:
        """Pairs of the hashes at `positions` (`hashes`, chunk values `keys`, sorted) with the single at
        value key ^ flip, for every flip, verified through the fused table without expanding candidates.

        Works on blocks of consecutive keys times all flips: the table entries one block reaches
        for the different flips lie close together, so they are read from cache, not memory.
        """
        block = max(1, FUSED_BLOCK // len(flips))
        kept_positions, kept_codes = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for start in range(0, len(keys), block):
            partner_keys = keys[start:start + block, None] ^ flips[None, :]
            distance = popcount64(self.hash_table[partner_keys] ^ hashes[start:start + block, None])
            rows, columns = np.divmod(np.flatnonzero(distance <= self.max_distance), len(flips))
            kept_positions.append(positions[start + rows])
            kept_codes.append(self.codes(partner_keys[rows, columns]))
        return np.concatenate(kept_positions), np.concatenate(kept_codes)

    def _several_pairs(self, code: np.ndarray, top_clear: np.ndarray) -> list[Found]:
        """Pairs of each bucket of several with the bucket at its flipped value (`code`):
        with a single always, with another bucket of several only from the top-bit-clear side."""
        with_single = np.flatnonzero(code >= 0)
        bucket = self.several[with_single]
        single_units = (code[with_single], self.start[bucket], self.count[bucket])
        with_several = np.flatnonzero((code < _EMPTY) & top_clear)
        several_units = _cross_bucket_units(self.start, self.count, self.several[with_several],
                                            -2 - code[with_several])
        return [self._verify_units(*single_units), self._verify_units(*several_units)]

    def _verify(self, a: np.ndarray, b: np.ndarray) -> Found:
        """The candidate pairs (positions a[k], b[k]) within max_distance."""
        close = np.flatnonzero(popcount64(self.hashes[a] ^ self.hashes[b]) <= self.max_distance)
        return a[close], b[close]

    def _verify_units(self, left: np.ndarray, right_start: np.ndarray, right_count: np.ndarray) -> Found:
        """Expand units (left position, first right position, number of right positions)
        into candidate pairs, at most BLOCK_CANDIDATES at a time, and keep those within max_distance."""
        kept_a, kept_b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        ends = np.cumsum(right_count)
        first = 0
        while first < len(left):
            done = int(ends[first - 1]) if first else 0
            last = max(first + 1, int(np.searchsorted(ends, done + BLOCK_CANDIDATES, side="right")))
            counts = right_count[first:last]
            unit = np.repeat(np.arange(first, last), counts)
            offset = np.arange(len(unit)) - np.repeat(np.cumsum(counts) - counts, counts)
            a, b = self._verify(left[unit], right_start[unit] + offset)
            kept_a.append(a)
            kept_b.append(b)
            first = last
        return np.concatenate(kept_a), np.concatenate(kept_b)

    def _as_indices(self, found: list[Found]) -> Found:
        a = np.concatenate([part[0] for part in found])
        b = np.concatenate([part[1] for part in found])
        return self.order[a], self.order[b]


def _same_bucket_units(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units for the pairs inside buckets: each member with the members after it.

    A unit is (position of the left hash, first position of its partners, number of partners).
    """
    shared = np.flatnonzero(count > 1)
    counts = count[shared]
    rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    left = np.repeat(start[shared], counts) + rank
    return left, left + 1, np.repeat(counts, counts) - 1 - rank


def _cross_bucket_units(start: np.ndarray, count: np.ndarray, left: np.ndarray, right: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units for the pairs between bucket left[k] and bucket right[k]: each member of the left one with the right one."""
    counts = count[left]
    rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    positions = np.repeat(start[left], counts) + rank
    return positions, np.repeat(start[right], counts), np.repeat(count[right], counts)


def _unique_pairs(hashes: np.ndarray, found: list[Found]) -> NearPairs:
    """Merge the pairs found through every chunk: ordered i < j, each pair once, sorted."""
    if not found:
        return _empty_pairs()
    a = np.concatenate([part[0] for part in found])
    b = np.concatenate([part[1] for part in found])
    i, j = np.minimum(a, b), np.maximum(a, b)
    combined = sorted_unique(i * np.int64(len(hashes)) + j)
    i, j = combined // len(hashes), combined % len(hashes)
    return NearPairs(i, j, popcount64(hashes[i] ^ hashes[j]))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-D integer array, ascending: np.unique(values), by sorting. numpy 2.4's
    np.unique counts integers through a hash table, 50x slower than sorting on the millions of pair codes
    that near-duplicate photos of similar scenes give (3.2 s against 0.07 s for 2.8 million)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
