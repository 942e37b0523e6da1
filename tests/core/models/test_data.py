"""Tests of core.models.data: the decode-once cache, in-memory batches, augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.imaging import sha256_hex
from core.models.data import (IMAGENET_MEAN, IMAGENET_STD, Augmentation, MemoryBatches, augment, decode_for_training,
                              load_images, to_model_input)
from tests.conftest import make_image


def write_images(root, count: int, *, size=(40, 30)) -> tuple[list[str], list[str]]:
    """`count` distinct images under root; returns (relative paths, content hashes)."""
    paths = []
    for index in range(count):
        make_image(root / "c" / f"img-{index}.png", size=size)
        paths.append(f"c/img-{index}.png")
    return paths, [sha256_hex((root / p).read_bytes()) for p in paths]


def test_decode_resizes_the_shorter_side_and_centre_crops(tmp_path):
    path = tmp_path / "wide.png"
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, 20:40] = 255  # a white band in the middle third
    Image.fromarray(pixels).save(path)
    square = decode_for_training(path, 10)
    assert square.shape == (10, 10, 3) and square.dtype == np.uint8
    assert square.min() > 200  # only the centre band is left


def test_decode_gives_rgb_for_any_mode(tmp_path):
    for mode in ("L", "RGBA", "P", "I;16"):
        path = make_image(tmp_path / f"{mode.replace(';', '')}.png", mode=mode)
        assert decode_for_training(path, 16).shape == (16, 16, 3)


def test_images_are_decoded_once_then_read_from_the_cache(tmp_path):
    paths, hashes = write_images(tmp_path / "data", 5)
    cache = tmp_path / "cache"
    first = load_images(tmp_path / "data", paths, hashes, size=24, cache_dir=cache, workers=1)
    assert first.from_cache == 0 and not first.failed
    assert first.pixels.shape == (5, 24, 24, 3) and first.pixels.dtype == torch.uint8
    second = load_images(tmp_path / "data", paths[::-1], hashes[::-1], size=24, cache_dir=cache, workers=1)
    assert second.from_cache == 5
    assert torch.equal(second.pixels, first.pixels.flip(0))


def test_only_new_images_are_decoded_and_each_size_has_its_own_cache(tmp_path):
    paths, hashes = write_images(tmp_path / "data", 4)
    cache = tmp_path / "cache"
    load_images(tmp_path / "data", paths[:3], hashes[:3], size=24, cache_dir=cache, workers=1)
    more = load_images(tmp_path / "data", paths, hashes, size=24, cache_dir=cache, workers=1)
    assert more.from_cache == 3
    assert load_images(tmp_path / "data", paths, hashes, size=16, cache_dir=cache, workers=1).from_cache == 0
    assert len(list((cache / "24px").glob("*.hashes.npy"))) == 2


def test_the_cache_is_keyed_by_content_so_a_copied_file_is_not_decoded_again(tmp_path):
    paths, hashes = write_images(tmp_path / "data", 2)
    cache = tmp_path / "cache"
    load_images(tmp_path / "data", paths, hashes, size=24, cache_dir=cache, workers=1)
    (tmp_path / "data" / "c" / "copy.png").write_bytes((tmp_path / "data" / paths[0]).read_bytes())
    again = load_images(tmp_path / "data", ["c/copy.png"], [hashes[0]], size=24, cache_dir=cache, workers=1)
    assert again.from_cache == 1


def test_an_undecodable_file_is_reported_and_not_cached(tmp_path):
    paths, hashes = write_images(tmp_path / "data", 2)
    (tmp_path / "data" / "c" / "bad.png").write_bytes(b"not an image")
    paths.append("c/bad.png")
    hashes.append(sha256_hex(b"not an image"))
    decoded = load_images(tmp_path / "data", paths, hashes, size=24, cache_dir=tmp_path / "cache", workers=1)
    assert list(decoded.failed) == [2]
    assert decoded.pixels[2].sum() == 0
    assert load_images(tmp_path / "data", paths, hashes, size=24, cache_dir=tmp_path / "cache",
                       workers=1).from_cache == 2


def test_model_input_is_normalised_channels_first():
    batch = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    images = to_model_input(batch)
    assert images.shape == (2, 3, 8, 8)
    expected = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    np.testing.assert_allclose(images[0, :, 0, 0].numpy(), expected, rtol=1e-6)


def test_augmentation_without_crop_flip_or_jitter_is_the_identity():
    images = torch.rand(3, 3, 16, 16)
    plain = Augmentation(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False, jitter=0.0)
    torch.testing.assert_close(augment(images, plain, torch.Generator().manual_seed(0)), images, atol=1e-5, rtol=0)


def test_flip_mirrors_images_horizontally():
    images = torch.rand(64, 3, 8, 8)
    flip_only = Augmentation(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True, jitter=0.0)
    out = augment(images, flip_only, torch.Generator().manual_seed(0))
    mirrored = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, images)]
    unchanged = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, images)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert 10 < sum(mirrored) < 54


def test_full_augmentation_keeps_shape_and_range():
    images = torch.rand(4, 3, 20, 20)
    out = augment(images, Augmentation(), torch.Generator().manual_seed(1))
    assert out.shape == images.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert not torch.allclose(out, images)


def loader(labels, *, batch_size=4, sampler="sequential", augmentation=None, training=False, seed=0) -> MemoryBatches:
    pixels = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 4, 4, 3).contiguous()
    return MemoryBatches(pixels, np.asarray(labels), np.arange(len(labels)), batch_size=batch_size,
                         device=torch.device("cpu"), sampler=sampler, augmentation=augmentation, training=training,
                         seed=seed)


def test_sequential_batches_cover_the_indices_in_order():
    batches = list(loader([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]).epoch(0))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    assert torch.cat([labels for _, labels in batches]).tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


def test_weighted_sampler_draws_every_class_about_equally():
    labels = [0] * 90 + [1] * 10
    drawn = torch.cat([labels for _, labels in loader(labels, batch_size=50, sampler="weighted").epoch(0)])
    assert len(drawn) == 100
    assert 30 <= int((drawn == 1).sum()) <= 70


def test_batch_order_depends_on_seed_and_epoch_only():
    labels = list(range(10)) * 2
    order = lambda batches, epoch: torch.cat([y for _, y in batches.epoch(epoch)]).tolist()
    first = loader(labels, sampler="shuffle", seed=3)
    assert order(first, 0) == order(loader(labels, sampler="shuffle", seed=3), 0)
    assert order(first, 0) != order(first, 1)


def test_every_training_batch_has_the_batch_size_and_every_image_is_seen_each_epoch():
    labels = list(range(10))  # each image's label is its row, so the labels name the rows drawn
    training = loader(labels, sampler="shuffle", training=True)
    assert len(training) == 3
    epochs = [[labels.tolist() for _, labels in training.epoch(epoch)] for epoch in range(3)]
    for batches in epochs:
        assert [len(batch) for batch in batches] == [4, 4, 4]
        drawn = sum(batches, [])
        assert set(drawn) == set(labels) and drawn[10:] == drawn[:2]  # wrapped round to the epoch's first rows
    assert len({tuple(sum(batches, [])[:2]) for batches in epochs}) > 1  # different rows seen twice each epoch
    for images, _ in training.epoch(0):
        assert images.is_contiguous(memory_format=torch.channels_last)


def test_a_training_set_smaller_than_a_batch_is_one_batch_of_all_of_it():
    assert [len(y) for _, y in loader([0, 1, 2], sampler="shuffle", training=True).epoch(0)] == [3]
    assert [len(y) for _, y in loader([0, 1] * 3, batch_size=4, sampler="weighted", training=True).epoch(0)] == [4, 4]


def test_padded_batches_have_the_batch_size_and_only_the_real_rows_labels():
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    padded = MemoryBatches(loader(labels).pixels, np.asarray(labels), np.arange(10), batch_size=4,
                           device=torch.device("cpu"), pad=True)
    batches = list(padded.epoch(0))
    assert [len(images) for images, _ in batches] == [4, 4, 4] and [len(y) for _, y in batches] == [4, 4, 2]
    last_images, _ = batches[-1]
    assert torch.equal(last_images[2], last_images[1]) and torch.equal(last_images[3], last_images[1])
    assert torch.cat([y for _, y in batches]).tolist() == labels


def test_unknown_sampler_is_refused():
    with pytest.raises(ValueError, match="samplers are"):
        loader([0, 1], sampler="random")
