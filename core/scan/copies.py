"""Copies among a dataset's files: exact ones (same bytes) and photos whose pHashes and scan statistics agree.

`duplicate_groups` gives every listing a group id; every stage keeps a group together (on one side of a split,
in one fold, out of each other's neighbours).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from core.scan.hashindex import hex_to_uint64, near_pairs

#: Before reading pixels, a candidate pair must agree on the scan's brightness, contrast and colorfulness
#: (each in [0, 1]) within this; copies on the demo differ by at most 0.01, so this only saves file reads.
STATS_TOLERANCE = 0.02
STATS_COLUMNS = ("brightness", "contrast", "colorfulness")


def exact_pairs(content_hashes: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b) chaining the samples of each content hash: enough edges to connect each group."""
    codes, _ = pd.factorize(content_hashes, use_na_sentinel=True)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    same = (sorted_codes[1:] == sorted_codes[:-1]) & (sorted_codes[1:] >= 0)
    return order[:-1][same], order[1:][same]


def group_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Group id of each of n positions joined by edges (a, b): 1..G numbered in order of first
    position, 0 for a position in no group. Shape (n,)."""
    if len(a) == 0:
        return np.zeros(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    count, component = connected_components(graph, directed=False)
    grouped = np.bincount(component, minlength=count)[component] > 1
    in_order = pd.unique(component[grouped])
    group_of_component = np.zeros(count, dtype=np.int64)
    group_of_component[in_order] = np.arange(1, len(in_order) + 1)
    return np.where(grouped, group_of_component[component], 0)


def stats_agree(samples: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether positions a[k] and b[k] agree on every STATS_COLUMNS value within STATS_TOLERANCE."""
    agree = np.ones(len(a), dtype=bool)
    for column in STATS_COLUMNS:
        values = samples[column].to_numpy(dtype=float)
        agree &= np.abs(values[a] - values[b]) <= STATS_TOLERANCE
    return agree




#: pHash distance that joins two photos into one fold group when the duplicate check did not run this
#: audit (their brightness, contrast and colorfulness must agree too). Stricter than the duplicate
#: check's 12 because nothing confirms the pair on pixels; a false group only keeps two photos in one fold.
FOLD_GROUP_MAX_DISTANCE = 6
#: A group holding more than this share of the rows says the hashes cannot tell the photos apart (flat,
#: featureless images): such groups are split back into single rows.
MAX_GROUP_SHARE = 0.2


def duplicate_groups(samples: pd.DataFrame, duplicate_group: Optional[pd.Series] = None) -> np.ndarray:
    """A group id per row of `samples`, shape (N,) int64: rows in one duplicate group share an id, every
    other row has an id of its own.

    duplicate_group: the duplicate check's `group` column (indexed by sample id, None outside a group)
    when it ran in this audit; otherwise exact copies (same content hash) and photos whose pHashes are
    within FOLD_GROUP_MAX_DISTANCE bits are grouped.
    """
    n = len(samples)
    a, b = exact_pairs(samples["content_hash"])
    if duplicate_group is not None:
        found = pd.to_numeric(duplicate_group.reindex(samples.index), errors="coerce").fillna(0).to_numpy(np.int64)
        grouped = np.flatnonzero(found > 0)
        order = grouped[np.argsort(found[grouped], kind="stable")]
        same = found[order][1:] == found[order][:-1]
        a, b = np.concatenate([a, order[:-1][same]]), np.concatenate([b, order[1:][same]])
    elif "phash" in samples and samples["phash"].notna().any() and set(STATS_COLUMNS) <= set(samples.columns):
        hashed = np.flatnonzero(samples["phash"].notna().to_numpy())
        pairs = near_pairs(hex_to_uint64(samples["phash"].iloc[hashed].tolist()), max_distance=FOLD_GROUP_MAX_DISTANCE)
        near_a, near_b = hashed[pairs.i], hashed[pairs.j]
        agree = stats_agree(samples, near_a, near_b)
        a, b = np.concatenate([a, near_a[agree]]), np.concatenate([b, near_b[agree]])
    group = group_components(n, a, b)
    sizes = np.bincount(group)
    too_large = np.flatnonzero(sizes > max(2, MAX_GROUP_SHARE * n))
    group[np.isin(group, too_large[too_large > 0])] = 0
    singles = group == 0
    group[singles] = group.max(initial=0) + 1 + np.arange(int(singles.sum()))
    return group
