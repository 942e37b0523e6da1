"""A 2-D map of a dataset's photo embeddings for browsing: similar photos land near each other, so a cluster of
one class inside another's region is easy to see and to select.

PCA on L2-normalised vectors (linear, fast, the same map for the same vectors); no network, no training.
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

#: Most points drawn: beyond this, an even sample of the listings (the caption says how many).
MAX_POINTS = 20_000


def project_2d(vectors: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Coordinates of each vector on the map: float32 (N, 2), the first two principal components of the
    L2-normalised vectors (N, D). Fewer than 3 vectors, or vectors of one direction, give zeros."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 3 or vectors.ndim != 2 or vectors.shape[1] < 2:
        return np.zeros((len(vectors), 2), np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    if np.allclose(unit, unit[0]):
        return np.zeros((len(vectors), 2), np.float32)
    return PCA(n_components=2, random_state=seed).fit_transform(unit).astype(np.float32)


def even_sample(count: int, *, limit: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Positions of at most `limit` of `count` items, a seeded random sample in order: int64 (M,)."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))
