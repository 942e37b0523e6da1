"""Several views embedded in one pass (core.models.multiview): the same vectors as one view at a time, only
what the cache lacks, and a file changed since the scan named, on real image files and the real MobileNetV2."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.imaging import sha256_hex
from core.models.embeddings import UnreadableImageError, embed_images
from core.models.multiview import ViewRequest, embed_views_cached
from db.embeddings import DbEmbeddingStore
from tests.core.models.test_embeddings import item_photo

REQUESTS = [ViewRequest("mobilenet_v2", 48, "whole"), ViewRequest("mobilenet_v2", 32, "crop")]


@pytest.fixture
def photos(tmp_path):
    return [item_photo(tmp_path / "shop" / f"{i}.jpg", box=(2 + 5 * i, 6, 30 + 4 * i, 56), size=96,
                       colour=(40 * i, 90, 200 - 30 * i)) for i in range(5)]


def cached(store, paths, request) -> np.ndarray:
    hashes = [sha256_hex(path.read_bytes()) for path in paths]
    found = store.get_many(hashes, request.key)
    return np.stack([found[h] for h in hashes])


def test_one_pass_caches_each_views_vectors_exactly_as_embedding_it_alone(photos, factory):
    store = DbEmbeddingStore(factory)
    hashes = [sha256_hex(path.read_bytes()) for path in photos]
    computed = embed_views_cached([str(p) for p in photos], hashes, REQUESTS, store=store,
                                  root=str(photos[0].parent), device=torch.device("cpu"))
    assert computed == {request.key: len(photos) for request in REQUESTS}
    for request in REQUESTS:
        alone = embed_images(photos, image_size=request.image_size, view=request.view, device="cpu")
        np.testing.assert_array_equal(cached(store, photos, request), alone)
    again = embed_views_cached([str(p) for p in photos], hashes, REQUESTS, store=store, device=torch.device("cpu"))
    assert again == {request.key: 0 for request in REQUESTS}


def test_a_file_missing_from_one_view_is_added_to_that_view_only(photos, factory):
    store = DbEmbeddingStore(factory)
    hashes = [sha256_hex(path.read_bytes()) for path in photos]
    embed_views_cached([str(p) for p in photos[:3]], hashes[:3], REQUESTS[:1], store=store, device=torch.device("cpu"))
    computed = embed_views_cached([str(p) for p in photos], hashes, REQUESTS, store=store, device=torch.device("cpu"))
    assert computed == {REQUESTS[0].key: 2, REQUESTS[1].key: 5}


def test_a_file_changed_since_the_scan_is_named_and_the_chunks_before_it_are_kept(photos, factory, monkeypatch):
    import core.models.multiview

    monkeypatch.setattr(core.models.multiview, "CACHE_CHUNK_IMAGES", 2)
    store = DbEmbeddingStore(factory)
    hashes = [sha256_hex(path.read_bytes()) for path in photos]
    item_photo(photos[4], box=(0, 0, 90, 90))  # another picture under the scanned name
    with pytest.raises(UnreadableImageError, match=r"1 image\(s\) could not be decoded or changed since the scan.*4\.jpg"):
        embed_views_cached([str(p) for p in photos], hashes, REQUESTS, store=store, root=str(photos[0].parent),
                           device=torch.device("cpu"))
    for request in REQUESTS:
        assert sorted(store.get_many(hashes, request.key)) == sorted(hashes[:4])
