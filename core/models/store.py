"""The interface of the embedding cache (db.embeddings.DbEmbeddingStore implements it): vectors by content hash."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class EmbeddingStore(Protocol):
    """Cache of image embeddings keyed by (content hash, backbone name)."""

    def get_many(self, content_hashes: list[str], backbone: str) -> dict[str, np.ndarray]: ...

    def put_many(self, vectors: dict[str, np.ndarray], backbone: str) -> None: ...
