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
