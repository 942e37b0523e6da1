"""The embedding cache table: round trips, batching past one IN (...) query, keys kept apart."""
from __future__ import annotations

import numpy as np

from db.embeddings import (
    BATCH_SIZE, DbEmbeddingStore, count_embeddings, dataset_embeddings, load_embeddings, save_embeddings,
)
from db.models import Sample
from jobs.scan import scan_dataset
from tests.pages.tiny_dataset import build_tiny_dataset


def test_vectors_round_trip_as_float32(factory):
    vectors = {"a" * 64: np.arange(4, dtype=np.float64), "b" * 64: np.ones(4, dtype=np.float32)}
    with factory.begin() as session:
        save_embeddings(session, vectors, "mobilenet_v2@160+flip")
    with factory.begin() as session:
        loaded = load_embeddings(session, ["a" * 64, "b" * 64, "c" * 64], "mobilenet_v2@160+flip")
    assert set(loaded) == {"a" * 64, "b" * 64}
    assert loaded["a" * 64].dtype == np.float32
    np.testing.assert_array_equal(loaded["a" * 64], [0, 1, 2, 3])


def test_backbone_keys_are_kept_apart(factory):
    store = DbEmbeddingStore(factory)
    store.put_many({"h1": np.zeros(3)}, "pixels")
    store.put_many({"h1": np.ones(5)}, "mobilenet_v2@160")
    assert store.get_many(["h1"], "pixels")["h1"].shape == (3,)
    assert store.get_many(["h1"], "mobilenet_v2@160")["h1"].shape == (5,)
    assert store.get_many(["h1"], "resnet18@160") == {}


def test_many_vectors_in_batches_and_existing_rows_are_kept(factory):
    count = 2 * BATCH_SIZE + 7
    vectors = {f"{i:064x}": np.full(2, i, dtype=np.float32) for i in range(count)}
    store = DbEmbeddingStore(factory)
    store.put_many(vectors, "pixels")
    store.put_many({f"{0:064x}": np.full(2, -1.0)}, "pixels")  # already there: kept, no error
    loaded = store.get_many(list(vectors), "pixels")
    assert len(loaded) == count
    assert loaded[f"{0:064x}"][0] == 0
    assert loaded[f"{count - 1:064x}"][0] == count - 1
    with factory.begin() as session:
        assert count_embeddings(session, "pixels") == count


def test_a_datasets_vectors_under_the_key_that_covers_most_of_its_images(factory, tmp_path):
    dataset_id = scan_dataset(factory, build_tiny_dataset(tmp_path / "tiny"), workers=1)["dataset_id"]
    with factory() as session:
        assert dataset_embeddings(session, dataset_id)[1].size == 0  # nothing cached yet
        rows = session.query(Sample.id, Sample.content_hash).filter(Sample.readable).order_by(Sample.id).all()
    store = DbEmbeddingStore(factory)
    store.put_many({content_hash: np.full(4, sample_id) for sample_id, content_hash in rows}, "mobilenet_v2@160/whole1")
    store.put_many({rows[0][1]: np.zeros(2)}, "mobilenet_v2@112/crop1")
    with factory() as session:
        key, ids, hashes, vectors = dataset_embeddings(session, dataset_id)
    assert key == "mobilenet_v2@160/whole1" and ids.tolist() == [sample_id for sample_id, _ in rows]
    assert vectors.shape == (len(rows), 4) and vectors[:, 0].tolist() == ids.tolist()
    assert hashes.tolist() == [content_hash for _, content_hash in rows]
