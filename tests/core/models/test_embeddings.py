"""Tests of core.models.embeddings: backbones and offline weights, embeddings of real images, the cache.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.imaging import sha256_hex
from core.models.data import IMAGENET_MEAN, IMAGENET_STD
from core.models.embeddings import (BACKBONES, MissingWeightsError, UnreadableImageError, build_extractor, cache_key,
                                    check_weights, embed_cached, embed_images, get_backbone, weights_path)
from core.models.views import load_object
from db.embeddings import DbEmbeddingStore
from tests.conftest import make_image
from tests.training_data import one_torch_thread

__all__ = ["one_torch_thread"]  # fixture used by name


def item_photo(path, *, box, size=64, colour=(40, 40, 120), background=(235, 235, 235), shape="rectangle"):
    """A dark item drawn at `box` (left, top, right, bottom) on a plain light background, saved to `path`."""
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    (draw.ellipse if shape == "ellipse" else draw.rectangle)(box, fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """TORCH_HOME pointing at an empty folder: no pretrained weights are installed."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_backbones_are_looked_up_by_name_and_unknown_names_list_the_valid_ones():
    assert get_backbone("mobilenet_v2").pretrained
    assert not get_backbone("pixels").pretrained
    assert get_backbone("mobilenet_v2").dim == 96 * 4 + 160 * 4 + 1280
    with pytest.raises(ValueError, match="unknown backbone 'vgg'; backbones are: efficientnet_b0, mobilenet_v2"):
        get_backbone("vgg")


def test_weights_are_looked_for_in_torch_home(empty_torch_home):
    assert weights_path(BACKBONES["mobilenet_v2"]) == empty_torch_home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"


def test_missing_weights_raise_a_clear_error_and_never_download(tmp_path, empty_torch_home):
    path = item_photo(tmp_path / "a.png", box=(10, 10, 40, 40))
    with pytest.raises(MissingWeightsError) as caught:
        embed_images([path], backbone="mobilenet_v2", image_size=32)
    message = str(caught.value)
    assert "make setup" in message and "mobilenet_v2-b0353104.pth" in message and str(empty_torch_home) in message
    assert "'pixels'" in message and "pretrained false" in message
    assert isinstance(caught.value, RuntimeError)
    assert not any(empty_torch_home.rglob("*.pth")), "nothing may be downloaded"


def test_backbones_without_installed_weights_fail_clearly(empty_torch_home):
    for name in ("resnet18", "resnet50", "efficientnet_b0"):
        with pytest.raises(MissingWeightsError, match=f"backbone '{name}' are not installed"):
            check_weights(get_backbone(name))


def test_the_pixels_backbone_needs_no_weights(tmp_path, empty_torch_home):
    paths = [item_photo(tmp_path / f"{i}.png", box=(5 + i, 8, 30 + i, 50)) for i in range(3)]
    vectors = embed_images(paths, backbone="pixels")
    assert vectors.shape == (3, get_backbone("pixels").dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()


def test_pretrained_embeddings_have_the_backbone_dimension(tmp_path):
    paths = [item_photo(tmp_path / f"{i}.png", box=(5, 5, 30 + 5 * i, 50)) for i in range(3)]
    vectors = embed_images(paths, backbone="mobilenet_v2", image_size=32, device="cpu")
    assert vectors.shape == (3, get_backbone("mobilenet_v2").dim) and vectors.dtype == np.float32
    assert not np.allclose(vectors[0], vectors[2])


@pytest.mark.parametrize("view", ["crop", "whole"])
def test_network_embeddings_are_the_extractor_on_the_normalised_view(tmp_path, view, one_torch_thread):
    """What embed_images computes on the CPU, written out the long way: each file's view as float32 in
    [0, 1], ImageNet-normalised, through the frozen extractor in one batch. Equal to the last bit."""
    paths = [item_photo(tmp_path / f"{i}.png", box=(3 * i, 5, 30 + 3 * i, 50)) for i in range(5)]
    views = [np.asarray(load_object(path, 32, view=view)[0], dtype=np.float32) / 255.0 for path in paths]
    pixels = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    extractor = build_extractor(get_backbone("mobilenet_v2")).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = extractor(((pixels - mean) / std).contiguous(memory_format=torch.channels_last)).numpy()
    vectors = embed_images(paths, backbone="mobilenet_v2", image_size=32, view=view, device="cpu", runtime="torch")
    np.testing.assert_array_equal(vectors, expected)


def test_cache_keys_name_everything_that_changes_the_vectors():
    assert cache_key("mobilenet_v2", image_size=112) == "mobilenet_v2@112/crop1"
    assert cache_key("pixels", image_size=224) == "pixels@28/crop1"


def test_a_second_embedding_of_the_same_files_computes_nothing(tmp_path, factory):
    paths = [item_photo(tmp_path / f"{i}.png", box=(4 * i, 4, 30 + 4 * i, 40)) for i in range(4)]
    copy = tmp_path / "copy.png"
    copy.write_bytes(paths[0].read_bytes())
    hashes = [sha256_hex(path.read_bytes()) for path in [*paths, copy]]  # the copy has its original's content hash
    store = DbEmbeddingStore(factory)
    first = embed_cached([*paths, copy], hashes, store=store, backbone="pixels")
    assert (first.computed, first.reused) == (4, 0)  # the copy is embedded once
    for path in [*paths, copy]:
        path.unlink()  # nothing can be decoded any more
    second = embed_cached([*paths, copy], hashes, store=store, backbone="pixels")
    assert (second.computed, second.reused) == (0, 4)
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(second.vectors[0], second.vectors[4])


def test_new_vectors_are_cached_a_chunk_at_a_time_so_a_failed_embedding_keeps_the_chunks_before(
        tmp_path, factory, monkeypatch):
    import core.models.embeddings

    monkeypatch.setattr(core.models.embeddings, "CACHE_CHUNK_IMAGES", 2)
    paths = [item_photo(tmp_path / f"{i}.png", box=(4 * i, 4, 30 + 4 * i, 40)) for i in range(5)]
    hashes = [sha256_hex(path.read_bytes()) for path in paths]
    original = paths[4].read_bytes()
    paths[4].write_bytes(b"cut off by a full disk")
    store = DbEmbeddingStore(factory)
    with pytest.raises(UnreadableImageError, match="4.png"):
        embed_cached(paths, hashes, store=store, backbone="pixels")
    assert sorted(store.get_many(hashes, cache_key("pixels"))) == sorted(hashes[:4])  # two chunks of two
    paths[4].write_bytes(original)
    seen = []
    again = embed_cached(paths, hashes, store=store, backbone="pixels", progress=lambda f, m: seen.append(f))
    assert (again.computed, again.reused) == (1, 4)
    np.testing.assert_allclose(again.vectors, embed_images(paths, backbone="pixels"), atol=1e-6)
    assert seen[-1] == 1.0


def test_files_that_no_longer_decode_are_named(tmp_path):
    good = item_photo(tmp_path / "good.png", box=(5, 5, 30, 30))
    bad = make_image(tmp_path / "bad.png")
    bad.write_bytes(b"not an image any more")
    with pytest.raises(UnreadableImageError, match="bad.png"):
        embed_images([good, bad], backbone="pixels")
