"""Nearest neighbours of one listing among a dataset's cached image embeddings, by cosine similarity.

Pure: arrays in and out. The Review page shows a suspect's most similar photos with their labels,
which says more than fixed examples of the given and suggested classes.
"""
from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """`vectors` (N, D) scaled to unit length, float32; all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def nearest(unit: np.ndarray, query: int, k: int, *, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `unit` (N, D, unit rows) most similar to row `query`, most similar first, and their
    cosine similarities, shapes (k',) with k' = min(k, rows left). The query row and rows where
    `exclude` (N,) bool is True (e.g. byte-identical copies) are left out."""
    similarity = unit @ unit[query]
    similarity[query] = -np.inf
    if exclude is not None:
        similarity[exclude] = -np.inf
    available = int(np.isfinite(similarity).sum())
    count = min(k, available)
    if count == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    top = np.argpartition(-similarity, count - 1)[:count]
    order = top[np.argsort(-similarity[top], kind="stable")]
    return order.astype(np.int64), similarity[order].astype(np.float32)


#: Two photos under one label are look-alikes when they are more similar than this share of listings are to
#: their nearest photo under another label (docs/mislabel.md, "Look-alikes"): read per dataset, because how
#: close photos come depends on their kind (0.89 on the photo demo, 0.94 on pencil sketches and Fashion items).
LOOKALIKE_QUANTILE = 0.95
#: Listings probed for that similarity; a chunk of them is compared with every row at a time.
LOOKALIKE_PROBES = 256
_PROBE_CHUNK = 64


def lookalike_similarity(unit: np.ndarray, labels: np.ndarray, hashes: np.ndarray, *,
                         probes: int = LOOKALIKE_PROBES, quantile: float = LOOKALIKE_QUANTILE, seed: int = 0) -> float:
    """The cosine similarity above which two photos under one label are look-alikes on this dataset: the
    `quantile` of probed listings' similarity to their most similar photo under another label (byte-identical
    copies left out). unit: unit rows (N, D); labels, hashes: (N,). inf when no row has another label."""
    labels, hashes = np.asarray(labels), np.asarray(hashes)
    if len(unit) < 2 or len(np.unique(labels)) < 2:
        return float("inf")
    _, label_codes = np.unique(labels, return_inverse=True)
    _, hash_codes = np.unique(hashes, return_inverse=True)
    chosen = np.random.default_rng(seed).choice(len(unit), size=min(probes, len(unit)), replace=False)
    nearest_other = []
    for start in range(0, len(chosen), _PROBE_CHUNK):
        rows = chosen[start:start + _PROBE_CHUNK]
        similarity = unit[rows] @ unit.T
        same = (label_codes[rows, None] == label_codes[None, :]) | (hash_codes[rows, None] == hash_codes[None, :])
        nearest_other.append(np.where(same, -np.inf, similarity).max(axis=1))
    values = np.concatenate(nearest_other)
    values = values[np.isfinite(values)]
    return float(np.quantile(values, quantile)) if len(values) else float("inf")
