"""The embedding cache in the `embeddings` table: one float32 vector per (content hash, backbone key).

`load_embeddings` / `save_embeddings` take the caller's session; `DbEmbeddingStore`
wraps a session factory into the `EmbeddingStore` protocol the audit checks use.
Identical files share one row whatever dataset or path they come from.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import insert_ignoring_duplicates
from db.models import Embedding, Sample

#: Rows per IN (...) query and per INSERT batch; well under SQLite's bound-parameter limit.
BATCH_SIZE = 500
#: Samples whose vectors `dataset_embeddings` reads at a time (their bytes, 9 KB each for MobileNetV2).
READ_BATCH_SIZE = 16384


def _batches(items: Sequence, size: int = BATCH_SIZE) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def load_embeddings(session: Session, content_hashes: Iterable[str], backbone: str) -> dict[str, np.ndarray]:
    """Cached vectors of the given content hashes for `backbone`: hash -> float32 array, shape (D,).

    Hashes without a cached vector are absent from the result.
    """
    wanted = sorted(set(content_hashes))
    found: dict[str, np.ndarray] = {}
    for batch in _batches(wanted):
        rows = session.execute(
            select(Embedding.content_hash, Embedding.dim, Embedding.vector)
            .where(Embedding.backbone == backbone, Embedding.content_hash.in_(batch))
        )
        for content_hash, dim, vector in rows:
            array = np.frombuffer(vector, dtype=np.float32)
            if array.shape != (dim,):
                raise ValueError(f"embedding of {content_hash} for {backbone} holds {array.size} values, not {dim}")
            found[content_hash] = array
    return found


def save_embeddings(session: Session, vectors: dict[str, np.ndarray], backbone: str) -> int:
    """Store vectors (hash -> array of shape (D,)) for `backbone`; existing rows are kept. Returns rows offered."""
    for batch in _batches(list(vectors.items())):  # the bytes of one batch at a time
        rows = [_embedding_row(content_hash, vector, backbone) for content_hash, vector in batch]
        statement = insert_ignoring_duplicates(session, Embedding).values(rows).on_conflict_do_nothing(
            index_elements=["content_hash", "backbone"]
        )
        session.execute(statement)
    return len(vectors)


def _embedding_row(content_hash: str, vector: np.ndarray, backbone: str) -> dict:
    array = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    return {"content_hash": content_hash, "backbone": backbone, "dim": array.size, "vector": array.tobytes()}


def count_embeddings(session: Session, backbone: str) -> int:
    """How many vectors are cached for `backbone`."""
    return session.scalar(select(func.count(Embedding.id)).where(Embedding.backbone == backbone)) or 0


class DbEmbeddingStore:
    """`EmbeddingStore` backed by the database: each call runs in its own short transaction."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def get_many(self, content_hashes: list[str], backbone: str) -> dict[str, np.ndarray]:
        with self._factory.begin() as session:
            return load_embeddings(session, content_hashes, backbone)

    def put_many(self, vectors: dict[str, np.ndarray], backbone: str) -> None:
        with self._factory.begin() as session:
            save_embeddings(session, vectors, backbone)


def dataset_embeddings(session: Session, dataset_id: int) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """The cached vectors of a dataset's readable, present images under the backbone key that covers most of
    them (a whole-photo key first on a tie): (key, sample ids (N,), content hashes (N,), vectors (N, D)).
    N is 0 (and the key "") when no image of the dataset has a cached vector."""
    covered = session.execute(
        select(Embedding.backbone, func.count(Sample.id))
        .join(Sample, Sample.content_hash == Embedding.content_hash)
        .where(Sample.dataset_id == dataset_id, Sample.readable, Sample.missing.is_(False))
        .group_by(Embedding.backbone)
    ).all()
    if not covered:
        return "", np.empty(0, np.int64), np.empty(0, object), np.empty((0, 0), np.float32)
    key = max(covered, key=lambda row: (row[1], "/whole" in row[0]))[0]
    samples = session.execute(
        select(Sample.id, Sample.content_hash)
        .where(Sample.dataset_id == dataset_id, Sample.readable, Sample.missing.is_(False),
               Sample.content_hash.is_not(None))
        .order_by(Sample.id)
    ).all()
    dim = session.scalar(select(Embedding.dim).where(Embedding.backbone == key).limit(1))
    vectors = np.empty((len(samples), dim), np.float32)  # filled a batch at a time: held once
    kept: list[tuple[int, str]] = []
    for batch in _batches(samples, READ_BATCH_SIZE):
        found = load_embeddings(session, [content_hash for _, content_hash in batch], key)
        for sample_id, content_hash in batch:
            if content_hash in found:
                vectors[len(kept)] = found[content_hash]
                kept.append((sample_id, content_hash))
    ids = np.array([sample_id for sample_id, _ in kept], np.int64)
    hashes = np.array([content_hash for _, content_hash in kept], object)
    return key, ids, hashes, vectors[:len(kept)]
