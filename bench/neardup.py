"""Near-duplicate search at scale: all pairs of random 64-bit hashes within a Hamming distance.

Usage: python bench/neardup.py [--hashes 1000000] [--max-distance 8] [--planted 10000]
                               [--subset 20000] [--repeat 1]

Generates random 64-bit hashes, plants `--planted` near pairs (a copy of a hash
with 0..max-distance random bits flipped), runs core.scan.hashindex.near_pairs and
reports wall time, CPU time, peak resident memory
(resource.getrusage), and the recall of the planted pairs. Completeness beyond
the planted pairs is checked against a brute-force comparison of every pair of
a `--subset` of the hashes: the pairs the search returns inside the subset must
be exactly the brute-force pairs.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.scan.hashindex import choose_chunks, near_pairs, popcount64  # noqa: E402

BRUTE_FORCE_ROWS = 1000


def planted_hashes(count: int, planted: int, max_distance: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` random hashes, and (planted, 2) index pairs made near: the second a copy of the first
    with a uniform 0..max_distance of its bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, count, dtype=np.uint64)
    ends = rng.choice(count, size=2 * planted, replace=False).reshape(planted, 2)
    for source, target in ends:
        bits = rng.choice(64, size=int(rng.integers(0, max_distance + 1)), replace=False)
        hashes[target] = hashes[source] ^ np.uint64(sum(1 << int(bit) for bit in bits))
    return hashes, np.sort(ends, axis=1)


def brute_force_pairs(hashes: np.ndarray, max_distance: int) -> set[tuple[int, int]]:
    """Every pair (i < j) within max_distance, comparing all pairs block by block."""
    found = set()
    for start in range(0, len(hashes), BRUTE_FORCE_ROWS):
        block = hashes[start:start + BRUTE_FORCE_ROWS]
        distance = popcount64(block[:, None] ^ hashes[None, :])
        rows, columns = np.nonzero(distance <= max_distance)
        rows = rows + start
        keep = rows < columns
        found.update(zip(rows[keep].tolist(), columns[keep].tolist()))
    return found


def comparison_subset(count: int, planted: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` hashes: both ends of size // 20 planted pairs, the others drawn at random."""
    ends = planted[: size // 20].ravel()
    rest = np.setdiff1d(np.random.default_rng(seed + 1).choice(count, size=size, replace=False), ends)
    return np.sort(np.concatenate([ends, rest[: size - len(ends)]]))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--max-distance", type=int, default=8)
    parser.add_argument("--planted", type=int, default=10_000)
    parser.add_argument("--subset", type=int, default=20_000, help="hashes compared by brute force (0: skip)")
    parser.add_argument("--repeat", type=int, default=1, help="searches to time; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}, load average "
          + " ".join(f"{load:.1f}" for load in os.getloadavg()))
    hashes, planted = planted_hashes(args.hashes, args.planted, args.max_distance, args.seed)
    widths, radii = choose_chunks(len(hashes), args.max_distance)
    print(f"{len(hashes):,} hashes, {args.planted:,} planted pairs, max distance {args.max_distance}; "
          f"chunks {widths} bits, radii {radii}")
    before = peak_rss_mb()
    runs = []
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        pairs = near_pairs(hashes, max_distance=args.max_distance)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    wall_s, cpu_s = min(runs)
    found = set(zip(pairs.i.tolist(), pairs.j.tolist()))
    recall = sum(1 for pair in map(tuple, planted.tolist()) if pair in found) / len(planted)
    print(f"search: {wall_s:.2f} s wall, {cpu_s:.2f} s CPU (one thread), "
          f"peak RSS {peak_rss_mb():.0f} MB (hashes and planting: {before:.0f} MB); "
          f"{len(pairs):,} pairs found, planted recall {recall:.4f}")
    if args.subset:
        members = comparison_subset(len(hashes), planted, args.subset, args.seed)
        expected = {(int(members[a]), int(members[b])) for a, b in brute_force_pairs(hashes[members], args.max_distance)}
        chosen = set(members.tolist())
        inside = {(i, j) for i, j in found if i in chosen and j in chosen}
        print(f"brute force over {len(members):,} hashes (both ends of {len(members) // 20:,} planted pairs, the rest "
              f"random): {len(expected):,} pairs; the search returned {len(inside):,} pairs among them: "
              f"{'exactly the same set' if inside == expected else 'A DIFFERENT SET'}")


if __name__ == "__main__":
    main()
